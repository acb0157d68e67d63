"""Job functions the tests enqueue; importable by worker processes as tests.jobs."""

from __future__ import annotations

import os
import time

from geventq import get_current_job


def add(x, y):
    return x + y


def echo(*args, **kwargs):
    return [list(args), kwargs]


def noop():
    return None


def fail(message="boom"):
    raise ValueError(message)


def sleep(seconds):
    time.sleep(seconds)
    return seconds


def swallow_everything(seconds):
    """Sleeps, catching every Exception: must still be stopped by its timeout."""
    try:
        time.sleep(seconds)
    except Exception:
        return "swallowed"
    return "slept"


def current_job_id(pause=0.0):
    """Returns the id of the job running it (after an optional pause)."""
    before = get_current_job().id
    if pause:
        time.sleep(pause)
    after = get_current_job().id
    return [before, after]


def save_meta(value):
    job = get_current_job()
    job.meta["progress"] = value
    job.save_meta()
    return value


def record(key, value, redis_url=None):
    """Appends value to a Redis list (a side effect tests can observe)."""
    import redis

    conn = redis.Redis.from_url(redis_url or os.environ["REDIS_URL"])
    conn.rpush(key, value)
    return value


def unpicklable_result():
    return lambda: None


def cpu_loop(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


class Counter:
    def __init__(self, start):
        self.start = start

    def plus(self, n):
        return self.start + n

    def __call__(self, n):
        return self.start * n
