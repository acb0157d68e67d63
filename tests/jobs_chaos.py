"""Job functions for the chaos and Redis-limit tests."""

from __future__ import annotations

from tests.jobs_reliability import record


def big_result(nbytes: int) -> bytes:
    """Return ``nbytes`` bytes: a result near (or past) the server's proto-max-bulk-len."""
    return b"r" * nbytes


def record_big(nbytes: int, pause: float = 0.0) -> bytes:
    """Record this execution (tests.jobs_reliability.record), then return ``nbytes`` bytes."""
    record(pause)
    return b"r" * nbytes


def fail_big(nchars: int):
    """Raise an exception whose message holds ``nchars`` characters."""
    raise RuntimeError("start-of-message " + "m" * nchars + " end-of-message")
