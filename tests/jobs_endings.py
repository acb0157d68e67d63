"""Job functions and handlers for the tests of how jobs end (tests/test_endings*.py)."""

from __future__ import annotations

import os
import time

import redis

from geventq import get_current_job

RUNS = "test:endings:runs"  # hash: job id -> how many times its function began
IN_HANDLER = "test:endings:in-handler"  # list: ids of jobs whose exception handler runs


def _conn():
    return redis.Redis.from_url(os.environ["REDIS_URL"])


def _count_run():
    job = get_current_job()
    job.connection.hincrby(RUNS, job.id, 1)


def raise_surrogate():
    """Fails with a message UTF-8 cannot encode (a lone surrogate, as from os.fsdecode)."""
    _count_run()
    raise ValueError("cannot read /data/caf\udcff.csv")


def fail_once_counted():
    _count_run()
    raise RuntimeError("the job failed")


def slow_handler(job, exc_type, exc_value, tb):
    """An exception handler that takes a while (cooperatively under gevent)."""
    _conn().rpush(IN_HANDLER, job.id)
    time.sleep(1.5)


def counted_sleep(seconds):
    _count_run()
    time.sleep(seconds)
    return "slept"


def runs(connection, job_id: str) -> int:
    """How many times the function of job ``job_id`` began."""
    return int(connection.hget(RUNS, job_id) or 0)
