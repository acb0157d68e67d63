"""Benchmarks of geventq against python-rq (see bench/README.md)."""
