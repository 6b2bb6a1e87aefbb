"""Benchmarks (run with `make bench`), separate from tests."""
