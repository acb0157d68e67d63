"""Waiting for things in tests: a poll with a deadline, never a fixed sleep."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
             message: str = "condition") -> Any:
    """Call ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def quietly(predicate: Callable[[], Any]) -> Callable[[], Any]:
    """A wait_for predicate that reads False while Redis is away (restarted, failing over)."""
    import redis

    def check() -> Any:
        try:
            return predicate()
        except redis.RedisError:
            return False
    return check


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process started with start_new_session=True, and its group; reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)
