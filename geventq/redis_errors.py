"""Which errors retrying can fix: the one place a worker decides whether to retry.

A worker retries a Redis call (writing an ending, claiming, putting a job back,
recovering a dead worker) only when the error is *transient*: the server was
unreachable, busy, loading, read-only, out of memory, or refusing this client
until an operator acts. Such an error says nothing about the job; the same call
succeeds once Redis is well again.

Any other error is *permanent* for that call: a script error such as ``value
is not an integer``, ``WRONGTYPE`` (a key a hostile writer replaced), a value
that cannot be encoded, a bug. Sending the same call again gives the same
error forever, so the worker does not: the job the call was about fails alone,
with the error as its reason, and the worker goes on.
"""

from __future__ import annotations

import redis
from redis import exceptions as errors

# First word of an error reply that says "Redis cannot do it now", not "this call is wrong".
# OOM: maxmemory reached; MISCONF: RDB snapshots failing; NOREPLICAS: min-replicas-to-write;
# NOPERM/NOAUTH: an ACL refuses this client (an operator fixes it, not the job).
TRANSIENT_CODES = frozenset({
    "BUSY", "LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "OOM", "MISCONF",
    "NOREPLICAS", "NOPERM", "NOAUTH", "NOSCRIPT", "UNBLOCKED",
})

_TRANSIENT_CLASSES = (
    redis.ConnectionError,  # also BusyLoadingError (LOADING), AuthenticationError, max clients
    redis.TimeoutError,
    ConnectionError,  # the builtin ones (an OSError from a socket redis-py did not wrap)
    TimeoutError,
    errors.ReadOnlyError,
    errors.OutOfMemoryError,
    errors.TryAgainError,
    errors.ClusterDownError,
    errors.MasterDownError,
    errors.NoPermissionError,
    errors.NoScriptError,
)


def is_transient(exc: BaseException) -> bool:
    """True when the same call may succeed later; False when it never will."""
    if isinstance(exc, _TRANSIENT_CLASSES):
        return True
    if isinstance(exc, redis.ResponseError):
        return error_code(exc) in TRANSIENT_CODES
    return False


def error_code(exc: BaseException) -> str:
    """The first word of an error reply redis-py left in its message ('WRONGTYPE',
    'BUSY'...), or ''. (It strips the codes it has a class for: those are tested by class.)"""
    words = str(exc).split(None, 1)
    return words[0] if words and words[0].isupper() else ""


def describe(exc: BaseException) -> str:
    """'ResponseError: value is not an integer or out of range' (one line)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
