"""``python -m benchmarks``: run the suite (same options as ``benchmarks/run.py``)."""

import sys

from benchmarks.run import main

sys.exit(main())
