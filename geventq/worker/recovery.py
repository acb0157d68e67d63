"""No job left behind: every live worker recovers the jobs of dead ones, and its own.

Two checks, shared by every kind of worker:

``DeadWorkerRecovery``
    A native thread in every live worker. About twice per heartbeat interval
    (with jitter, so a fleet does not sweep in lock-step) it asks Redis which
    registered workers' keys have lapsed (one SMEMBERS and one pipelined
    EXISTS) and puts their in-flight jobs back on their queues, or fails them
    with ``abandoned: worker <name> died`` past ``MAX_ABANDONED_REQUEUES``.
    A lapsed key counts only once Redis has been reachable long enough for
    every live worker to have beaten (its key may lapse while Redis is away).
    Each job is moved by one Lua script, so two workers sweeping at once never
    both recover the same job. It runs in a native thread for the same reason
    the heartbeat does: a job may block a gevent hub, or the only thread of a
    ``SimpleWorker``, for a long time, and recovering *other* workers must not
    wait for it.

``lost_claims``
    A worker's own in-flight set can hold ids the worker does not know about:
    a claim whose reply was lost (redis-py re-sends a command after a dropped
    connection, so a claim may run twice and the first reply is never read),
    or an ending written just before a failover that the new primary never got.
    Such a job would wait for the worker's death forever. The worker compares
    the set with the jobs it holds, now and then and after every Redis error,
    and starts what it finds again.

Liveness is the heartbeat key only, never the age of a job: a job that runs
for hours on a live worker is never recovered.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Collection

import redis

from .. import lifecycle
from ..connection import clone_connection
from ..keys import Keys
from ..redis_errors import describe, is_transient
from ..utils import as_str, backoff_delay
from .heartbeat import StopFlag, native

logger = logging.getLogger("geventq.worker")

_JITTER = (0.4, 0.6)  # the sweep period is the heartbeat interval times this


class DeadWorkerRecovery:
    """Periodically recovers the in-flight jobs of workers whose heartbeat lapsed.

    A lapsed key means a dead worker only if Redis was reachable all along:
    while Redis restarts or the network is cut, every key may lapse, and a live
    worker needs one heartbeat after that to bring its key back. So a worker is
    recovered only when this recoverer has seen Redis without trouble (no
    failed or slow sweep) for ``confirm`` seconds and Redis has been up at least
    that long; otherwise the sweep waits for the next turn. ``own_name`` is
    never recovered.
    """

    def __init__(self, connection: redis.Redis, keys: Keys, own_name: str, interval: float,
                 max_requeues: int, confirm: float | None = None) -> None:
        self.connection = connection
        self.keys = keys
        self.own_name = own_name
        self.interval = max(0.05, float(interval))
        self.max_requeues = max_requeues
        # a live worker beats within one interval (or redis-py's 1 s retry cap) of Redis' return
        self.confirm = max(self.interval, 1.0) + 0.5 if confirm is None else confirm
        # longer than this between two good sweeps, or for one sweep, means trouble
        self.max_gap = self.interval * _JITTER[1] + 1.0
        self._last_ok: float | None = None
        self._calm_since = 0.0
        self._client: redis.Redis | None = None
        self._stop = StopFlag(0.1)
        self._failures = 0
        self._lock = native("_thread", "allocate_lock")()

    # -- one sweep ------------------------------------------------------------
    def sweep(self) -> dict[str, str]:
        """Recover every dead worker once (if Redis has been calm); {job id: outcome}."""
        client = self._client or self.connection
        began = time.monotonic()
        if self._last_ok is None or began - self._last_ok > self.max_gap:
            self._calm_since = began
        dead = [n for n in lifecycle.dead_workers(client, self.keys) if n != self.own_name]
        self._last_ok = time.monotonic()
        if self._last_ok - began > self.max_gap:
            self._calm_since = self._last_ok  # redis-py was retrying: Redis was away
        if not dead or not self._calm(client):
            return {}
        outcomes: dict[str, str] = {}
        for name in dead:
            recovered = lifecycle.recover_worker(client, self.keys, name, self.max_requeues)
            outcomes.update(recovered)
            acted = sorted(job_id for job_id, o in recovered.items() if o in ("queued", "failed"))
            if acted:
                requeued = sum(1 for job_id in acted if recovered[job_id] == "queued")
                logger.warning("worker %s died: %d job(s) put back on their queues, %d failed "
                               "as abandoned: %s", name, requeued, len(acted) - requeued,
                               " ".join(acted[:10]))
            else:
                logger.info("worker %s died with no job in flight: forgotten", name)
        return outcomes

    def _calm(self, client: redis.Redis) -> bool:
        """Has Redis been reachable long enough for every live worker to have beaten?"""
        if self._last_ok is not None and self._last_ok - self._calm_since < self.confirm:
            return False
        try:
            uptime = float(client.info("server").get("uptime_in_seconds", 0))
        except redis.ResponseError:  # an ACL user without INFO: the sweeps' calm must do
            return True
        return uptime >= self.confirm

    # -- the thread -------------------------------------------------------------
    def start(self) -> None:
        """Sweep from a native thread until ``stop()``, the first time after one interval."""
        self._client = clone_connection(self.connection)
        # a worker starts once Redis answers (runner.wait_for_redis): trust it from here
        self._last_ok = time.monotonic()
        self._calm_since = self._last_ok - self.confirm
        self._lock.acquire()
        native("_thread", "start_new_thread")(self._run, ())

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait (up to ``timeout``) for a sweep under way to end."""
        self._stop.set()
        if self._lock.acquire(True, timeout):
            self._lock.release()

    def _run(self) -> None:
        try:
            delay = self.interval * random.uniform(*_JITTER)
            while self._stop.pause(delay):
                delay = self._tick()
        finally:
            self._lock.release()
            if self._client is not None:
                self._client.close()

    def _tick(self) -> float:
        """One sweep; returns the seconds until the next."""
        try:
            self.sweep()
            self._failures = 0
        except Exception as exc:
            if not is_transient(exc):  # a bug must not end recovery for the life of the worker
                # (a job no script accepts does not get here: give_back fails it alone)
                logger.exception("recovery of dead workers failed")
                return self.interval * random.uniform(*_JITTER)
            self._last_ok = None
            self._failures += 1
            delay = min(self.interval * 4, backoff_delay(self._failures, base=self.interval / 4))
            logger.warning("recovery of dead workers failed (%s); retrying in %.1f s",
                           describe(exc), delay)
            return delay
        return self.interval * random.uniform(*_JITTER)


def lost_claims(connection: redis.Redis, keys: Keys, worker_name: str,
                held: Collection[str]) -> list[tuple[str, str]]:
    """Ids in the worker's in-flight set that it does not hold: [(queue name, job id)].

    ``held`` must be taken *before* this call, by the code that claims jobs (so
    no claim runs meanwhile): then an id in the set and not in ``held`` can only
    be a claim whose reply was lost, or an ending Redis lost. Ids whose job is
    gone, or already ended, are dropped from the set here.
    """
    in_flight = keys.worker_jobs(worker_name)
    ids = [i for i in (as_str(m) for m in connection.smembers(in_flight)) if i not in held]
    if not ids:
        return []
    lost, stale = lifecycle.drop_stale_claims(connection, keys, worker_name, ids)
    if stale:
        logger.warning("dropped %d id(s) from worker %s's in-flight set whose jobs are gone or "
                       "ended: %s", len(stale), worker_name, " ".join(stale[:10]))
    if lost:
        logger.warning("worker %s holds %d claimed job(s) it was not running (a reply lost to a "
                       "connection error or a failover); running them now: %s", worker_name,
                       len(lost), " ".join(job_id for _, job_id in lost[:10]))
    return lost
