"""Job timeouts enforced with ``gevent.Timeout``.

A ``gevent.Timeout`` fires only when the job's greenlet yields to the hub; a
job that never yields (a CPU loop, a long C call) is not interrupted. Such
jobs belong on fork queues; the hub guard reports the ones that block.
"""

from __future__ import annotations

import gevent

from ..exceptions import JobTimeoutException
from ..execution import time_limit
from ..job import Job


def gevent_death_penalty(job: Job) -> gevent.Timeout:
    """A Timeout raising ``JobTimeoutException`` after the job's timeout (none for -1)."""
    return gevent.Timeout(time_limit(job.timeout), JobTimeoutException(
        f"job {job.id} ({job.func_name}) exceeded its timeout of {job.timeout} s"))
