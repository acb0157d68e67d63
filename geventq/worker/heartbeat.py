"""The worker's heartbeat to Redis, from a native thread.

The heartbeat says "this worker process is alive", and nothing else: it runs
in a real OS thread with its own Redis connection, so it keeps beating while
a job blocks the gevent hub (a job that legitimately computes for an hour is
not abandoned). A stuck hub is the launcher's business, through the
heartbeat file the hub itself touches.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

logger = logging.getLogger("geventq.worker")


def _native(module: str, name: str):
    """The unpatched original when gevent has patched the module."""
    try:
        from gevent import monkey
    except ImportError:
        return getattr(__import__(module), name)
    return monkey.get_original(module, name)


class HeartbeatThread:
    """Calls ``beat()`` every ``interval`` seconds from a native thread until stopped."""

    def __init__(self, beat: Callable[[], None], interval: float):
        self.beat = beat
        self.interval = interval
        self._stopped = False
        self._sleep = _native("time", "sleep")
        self._start_new_thread = _native("_thread", "start_new_thread")
        self._running = _native("_thread", "allocate_lock")()  # held while the thread runs

    def start(self) -> None:
        self._running.acquire()
        self._start_new_thread(self._run, ())

    def stop(self, timeout: float = 5.0) -> None:
        """Stop beating; wait (up to ``timeout``) for a beat under way, so none lands later."""
        self._stopped = True
        if self._running.acquire(True, timeout):
            self._running.release()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._running.release()

    def _loop(self) -> None:
        failures = 0
        while not self._stopped:
            try:
                self.beat()
                failures = 0
                delay = self.interval
            except Exception as exc:  # Redis away: keep trying, back off with jitter
                failures += 1
                delay = min(self.interval, 0.5 * 2 ** min(failures, 6)) * random.uniform(0.5, 1)
                logger.warning("heartbeat failed (%s); retrying in %.1f s", type(exc).__name__,
                               delay)
            slept = 0.0
            while slept < delay and not self._stopped:
                step = min(0.2, delay - slept)
                self._sleep(step)
                slept += step

