"""Recover: give back the started jobs of a worker that stops or died (``requeue_started.lua``),
fail those no script can take, sort a worker's stale claims (``drop_stale_claims.lua``)
and forget dead workers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis

from .. import scripts
from ..defaults import DEFAULT_FAILURE_TTL, DEFAULT_MAX_ABANDONED_REQUEUES
from ..endings import ascii_text
from ..keys import Keys
from ..redis_errors import describe, is_transient
from ..releasing import child_args, child_keys, with_queues
from ..utils import as_str, now

logger = logging.getLogger("geventq.worker")


def requeue_started(connection: redis.Redis, keys: Keys, owner: str, job_id: str,
                    queue_name: str, reason: str,
                    max_requeues: int = DEFAULT_MAX_ABANDONED_REQUEUES,
                    failure_ttl: int = DEFAULT_FAILURE_TTL) -> str:
    """Put a started job of worker ``owner`` back at the head of its queue.

    After ``max_requeues`` such returns the job is failed with ``reason``
    instead. Returns 'queued', 'failed', or why nothing was done ('gone',
    'missing', 'not-started'). Safe to race: only one caller acts.
    """
    children: list[tuple[str, str]] = []
    while True:
        reply = scripts.call(connection, "requeue_started", [
            keys.job(job_id), keys.registry("started", queue_name), keys.worker_jobs(owner),
            keys.queue(queue_name), keys.wake(queue_name), keys.queues,
            keys.registry("failed", queue_name), keys.waiters(job_id), keys.done(job_id),
            keys.dependents(job_id), *child_keys(keys, children),
        ], [job_id, queue_name, repr(now()), max_requeues, failure_ttl, reason, len(children),
            *child_args(children)])
        if as_str(reply[0]) != "dependents":
            return as_str(reply[0])
        # it fails, and has dependents: those that allow failure are released with it
        children = with_queues(connection, keys, [([as_str(i) for i in reply[1]], queue_name)])[0]


def give_back(connection: redis.Redis, keys: Keys, owner: str, job_id: str, queue_name: str,
              reason: str, max_requeues: int = DEFAULT_MAX_ABANDONED_REQUEUES,
              failure_ttl: int = DEFAULT_FAILURE_TTL) -> str:
    """:func:`requeue_started`; a job that cannot be put back for a reason retrying cannot
    fix (its hash holds what no script accepts) is failed with that reason instead.

    Returns what ``requeue_started`` returns, or 'failed'. Transient errors raise.
    """
    try:
        return requeue_started(connection, keys, owner, job_id, queue_name, reason,
                               max_requeues, failure_ttl)
    except Exception as exc:
        if is_transient(exc):
            raise
        why = f"geventq could not put job {job_id} back on its queue ({reason}): {describe(exc)}"
        logger.error("%s; failing it instead", why)
        fail_started(connection, keys, owner, job_id, queue_name, why)
        return "failed"


def fail_started(connection: redis.Redis, keys: Keys, owner: str, job_id: str,
                 queue_name: str, reason: str) -> None:
    """The last resort for a started job that no other script can end: take it out of its
    worker's hands and mark it failed with ``reason``, in one step (``fail_started.lua``)
    whose writes each act even if another fails (a key of the wrong type). Its dependents
    are not released; ``Job.wait()`` callers are woken. Transient errors raise.
    """
    scripts.call(connection, "fail_started", [
        keys.worker_jobs(owner), keys.registry("started", queue_name), keys.job(job_id),
        keys.registry("failed", queue_name), keys.waiters(job_id), keys.done(job_id),
    ], [job_id, repr(now()), ascii_text(reason), DEFAULT_FAILURE_TTL])


def recover_worker(connection: redis.Redis, keys: Keys, worker_name: str,
                   max_requeues: int = DEFAULT_MAX_ABANDONED_REQUEUES) -> dict[str, str]:
    """Put the in-flight jobs of a dead worker back (or fail them); forget the worker.

    Returns {job id: outcome}. Any number of recoverers may race: each job is
    acted on by exactly one of them.
    """
    ids = [as_str(i) for i in connection.smembers(keys.worker_jobs(worker_name))]
    pipe = connection.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(keys.job(job_id), "origin")
    outcomes = {}
    for job_id, origin in zip(ids, pipe.execute(raise_on_error=False)):
        origin = "" if isinstance(origin, Exception) else as_str(origin) or ""
        outcomes[job_id] = give_back(
            connection, keys, worker_name, job_id, origin, max_requeues=max_requeues,
            reason=f"abandoned: worker {worker_name} died while running the job, and the job "
                   f"had already been requeued {max_requeues} time(s)")
    pipe = connection.pipeline(transaction=True)
    forget_worker(pipe, keys, worker_name)
    recovered = sum(1 for outcome in outcomes.values() if outcome in ("queued", "failed"))
    if recovered:  # geventq_recovered_jobs_total
        pipe.hincrby(keys.metrics_totals, "recovered_jobs", recovered)
    pipe.execute()
    return outcomes


def drop_stale_claims(connection: redis.Redis, keys: Keys, worker_name: str,
                      ids: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Sort ids of a worker's in-flight set it does not hold, in one step
    (``drop_stale_claims.lua``): ([(queue name, job id)] of the claims it lost, whose job
    is still queued or started; [ids dropped from the set]: their job is gone or ended).
    """
    reply = scripts.call(connection, "drop_stale_claims",
                         [keys.worker_jobs(worker_name), *(keys.job(i) for i in ids)], list(ids))
    flat, dropped = reply
    lost = [(as_str(flat[i + 1]), as_str(flat[i])) for i in range(0, len(flat), 2)]
    return lost, [as_str(i) for i in dropped]


def forget_worker(pipe: Any, keys: Keys, worker_name: str) -> None:
    """Queue on ``pipe`` (a MULTI) what forgets a worker: its key and its name in the
    set of workers. Its in-flight jobs must be recovered first (:func:`recover_worker`)."""
    pipe.delete(keys.worker(worker_name))
    pipe.srem(keys.workers, worker_name)


def dead_workers(connection: redis.Redis, keys: Keys) -> list[str]:
    """Registered workers whose heartbeat key has lapsed."""
    names = [as_str(n) for n in connection.smembers(keys.workers)]
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.exists(keys.worker(name))
    return [name for name, alive in zip(names, pipe.execute()) if not alive]


def recover_dead_workers(connection: redis.Redis, keys: Keys,
                         max_requeues: int = DEFAULT_MAX_ABANDONED_REQUEUES) -> dict[str, str]:
    """Recover the jobs of every worker whose heartbeat lapsed."""
    outcomes: dict[str, str] = {}
    for name in dead_workers(connection, keys):
        outcomes.update(recover_worker(connection, keys, name, max_requeues))
    return outcomes
