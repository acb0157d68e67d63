"""Job functions and handlers for the worker tests."""

from __future__ import annotations

import os
import time

import redis

from geventq import get_current_job


def _conn():
    return redis.Redis.from_url(os.environ["REDIS_URL"])


def mark_and_sleep(tag, seconds):
    """Pushes tag to a list when it starts, then sleeps (cooperatively under gevent)."""
    _conn().rpush("test:started", tag)
    time.sleep(seconds)
    return tag


def record_order(tag):
    _conn().rpush("test:order", tag)
    return tag


def current_ids_across_timeouts(pause):
    """get_current_job() before and after a pause, and after a caught inner timeout."""
    import gevent

    before = get_current_job().id
    try:
        with gevent.Timeout(0.01):
            gevent.sleep(1)
    except gevent.Timeout:
        pass
    time.sleep(pause)
    return [before, get_current_job().id]


def handler_record(job, exc_type, exc_value, tb):
    _conn().rpush("test:handlers", f"first:{job.id}:{exc_type.__name__}")


def handler_stop(job, exc_type, exc_value, tb):
    _conn().rpush("test:handlers", "second")
    return False


def handler_never(job, exc_type, exc_value, tb):
    _conn().rpush("test:handlers", "third")


def handler_raises(job, exc_type, exc_value, tb):
    raise RuntimeError("handler bug")
