"""Job functions for the Redis Cluster tests.

On a cluster a job's connection (``get_current_job().connection``) serves only the
hash slot of its prefix, so what a job records goes under that prefix too.
"""

from __future__ import annotations

import time
import uuid

import redis

from geventq import get_current_job

RUNS = "test:runs:"  # + job id, under the job's prefix: one token per execution


def record(pause: float = 0.0):
    """Record this execution (once, even if the write is re-sent), then sleep ``pause`` s."""
    job = get_current_job()
    token = uuid.uuid4().hex
    deadline = time.monotonic() + 60
    while True:  # a failover may be under way: the record itself must not fail the job
        try:
            job.connection.sadd(job.keys.prefix + RUNS + job.id, token)
            break
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # back-off of the job's own retry, within its deadline
    time.sleep(pause)  # the job's body
    return job.id


def executions(connection, prefix: str, job_ids) -> list[int]:
    """How many times each of these ``record`` jobs ran."""
    pipe = connection.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.scard(prefix + RUNS + job_id)
    return pipe.execute()


def where(tag: str):
    """Return the port of the Redis this job's connection talks to (its slot's primary)."""
    job = get_current_job()
    return [tag, job.connection.connection_pool.route.primary()[1]]
