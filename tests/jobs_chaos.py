"""Job functions for the chaos and Redis-limit tests."""

from __future__ import annotations

import redis

from geventq.job import Job
from tests.jobs_reliability import record


def big_result(nbytes: int) -> bytes:
    """Return ``nbytes`` bytes: a result near (or past) the server's proto-max-bulk-len."""
    return b"r" * nbytes


def record_big(nbytes: int, pause: float = 0.0) -> bytes:
    """Record this execution (tests.jobs_reliability.record), then return ``nbytes`` bytes."""
    record(pause)
    return b"r" * nbytes


def fail_big(nchars: int):
    """Raise an exception whose message holds ``nchars`` characters."""
    raise RuntimeError("start-of-message " + "m" * nchars + " end-of-message")


class FlakyFetchJob(Job):
    """A Job class (``--job-class``) whose first load of each job fails as a dropped
    connection would: what a fork child meets when Redis restarts or a CLIENT KILL hits
    the moment it loads its job."""

    @classmethod
    def fetch(cls, id, connection=None, **kwargs):  # noqa: A002 (Job.fetch's signature)
        if connection.sadd("test:flaky-fetch", id):  # the first load of this job
            raise redis.ConnectionError("Connection closed by server. (injected by the test)")
        return super().fetch(id, connection=connection, **kwargs)
