"""The vision2seq benchmark suite: ``python benchmarks/run.py`` or ``python -m benchmarks``.

What each benchmark measures: benchmarks/README.md.
"""
