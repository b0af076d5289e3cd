"""The vision2seq benchmark suite: ``python benchmarks/run.py`` or ``python -m benchmarks`` (README.md)."""
