"""CPU-bound job functions for bench/cpu_bound.py; workers import them as ``bench.jobs_cpu``."""

from __future__ import annotations


def burn(loops: int) -> int:
    """Pure-Python CPU work: ``loops`` iterations of integer arithmetic, no I/O, no yielding."""
    total = 0
    for i in range(loops):
        total = (total + i * i) % 1000003
    return total


def noop() -> None:
    """Does nothing: the cost of running one job in a fork queue."""
    return None
