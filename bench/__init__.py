"""Benchmarks: ``python -m bench`` (the log's append rate), ``python -m bench verify``."""
