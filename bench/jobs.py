"""Job functions the benchmarks enqueue; workers import them as ``bench.jobs``."""

from __future__ import annotations

import time


def noop(*args, **kwargs):
    """Does nothing: measures the queue's own cost per job."""
    return None


def io_wait(seconds=0.1):
    """Waits on I/O (``time.sleep``, cooperative under gevent's monkey-patching)."""
    time.sleep(seconds)
    return seconds
