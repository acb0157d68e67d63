"""Job and callback functions for the retry, scheduler and callback tests.

Importable by worker processes as ``tests.jobs_sched``; they report through
Redis lists that the tests read.
"""

from __future__ import annotations

import json
import time

from geventq import get_current_job


def fail_and_record(key):
    """Records when this try started (the job's own started_at), then fails."""
    job = get_current_job()
    job.connection.rpush(key, repr(job.started_at.timestamp()))
    raise ValueError(f"try {job.connection.llen(key)} failed")


def flaky(key, failures):
    """Fails the first ``failures`` calls, then returns the number of calls."""
    calls = get_current_job().connection.incr(key)
    if calls <= failures:
        raise RuntimeError(f"call {calls} fails")
    return calls


def record_run(key):
    """Records (job id, started_at) of this run."""
    job = get_current_job()
    job.connection.rpush(key, json.dumps([job.id, job.started_at.timestamp()]))
    return job.id


def record_occurrence(key):
    """Records the periodic occurrence this job was enqueued for, and when it ran."""
    job = get_current_job()
    job.connection.rpush(key, json.dumps([job.extra.get("occurrence"), time.time(), job.id]))


def add(x, y):
    return x + y


def fail(message="boom"):
    raise ValueError(message)


# -- callbacks --------------------------------------------------------------------
def on_success_record(job, connection, result):
    connection.rpush("cb:success", json.dumps([job.id, result]))


def on_failure_record(job, connection, exc_type, exc_value, traceback):
    connection.rpush("cb:failure", json.dumps(
        [job.id, exc_type.__name__, str(exc_value), traceback is not None]))


def raising_callback(job, connection, *args):
    raise RuntimeError("the callback broke")


def slow_callback(job, connection, *args):
    time.sleep(30)


class Holder:
    def method(self, job, connection, result):
        pass
