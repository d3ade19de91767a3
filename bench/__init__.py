"""Benchmarks: `python -m bench.NAME`; headline figures last, as `name: value`."""
