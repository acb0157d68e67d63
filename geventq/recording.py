"""Recording how jobs ended, so that no job's ending can stop a worker.

Every worker writes its endings through :func:`record_until_taken`:

- A *transient* error (Redis away, busy, loading, read-only, out of memory; see
  :mod:`geventq.redis_errors`) is retried, for the whole batch, with back-off,
  until Redis takes it: the results are kept. Sending a batch again is safe even
  if part of it was written: a script ends only the jobs the worker still holds.
- Any *other* error is one job's problem, never the worker's: its hash holds a
  value no script accepts, a key a hostile writer replaced, text that cannot be
  encoded, or a bug. The batch is split in halves, and each half written on its
  own, until the endings that fail are alone (a batch with one bad ending costs
  about 2 log2(n) more round trips; a healthy batch costs none). Each such job is
  then recorded as *failed*, with a reason naming the error and, for a failure,
  its own traceback (:func:`record_last_resort`); the others are written as they
  were.

Before any of that, :func:`fit_to_redis` measures every value against the server's
``proto-max-bulk-len`` (:mod:`geventq.redis_limits`): Redis answers a value past it by
closing the connection, an error that looks transient and would be retried forever.
A result that does not fit fails its job, with a reason naming both sizes; a
failure's text that does not fit is cut (its start and end kept).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import redis

from . import lifecycle, scripts
from .endings import Ending, ascii_text
from .keys import Keys
from .redis_errors import describe, is_transient
from .redis_limits import size_of, too_large
from .utils import as_text, backoff_delay

logger = logging.getLogger("geventq.worker")

RETRY_CAP = 5.0  # longest back-off after Redis errors: work resumes soon after Redis does


def record_until_taken(connection: redis.Redis, keys: Keys, worker_name: str,
                       endings: Sequence[Ending], extra_commands: Sequence[tuple] = (),
                       sleep: Callable[[float], object] = lambda seconds: None,
                       channel: scripts.Channel | None = None) -> None:
    """Record ``endings`` (and ``extra_commands``, e.g. the worker's counters); retry
    transient errors with back-off (``sleep``) until Redis takes them. Never raises."""
    attempt = 0
    fitted: list[Ending] | None = None  # measured once, not again on every retry
    while True:
        try:
            if fitted is None:
                fitted = fit_to_redis(connection, endings)
            _record_fitted(connection, keys, worker_name, fitted, extra_commands, channel)
        except Exception as exc:
            if not is_transient(exc):  # record_endings keeps every other error to its job
                logger.exception("could not record %d ended job(s): %s; the worker goes on "
                                 "without them", len(endings), describe(exc))
                return
            attempt += 1
            delay = backoff_delay(attempt, cap=RETRY_CAP)
            logger.warning("could not record %d ended job(s) (%s); retrying in %.1f s",
                           len(endings), describe(exc), delay)
            sleep(delay)
            continue
        if attempt:
            logger.info("recorded %d ended job(s) after %d retries", len(endings), attempt)
        return


def record_endings(connection: redis.Redis, keys: Keys, worker_name: str,
                   endings: Sequence[Ending], extra_commands: Sequence[tuple] = (),
                   channel: scripts.Channel | None = None) -> None:
    """Record ``endings``, in one round trip when nothing is wrong. An ending that cannot
    be written for a reason retrying cannot fix fails its job alone. Raises only
    transient errors (the caller sends the same endings again)."""
    _record_fitted(connection, keys, worker_name, fit_to_redis(connection, endings),
                   extra_commands, channel)


def _record_fitted(connection: redis.Redis, keys: Keys, worker_name: str,
                   endings: Sequence[Ending], extra_commands: Sequence[tuple] = (),
                   channel: scripts.Channel | None = None) -> None:
    """:func:`record_endings` of endings already fitted to Redis' limits."""
    try:
        lifecycle.end_jobs(connection, keys, worker_name, endings, extra_commands, channel)
        return
    except Exception as exc:
        if is_transient(exc):
            raise
        error = exc
    if len(endings) == 1:
        record_last_resort(connection, keys, worker_name, endings[0], error, channel)
        return
    half = len(endings) // 2
    for part in (endings[:half], endings[half:]):  # the counters went with the first try
        _record_fitted(connection, keys, worker_name, part, channel=channel)


def record_last_resort(connection: redis.Redis, keys: Keys, worker_name: str, ending: Ending,
                       error: BaseException, channel: scripts.Channel | None = None) -> None:
    """Fail the job of an ending that cannot be written, with a reason in plain ASCII.

    Its dependents that allow failure are released and ``Job.wait()`` callers woken,
    as for any failure. If even that cannot be written (a key of the wrong type),
    the job is taken out of the worker's hands and marked failed by
    :func:`geventq.lifecycle.fail_started`. Raises only transient errors.
    """
    job = ending.job
    reason = f"geventq could not record how job {job.id} ({job.func_name}) ended " \
             f"({ending.outcome}), so it is failed instead: {describe(error)}"
    if ending.outcome != "finished" and ending.payload:
        reason += f"\nHow it ended:\n{as_text(ending.payload)}"
    reason = ascii_text(reason)
    logger.error("%s", reason.splitlines()[0])
    try:
        lifecycle.end_jobs(connection, keys, worker_name,
                           [Ending(job, "failed", reason, last_resort=True)], channel=channel)
        return
    except Exception as exc:
        if is_transient(exc):
            raise
        second = exc
    logger.error("job %s: its failure could not be recorded either (%s); taking it out of "
                 "worker %s's hands", ascii_text(job.id), describe(second), worker_name)
    lifecycle.fail_started(connection, keys, worker_name, job.id, job.origin or "",
                           f"{reason}\nThen: {describe(second)}")


def fit_to_redis(connection: redis.Redis, endings: Sequence[Ending]) -> list[Ending]:
    """``endings`` with every value the server would refuse as too large replaced: a
    result (or an extra field) by a failure saying so, a failure's text by its start
    and end. Endings that fit are returned as they are (the same objects)."""
    fitted = []
    for ending in endings:
        fitted.append(_fit(connection, ending))
    return fitted


def _fit(connection: redis.Redis, ending: Ending) -> Ending:
    job = ending.job
    limit = too_large(connection, ending.payload)
    if limit is not None and ending.outcome != "finished":
        return dataclasses.replace(ending, payload=_cut(as_text(ending.payload), limit),
                                   extra=dict(ending.extra), dependents=list(ending.dependents))
    what = "result"
    if limit is None:
        for name, value in ending.extra.items():
            limit = too_large(connection, value)
            if limit is not None:
                what, value_size = f"field {ascii_text(str(name), 100)}", size_of(value)
                break
        else:
            return ending
    else:
        value_size = size_of(ending.payload)
    reason = (f"geventq could not store the {what} of job {ascii_text(job.id, 200)} "
              f"({ascii_text(str(job.func_name), 200)}): {value_size} bytes, more than the "
              f"Redis server's proto-max-bulk-len of {limit} bytes, so the job is failed "
              f"instead (return something smaller, e.g. a key or a path to the data)")
    logger.error("%s", reason)
    return Ending(job, "failed", reason, dependents=list(ending.dependents), last_resort=True)


def _cut(text: str, limit: int) -> str:
    """``text`` cut to fit in ``limit`` bytes of UTF-8: its start and its end, marked."""
    budget = max(limit // 4 - 200, 0) // 2  # characters kept at each end (UTF-8: <= 4 bytes)
    cut = len(text) - 2 * budget
    return f"{text[:budget]}\n... [{cut} characters cut: the text was larger than the Redis " \
           f"server's proto-max-bulk-len of {limit} bytes] ...\n{text[-budget:] if budget else ''}"
