"""Periodic jobs: the ``PERIODIC`` setting, and enqueueing each occurrence once.

An entry is a tuple ``(schedule, func, args, kwargs, options)`` — the last
three optional — or a dict with the same names as keys::

    PERIODIC = [
        ("*/5 * * * *", "pkg.reports.refresh"),                  # cron, every 5 min
        ("0 3 * * *", "pkg.db.vacuum", [], {"full": True}, {"queue": "low"}),
        (30, "pkg.feeds.poll", ["rss"], {}, {"name": "poll-rss", "job_timeout": 20}),
        {"schedule": "* * * * * */10", "func": "pkg.ping", "queue": "high"},
    ]

``schedule`` is a cron expression (5 fields, or 6 with seconds last, as
croniter reads them; evaluated in UTC) or an interval in seconds (a number or
a ``timedelta``). Interval occurrences fall on multiples of the interval since
the epoch, so every pool computes the same ones. ``options`` takes ``queue``
(default ``default``), ``name`` (the entry's identity in Redis; default
``"<func> <schedule>"``; required to tell apart entries with the same function
and schedule) and the job options of ``enqueue`` except ``depends_on`` and
``job_id``.

The active scheduler checks the entries about once a second. For each one, a
Lua script compares the entry's last enqueued occurrence in Redis with what
the scheduler read, and only then advances it and enqueues the job, in one
step: an occurrence is enqueued once however many schedulers run. The first
time an entry is seen, nothing is enqueued for occurrences already past; after
downtime, the missed occurrences are caught up by one run (the latest).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis

from . import scripts
from .callables import describe_callable
from .job_options import JOB_OPTIONS
from .keys import Keys
from .queue import Queue
from .utils import MAX_SECONDS, as_str, now, parse_seconds

logger = logging.getLogger("geventq.scheduler")

_FIELDS = ("schedule", "func", "args", "kwargs", "options")
_ENTRY_OPTIONS = (JOB_OPTIONS - {"depends_on", "job_id"}) | {"queue", "name"}


@dataclass
class PeriodicJob:
    """One validated ``PERIODIC`` entry."""

    name: str
    schedule: str | float  # a cron expression, or an interval in seconds
    func: Any
    func_name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    queue: str = "default"
    options: dict = field(default_factory=dict)  # job options for enqueue

    @property
    def description(self) -> str:
        if isinstance(self.schedule, str):
            return f"cron {self.schedule}"
        return f"every {self.schedule:g} s"

    def latest(self, moment: float) -> float:
        """The latest occurrence at or before ``moment``."""
        if isinstance(self.schedule, str):
            return _croniter()(self.schedule, moment).get_prev(float)
        return math.floor(moment / self.schedule) * self.schedule

    def next_after(self, occurrence: float) -> float:
        """The first occurrence after ``occurrence``."""
        if isinstance(self.schedule, str):
            return _croniter()(self.schedule, occurrence).get_next(float)
        return occurrence + self.schedule


def parse_periodic(entries: Any, connection: redis.Redis, keys: Keys, serializer: Any = None,
                   queue_class: type[Queue] = Queue) -> list[PeriodicJob]:
    """Validate the ``PERIODIC`` setting; raises ValueError naming the bad entry."""
    if entries is None:
        return []
    if isinstance(entries, (str, bytes, dict)) or not isinstance(entries, Iterable):
        raise ValueError(f"PERIODIC must be a list of entries, got {entries!r}")
    jobs: list[PeriodicJob] = []
    names: set[str] = set()
    for index, entry in enumerate(entries):
        try:
            job = _parse_entry(entry)
            # build one job now: a bad job option fails at start, not at the first occurrence
            queue_class(job.queue, connection=connection, keys=keys, serializer=serializer) \
                .build_job(job.func, job.args, job.kwargs, dict(job.options))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"PERIODIC entry {index} {entry!r}: {exc}") from None
        if job.name in names:
            raise ValueError(f"PERIODIC entry {index} {entry!r}: another entry has the name "
                             f"{job.name!r}; give each one a distinct 'name' option")
        names.add(job.name)
        jobs.append(job)
    return jobs


def _parse_entry(entry: Any) -> PeriodicJob:
    if isinstance(entry, dict):
        unknown = set(entry) - set(_FIELDS) - _ENTRY_OPTIONS
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))}")
        if "schedule" not in entry or "func" not in entry:
            raise ValueError("a dict entry needs 'schedule' and 'func'")
        options = {k: v for k, v in entry.items() if k not in _FIELDS}
        options.update(entry.get("options") or {})
        values = [entry["schedule"], entry["func"], entry.get("args"), entry.get("kwargs"), options]
    elif isinstance(entry, (tuple, list)) and 2 <= len(entry) <= 5:
        values = list(entry) + [None] * (5 - len(entry))
    else:
        raise ValueError("an entry is (schedule, func[, args[, kwargs[, options]]]) or a dict")
    schedule, func, args, kwargs, options = values
    schedule = _schedule(schedule)
    func_name, instance = describe_callable(func)
    if instance is not None:
        raise ValueError("the function must be a module-level function or a dotted path")
    if args is not None and not isinstance(args, (list, tuple)):
        raise ValueError(f"args must be a list or tuple, got {args!r}")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ValueError(f"kwargs must be a dict, got {kwargs!r}")
    options = dict(options or {})
    unknown = set(options) - _ENTRY_OPTIONS
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}")
    queue = options.pop("queue", "default")
    name = options.pop("name", None)
    if name is None:
        name = f"{func_name} {schedule if isinstance(schedule, str) else f'{schedule:g}s'}"
    if not isinstance(name, str) or not name or not name.isprintable():
        raise ValueError(f"name must be a non-empty string of printable characters (no "
                         f"control characters), got {name!r}")
    return PeriodicJob(name=name, schedule=schedule, func=func, func_name=func_name,
                       args=tuple(args or ()), kwargs=dict(kwargs or {}), queue=queue,
                       options=options)


def _schedule(value: Any) -> str | float:
    if isinstance(value, str):
        if not _croniter().is_valid(value):
            raise ValueError(f"{value!r} is not a valid cron expression")
        return value
    if isinstance(value, timedelta):
        value = value.total_seconds()
    try:
        return parse_seconds(value, name="the schedule", above_minimum=True)
    except ValueError:
        raise ValueError(f"the schedule must be a cron string or an interval in seconds > 0 "
                         f"(at most {MAX_SECONDS}), got {value!r}") from None


class PeriodicEnqueuer:
    """What the active scheduler does with the ``PERIODIC`` entries on each tick."""

    def __init__(self, entries: list[PeriodicJob], connection: redis.Redis, keys: Keys,
                 serializer: Any = None, queue_class: type[Queue] = Queue,
                 job_class: Any = None):
        self.entries = entries
        self.connection = connection
        self.keys = keys
        self._queues = {name: queue_class(name, connection=connection, keys=keys,
                                          serializer=serializer, job_class=job_class)
                        for name in {e.queue for e in entries}}

    def publish(self, moment: float | None = None) -> None:
        """Write what ``geventq info`` shows: every entry and its next run."""
        moment = now() if moment is None else moment
        pipe = self.connection.pipeline(transaction=True)
        pipe.delete(self.keys.periodic_entries())
        if self.entries:
            pipe.hset(self.keys.periodic_entries(), mapping={
                e.name: self._describe(e, e.next_after(e.latest(moment))) for e in self.entries})
        pipe.execute()

    def _describe(self, entry: PeriodicJob, next_run: float) -> str:
        return json.dumps({"schedule": entry.description, "func": entry.func_name,
                           "queue": entry.queue, "next": next_run})

    def enqueue_due(self, moment: float | None = None) -> float | None:
        """Enqueue each entry whose latest occurrence is not enqueued yet; return the next run."""
        if not self.entries:
            return None
        moment = now() if moment is None else moment
        stored = {as_str(k): as_str(v) for k, v in
                  self.connection.hgetall(self.keys.periodic()).items()}
        batch = scripts.ScriptBatch()
        acted: list[tuple[PeriodicJob, str, float]] = []
        next_run = math.inf
        for entry in self.entries:
            latest = entry.latest(moment)
            next_run = min(next_run, entry.next_after(latest))
            last = stored.get(entry.name)
            if last is not None and float(last) >= latest:
                continue
            job_id, fields, at_front, ttl = "", [], "0", -1
            if last is not None:  # first sight of an entry enqueues nothing for the past
                job = self._queues[entry.queue].build_job(
                    entry.func, entry.args, entry.kwargs, dict(entry.options))
                job.extra.update(periodic=entry.name, occurrence=repr(latest))
                job_id, at_front, ttl = job.id, "1" if job.at_front else "0", job.ttl or -1
                for name, value in job.to_mapping(moment).items():
                    if value is not None:
                        fields += [name, value]
            k = self.keys
            batch.add("periodic", [
                k.periodic(), k.job(job_id or "-"), k.queue(entry.queue), k.wake(entry.queue),
                k.queues, k.expiring(entry.queue),
            ], [entry.name, last or "", repr(latest), entry.queue, repr(moment), at_front, ttl,
                job_id, *fields])
            batch.command("HSET", k.periodic_entries(), entry.name,
                          self._describe(entry, entry.next_after(latest)))
            acted.append((entry, job_id, latest))
        if acted:
            replies = batch.execute(self.connection)[::2]
            for (entry, job_id, latest), reply in zip(acted, replies):
                if as_str(reply[0]) == "queued":
                    logger.info("periodic %r: queued job %s for the occurrence at %s",
                                entry.name, job_id, latest)
        return next_run


def _croniter():
    """croniter, imported on first use: most workers declare no cron entries (1.6 MB less)."""
    from croniter import croniter

    return croniter
