"""Every exception geventq raises."""

from __future__ import annotations


class GeventqError(Exception):
    """Base class of geventq's own errors."""


class ConfigError(GeventqError):
    """A settings file or command-line option is wrong."""


class NoSuchJobError(GeventqError):
    """The job does not exist in Redis (never enqueued, deleted or expired)."""


class DuplicateJobError(GeventqError):
    """A job with this id is already queued, deferred, scheduled or running."""


class InvalidJobOperation(GeventqError):
    """The operation does not fit the job's current status."""


class DeserializationError(GeventqError):
    """A job's stored data cannot be turned back into Python objects."""


class JobFailed(GeventqError):
    """Raised by ``Job.wait()`` when the job failed; carries its ``exc_info``."""

    def __init__(self, job_id: str, exc_info: str | None):
        super().__init__(f"job {job_id} failed:\n{exc_info or '(no traceback recorded)'}")
        self.job_id = job_id
        self.exc_info = exc_info


class JobTimeoutException(BaseException):
    """A job ran past its timeout.

    A ``BaseException`` on purpose: a job's own ``except Exception:`` must not
    swallow its timeout. The worker turns it into a job failure.
    """


class StopRequested(BaseException):
    """Raised inside a job's greenlet by ``geventq stop JOB_ID``."""


class ShutdownRequested(BaseException):
    """Raised inside a job's greenlet by a cold shutdown; the job is requeued."""


class ChildProcessDied(GeventqError):
    """The forked child running a fork-queue job died (a signal, or an exit) before it
    reported how the job ended; the job fails with this, naming the signal or exit code."""


class JobNotAllowed(GeventqError):
    """A job names a function (or callback) outside the worker's ``JOB_MODULES``; it fails
    with this reason and nothing of it runs."""


class RateLimited(GeventqError):
    """Raised by a job that was told to slow down (an HTTP 429, say).

    The job is not failed and spends no retry: it is ``scheduled`` again
    ``retry_after`` seconds from now, and when it has a limit key
    (``Limit``), no other job of that key starts before then.
    """

    def __init__(self, retry_after: float = 1.0, message: str | None = None):
        if isinstance(retry_after, bool) or not isinstance(retry_after, (int, float)) \
                or not 0 <= retry_after <= 366 * 86400:  # also refuses nan
            raise ValueError(f"RateLimited retry_after must be a number of seconds from 0 to "
                             f"{366 * 86400}, got {retry_after!r}")
        super().__init__(message or f"rate limited: retry after {retry_after:g} s")
        self.retry_after = float(retry_after)
