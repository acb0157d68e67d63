"""Job functions for the pool tests (imported by real workers as tests.stubs.pool_jobs)."""

from __future__ import annotations

import os
import time

_ballast: list[bytearray] = []  # kept after the job ends: the worker stays fat


def hog(megabytes: int) -> int:
    """Grow the worker's RSS by ``megabytes`` and keep it that way."""
    block = bytearray(megabytes * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page so it counts in RSS
    _ballast.append(block)
    return len(block)


def block_once(marker: str, seconds: float) -> str:
    """The first run never yields to the gevent hub for ``seconds``; later runs return.

    A pure-Python loop: no gevent switch, so the worker's heartbeat file stops
    being touched, as with a real job stuck in CPU work or a blocking C call.
    """
    if os.path.exists(marker):
        return "second run"
    with open(marker, "w"):
        pass
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "blocked"
