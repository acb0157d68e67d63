"""The scheduler: queues scheduled jobs when they are due, and runs ``PERIODIC``.

Any worker started with ``--with-scheduler`` runs one, but only one is active
per Redis at a time: the holder of a lock (``SET NX PX``) that it renews on
every tick (at least every second) and deletes when it stops. If the holder
dies, the lock expires after ``SCHEDULER_LOCK_TTL`` seconds and the next
worker that looks (they look every ``min(1, ttl / 3)`` s) takes over.

The active scheduler scans the scheduled registry of every queue in the
``queues`` set, moves the due jobs to their queues with one Lua script per
queue and batch (status scheduled -> queued, pushed, wake token set), then
sleeps until the next due time, at most ``min(1, ttl / 3)`` s: a due job is
queued within about a second. Each script re-checks that an id is still due
and scheduled, so a job is queued once even if two schedulers overlap.

This module never imports gevent: the worker passes a ``wait(seconds)``
function (its stop event's ``wait``) and runs :meth:`Scheduler.run` on a
greenlet.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import redis

from . import scripts
from .keys import Keys
from .periodic import PeriodicEnqueuer, PeriodicJob, parse_periodic
from .queue import Queue
from .setting_rules import scheduler_lock_ttl
from .utils import as_str, backoff_delay, now, printable, text_ids

logger = logging.getLogger("geventq.scheduler")

DEFAULT_SCHEDULER_LOCK_TTL = 10.0  # seconds
_MAX_SLEEP = 1.0  # seconds between ticks at most
_BATCH = 200  # due jobs moved per script call


class Scheduler:
    """One candidate scheduler (active while it holds the lock)."""

    def __init__(self, connection: redis.Redis, keys: Keys, name: str,
                 periodic: list[PeriodicJob] | Any = (),
                 lock_ttl: float = DEFAULT_SCHEDULER_LOCK_TTL, serializer: Any = None,
                 queue_class: type[Queue] = Queue, job_class: Any = None):
        self.connection = connection
        self.keys = keys
        self.name = name
        self.lock_ttl = scheduler_lock_ttl(lock_ttl)
        self.tick_interval = min(_MAX_SLEEP, self.lock_ttl / 3)
        if not all(isinstance(e, PeriodicJob) for e in periodic or ()):
            periodic = parse_periodic(periodic, connection, keys, serializer, queue_class)
        self.periodic = PeriodicEnqueuer(list(periodic or ()), connection, keys, serializer,
                                         queue_class, job_class)
        self.active = False

    def __repr__(self) -> str:
        return f"Scheduler({self.name!r}, active={self.active})"

    # -- the lock ------------------------------------------------------------
    def hold_lock(self) -> bool:
        """Take the lock if free, renew it if ours; True while this scheduler is active."""
        held = scripts.call(self.connection, "scheduler_lock", [self.keys.scheduler_lock],
                            [self.name, "hold", int(self.lock_ttl * 1000)]) == 1
        if held and not self.active:
            logger.info("scheduler active on worker %s", self.name)
            self.periodic.publish()
        elif self.active and not held:
            logger.warning("scheduler on worker %s lost its lock to another worker", self.name)
        self.active = held
        return held

    def release(self) -> None:
        """Give the lock up (only if ours), so another worker takes over at once."""
        if self.active:
            scripts.call(self.connection, "scheduler_lock", [self.keys.scheduler_lock],
                         [self.name, "release", 0])
            self.active = False
            logger.info("scheduler on worker %s stopped", self.name)

    # -- one tick ------------------------------------------------------------
    def enqueue_due(self, moment: float | None = None) -> tuple[int, float | None]:
        """Queue every due scheduled job; return (how many, when the next one is due)."""
        moment = now() if moment is None else moment
        k = self.keys
        names = sorted(as_str(n) for n in self.connection.smembers(k.queues))
        if not names:
            return 0, None
        pipe = self.connection.pipeline(transaction=False)
        for name in names:
            pipe.zrangebyscore(k.registry("scheduled", name), "-inf", moment, start=0, num=_BATCH)
        for name in names:
            pipe.zrangebyscore(k.registry("scheduled", name), f"({moment!r}", "+inf", start=0,
                               num=1, withscores=True)
        replies = pipe.execute()
        due, upcoming = replies[:len(names)], replies[len(names):]
        next_due = min((first[0][1] for first in upcoming if first), default=None)
        batch = scripts.ScriptBatch()
        for name, ids in zip(names, due):
            if ids:
                ids = [as_str(i) for i in ids]
                batch.add("schedule_due", [
                    k.registry("scheduled", name), k.queue(name), k.wake(name), k.queues,
                    k.expiring(name), *(k.job(i) for i in ids),
                ], [name, repr(moment), *ids])
                if len(ids) == _BATCH:
                    next_due = moment  # more are due: come back at once
        moved = sum(batch.execute(self.connection))
        if moved:
            logger.info("scheduler queued %d due job(s)", moved)
        return moved, next_due

    def tick(self) -> float:
        """Hold the lock and, if active, queue what is due; return seconds to wait."""
        if not self.hold_lock():
            return self.tick_interval
        _, next_due = self.enqueue_due()
        next_run = self.periodic.enqueue_due()
        soonest = min(t for t in (next_due, next_run, math.inf) if t is not None)
        return max(0.0, min(self.tick_interval, soonest - now()))

    def run(self, wait: Callable[[float], Any]) -> None:
        """Tick until ``wait(seconds)`` returns true (the stop signal); then release the lock."""
        failures = 0
        try:
            while True:
                try:
                    delay = self.tick()
                    failures = 0
                except redis.RedisError as exc:
                    failures += 1
                    delay = backoff_delay(failures, base=0.2, cap=self.tick_interval)
                    logger.warning("scheduler: Redis error (%s: %s); retrying in %.1f s",
                                   type(exc).__name__, exc, delay)
                except Exception:
                    logger.exception("scheduler tick failed; trying again")
                    delay = self.tick_interval
                if wait(delay):
                    return
        finally:
            try:
                self.release()
            except redis.RedisError:
                pass  # the lock expires on its own


def scheduler_for_worker(worker: Any, with_scheduler: bool = False, periodic: Any = None,
                         lock_ttl: float | None = None) -> Scheduler | None:
    """The worker's scheduler, or None; ``PERIODIC`` is validated either way."""
    entries = parse_periodic(periodic, worker.connection, worker.keys, worker.serializer,
                             worker.queue_class)
    if not with_scheduler:
        if entries:
            logger.warning("PERIODIC is set but worker %s runs no scheduler (--with-scheduler): "
                           "another worker must run one", worker.name)
        return None
    return Scheduler(worker.connection, worker.keys, worker.name, entries,
                     lock_ttl=DEFAULT_SCHEDULER_LOCK_TTL if lock_ttl is None else lock_ttl,
                     serializer=worker.serializer, queue_class=worker.queue_class,
                     job_class=worker.job_class)


def render_schedule(connection: redis.Redis, keys: Keys, queue_names: list[str]) -> list[str]:
    """Lines of ``geventq info``: the active scheduler, the next scheduled jobs, periodic jobs."""
    pipe = connection.pipeline(transaction=False)
    pipe.get(keys.scheduler_lock)
    pipe.pttl(keys.scheduler_lock)
    pipe.hgetall(keys.periodic_entries())
    pipe.hgetall(keys.periodic())
    for name in queue_names:
        pipe.zrange(keys.registry("scheduled", name), 0, 4, withscores=True)
    holder, pttl, entries, last, *firsts = pipe.execute()
    # read from Redis, where anyone may write: what cannot be read is shown as '?'
    upcoming = sorted((score, name, job_id) for name, first in zip(queue_names, firsts)
                      for job_id, score in first if text_ids([job_id]))[:5]
    if not (holder or entries or upcoming):
        return []
    lines = [f"scheduler: active on {printable(holder)} (lock renewed, expires in "
             f"{pttl / 1000:.1f} s)" if holder else
             "scheduler: none active (start a worker with --with-scheduler)"]
    if upcoming:
        pipe = connection.pipeline(transaction=False)
        for _, _, job_id in upcoming:
            pipe.hget(keys.job(as_str(job_id)), "func")
        lines.append("next scheduled job(s):")
        for (score, name, job_id), func in zip(upcoming, pipe.execute()):
            lines.append(f"  {_when(score)}  {name:<12} {printable(job_id)}  {printable(func or '?')}")
    if entries:
        lines.append(f"{len(entries)} periodic job(s):")
        last = {printable(k): printable(v) for k, v in last.items()}
        for name, raw in sorted((printable(k), printable(v)) for k, v in entries.items()):
            lines.append(f"  {name}: {_periodic_line(raw, last.get(name))}")
    return lines


def _periodic_line(raw: str, last: str | None) -> str:
    """What ``geventq info`` says of one periodic entry (its JSON, its last occurrence)."""
    try:
        info = json.loads(raw)
        line = f"{info['schedule']}, {info['func']} on {info['queue']};" \
               f"  next {_when(info['next'])}"
    except (ValueError, TypeError, KeyError):
        return f"<invalid entry {raw[:80]!r}>"
    try:
        previous = _when(float(last)) if last else "never"
    except ValueError:
        previous = "?"
    return f"{line}  last occurrence {previous}"


def _when(timestamp: float) -> str:
    try:
        when = datetime.fromtimestamp(float(timestamp), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")
