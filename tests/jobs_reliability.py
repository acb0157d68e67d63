"""Job functions for the reliability tests (crashes, Redis faults, bad input).

Jobs that record their executions write through the worker's own connection
(``get_current_job().connection``), so they work unchanged over TLS, an ACL
user or Sentinel, and follow a failover with the worker.
"""

from __future__ import annotations

import random
import time
import uuid

import redis

from geventq import get_current_job

RUNS = "test:runs:"  # + job id: a set of one token per execution of that job
EXECUTIONS = "test:executions"  # hash: job id -> how many times it ran (jobs that cannot retry)
EXECUTED = "test:executed"  # set of job ids that ran at least once
COUNTER = "test:count"  # total executions


def record(pause: float = 0.0, jitter: float = 0.0):
    """Record this execution, then sleep ``pause`` (+ up to ``jitter``) seconds."""
    job = get_current_job()
    token = uuid.uuid4().hex  # re-sending the record after a lost reply counts once
    deadline = time.monotonic() + 60
    while True:  # Redis may be restarting: the record itself must not be what fails the job
        try:
            pipe = job.connection.pipeline(transaction=True)
            pipe.sadd(RUNS + job.id, token)
            pipe.sadd(EXECUTED, job.id)
            pipe.incr(COUNTER)
            pipe.execute()
            break
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # back-off of the job's own retry, within its deadline
    time.sleep(pause + random.uniform(0, jitter))  # the job's body
    return job.id


def executions(connection, job_ids) -> list[int]:
    """How many times each of these ``record`` jobs ran."""
    pipe = connection.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.scard(RUNS + job_id)
    return pipe.execute()


def spin(seconds: float):
    """Hold the CPU (and the gevent hub) for ``seconds`` without ever yielding."""
    job = get_current_job()
    job.connection.hincrby(EXECUTIONS, job.id, 1)
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def unpicklable():
    """Returns a generator: pickle cannot store it."""
    return (i for i in range(3))


def add(x, y):
    return x + y


class Payload:
    """An argument whose class the tests make vanish (by renaming its module in the pickle)."""

    def __init__(self, value):
        self.value = value


def use_payload(payload):
    return payload.value
