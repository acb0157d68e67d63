"""The job running in the current greenlet, thread or process."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .job import Job

# A ContextVar is per greenlet under gevent (greenlet >= 0.4.17), per thread
# otherwise: each of the hundreds of jobs of a GeventWorker sees its own job.
_current_job: ContextVar[Job | None] = ContextVar("geventq_current_job", default=None)


def get_current_job() -> Job | None:
    """Return the job being run by the calling greenlet, or None outside a job."""
    return _current_job.get()


def set_current_job(job: Job | None):
    """Make ``job`` current; returns a token for :func:`reset_current_job`."""
    return _current_job.set(job)


def reset_current_job(token) -> None:
    _current_job.reset(token)
