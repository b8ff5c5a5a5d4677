"""Benchmarks of ReflexBlue against bare baselines measured in the same run.

`uv run python -m bench` runs them all; see `docs/benchmarks.md` for what each figure means.
"""
