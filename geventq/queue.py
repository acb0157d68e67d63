"""Queue: enqueue jobs and look at what is waiting."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import redis

from . import enqueueing, flow, job_options, scripts
from .connection import resolve_connection_and_keys
from .defaults import DEFAULT_JOB_TIMEOUT, DEFAULT_QUEUE
from .due_times import due_in, due_timestamp
from .exceptions import NoSuchJobError
from .inline import run_inline
from .job import Job
from .job_options import JOB_OPTIONS, check_options, split_arguments  # noqa: F401  (JOB_OPTIONS re-exported)
from .keys import Keys
from .limits import Limit, check_limit, limit_fields
from .names import check_queue_name
from .registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from .serializers import resolve_serializer
from .utils import as_str, import_attribute, now, parse_timeout, parse_ttl, text_ids, to_datetime


class EnqueueData(NamedTuple):
    """One job for :meth:`Queue.enqueue_many`, made by :meth:`Queue.prepare_data`."""

    func: Any
    args: tuple
    kwargs: dict
    options: dict


class Queue:
    """A named FIFO of jobs in Redis."""

    job_class: type[Job] = Job

    def __init__(self, name: str = DEFAULT_QUEUE, connection: redis.Redis | None = None,
                 default_timeout: Any = None, is_async: bool = True, serializer: Any = None,
                 job_class: type[Job] | str | None = None, prefix: str | None = None,
                 keys: Keys | None = None, default_result_ttl: int | None = None,
                 limit: Limit | None = None):
        self.name = check_queue_name(name)
        # given to every job enqueued through this object that names no limit of its own
        self._limit = check_limit(limit, is_async)
        self._limit_fields = limit_fields(self._limit) if self._limit is not None else {}
        self.connection, self.keys = resolve_connection_and_keys(connection, keys, prefix)
        self.key = self.keys.queue(name)
        self.serializer = resolve_serializer(serializer)
        self.default_timeout = parse_timeout(default_timeout, name="default_timeout") \
            or DEFAULT_JOB_TIMEOUT
        # None: the worker's DEFAULT_RESULT_TTL (500 s unless configured) applies
        self.default_result_ttl = parse_ttl(default_result_ttl, name="default_result_ttl")
        self.is_async = is_async
        if job_class is not None:
            self.job_class = import_attribute(job_class) if isinstance(job_class, str) else job_class

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    @property
    def limit(self) -> Limit | None:
        """The limit given to every job enqueued through this object that names none."""
        return self._limit

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Queue) and (other.name, other.keys.prefix) == (
            self.name, self.keys.prefix)

    def __hash__(self) -> int:
        return hash((self.name, self.keys.prefix))

    # -- enqueueing --------------------------------------------------------
    def enqueue(self, f: Any, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``f(*args, **kwargs)``; job options are taken out of kwargs.

        With ``args=`` and/or ``kwargs=`` given, those are f's arguments and
        every other keyword must be a job option.
        """
        f_args, f_kwargs, options = split_arguments(args, kwargs)
        return self.enqueue_call(f, f_args, f_kwargs, **options)

    def enqueue_at(self, datetime: datetime, f: Any, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``f(*args, **kwargs)`` to be queued at ``datetime`` (a naive one is UTC).

        The job is ``scheduled`` (in ``scheduled_job_registry``) until a worker
        running the scheduler (``--with-scheduler``) queues it, within about a
        second of that time. Keywords are split as in :meth:`enqueue`. With
        ``is_async=False`` the job runs at once.
        """
        return self._schedule(due_timestamp(datetime), f, args, kwargs)

    def enqueue_in(self, time_delta: timedelta, f: Any, *args: Any, **kwargs: Any) -> Job:
        """Like :meth:`enqueue_at`, ``time_delta`` (a timedelta or seconds) from now."""
        return self._schedule(due_in(time_delta), f, args, kwargs)

    def _schedule(self, due: float, f: Any, args: tuple, kwargs: dict) -> Job:
        f_args, f_kwargs, options = split_arguments(args, kwargs)
        job = self.build_job(f, f_args, f_kwargs, options)
        if not self.is_async:
            return run_inline(self, job)
        job.scheduled_at = to_datetime(due)
        return self.enqueue_job(job)

    def enqueue_call(self, func: Any, args: Iterable | None = None, kwargs: dict | None = None,
                     timeout: Any = None, result_ttl: Any = None, ttl: Any = None,
                     failure_ttl: Any = None, depends_on: Any = None, job_id: str | None = None,
                     at_front: bool = False, description: str | None = None,
                     meta: dict | None = None, **options: Any) -> Job:
        """Enqueue with every option explicit (one round trip to Redis)."""
        job = self.build_job(func, args, kwargs, dict(
            timeout=timeout, result_ttl=result_ttl, ttl=ttl, failure_ttl=failure_ttl,
            depends_on=depends_on, job_id=job_id, at_front=at_front, description=description,
            meta=meta, **options))
        if not self.is_async:
            return run_inline(self, job)
        return self.enqueue_job(job)

    @staticmethod
    def prepare_data(func: Any, args: Iterable | None = None, kwargs: dict | None = None,
                     **options: Any) -> EnqueueData:
        """Describe one job for :meth:`enqueue_many`."""
        check_options(options)
        return EnqueueData(func, tuple(args) if args else (), dict(kwargs) if kwargs else {},
                           options)

    def enqueue_many(self, job_datas: Iterable[EnqueueData]) -> list[Job]:
        """Enqueue many jobs in one round trip (two when some have a ``job_id`` or
        ``depends_on``: those are looked up first), as Lua calls of up to
        :data:`~geventq.enqueueing.BATCH` (1,000) jobs each, each call atomic.

        Every job is built and validated before anything is written; a bad one
        raises and none is enqueued.
        """
        build = self.build_job
        # one pause of the collector for the whole batch: each resumption pays a collection
        with enqueueing.no_cyclic_gc():
            jobs = [build(d.func, d.args, d.kwargs, dict(d.options)) for d in job_datas]
            if not self.is_async:
                return [run_inline(self, job) for job in jobs]
            # only ids given by the caller can be taken; generated ones are random
            enqueueing.check_batch_references(self, jobs, [job for job in jobs if not job.generated_id])
            enqueueing.write_many(self, jobs, now())
        return jobs

    def enqueue_job(self, job: Job) -> Job:
        """Write a built job to Redis: queued, or deferred behind its dependencies."""
        enqueueing.write_one(self, job, now())
        return job

    def build_job(self, func: Any, args: Any, kwargs: Any, options: dict) -> Job:
        """Build and check a job of this queue from ``func``, its arguments and job
        ``options`` (the keywords of :meth:`enqueue_call`, plus ``retry``, ``on_success``,
        ``on_failure`` and ``job_timeout``); nothing is written. Raises TypeError or
        ValueError naming a bad option."""
        return job_options.build_job(self, func, args, kwargs, options, self._limit_fields)

    # -- introspection -----------------------------------------------------
    def purge_expired(self, upto: int | None = None) -> int:
        """Drop the queued ids whose ttl ran out; return the queue's length.

        ``upto``: only from the first ``upto`` entries. Each script call looks at
        1,000 entries at most (``queue_purge.lua``), so Redis is never blocked long
        whatever the queue's length. Claims drop the expired ids they meet at the
        head anyway; this is for reading the list itself.
        """
        offset, length = 0, 0
        while True:
            length, offset = scripts.call(self.connection, "queue_purge",
                                          [self.key, self.keys.expiring(self.name)],
                                          [repr(now()), offset, _STEP])
            if offset < 0 or (upto is not None and offset >= upto):
                return length

    @property
    def count(self) -> int:
        """Number of queued jobs, not counting those whose ttl ran out (one round trip).

        Every id in ``expiring`` is in the queue, so the expired ones are counted
        out (ZCOUNT) rather than searched for in the list.
        """
        pipe = self.connection.pipeline(transaction=True)
        pipe.llen(self.key)
        pipe.zcount(self.keys.expiring(self.name), "-inf", now())
        length, expired = pipe.execute()
        return max(length - expired, 0)

    def __len__(self) -> int:
        return self.count

    def is_empty(self) -> bool:
        """True when no job is queued."""
        return self.count == 0

    @property
    def job_ids(self) -> list[str]:
        """Ids of the queued jobs, head first."""
        self.purge_expired()
        return text_ids(self.connection.lrange(self.key, 0, -1))

    def get_job_ids(self, offset: int = 0, length: int = -1) -> list[str]:
        """A slice of :attr:`job_ids` (only the entries up to its end are purged)."""
        end = -1 if length < 0 else offset + length - 1
        self.purge_expired(None if end < 0 else end + 1)
        return text_ids(self.connection.lrange(self.key, offset, end))

    @property
    def jobs(self) -> list[Job]:
        """The queued jobs, head first."""
        found = self.job_class.fetch_many(self.job_ids, connection=self.connection,
                                          serializer=self.serializer, keys=self.keys)
        return [job for job in found if job is not None]

    def fetch_job(self, job_id: str) -> Job | None:
        """A job of this queue by id, or None."""
        try:
            job = self.job_class.fetch(job_id, connection=self.connection,
                                       serializer=self.serializer, keys=self.keys)
        except NoSuchJobError:
            return None
        return job if job.origin == self.name else None

    def empty(self) -> int:
        """Remove the jobs queued now, deleting them; return how many were deleted.

        Its time is bounded however busy the queue: one step moves every queued id
        aside (jobs enqueued from then on stay queued), then their hashes are deleted
        1,000 per script call. Ids an interrupted ``empty()`` left aside go first.
        """
        k, name = self.keys, self.name
        aside = k.emptying(name)
        deleted = self._delete_aside(aside)
        while as_str(scripts.call(self.connection, "empty",
                                  [self.key, k.expiring(name), k.wake(name), aside], [])) == "busy":
            deleted += self._delete_aside(aside)  # another empty() moved ids aside meanwhile
        return deleted + self._delete_aside(aside)

    def _delete_aside(self, aside: str) -> int:
        """Delete the jobs whose ids ``empty.lua`` moved into ``aside``; how many."""
        deleted = 0
        while True:
            raw = self.connection.lrange(aside, 0, _STEP - 1)
            if not raw:
                return deleted
            # an id that is not text (never written by geventq) only leaves the list
            keys = [aside] + [self.keys.job(i.decode(errors="replace")) for i in raw]  # type: ignore[union-attr]
            removed = scripts.call(self.connection, "empty_drain", keys, raw)
            deleted += max(removed, 0)  # -1: a concurrent empty() took them: read again

    def delete(self, delete_jobs: bool = True) -> None:
        """Delete the queue (and, by default, its queued jobs)."""
        if delete_jobs:
            self.empty()
        pipe = self.connection.pipeline(transaction=True)
        pipe.delete(self.key, self.keys.wake(self.name), self.keys.expiring(self.name))
        pipe.srem(self.keys.queues, self.name)
        pipe.execute()

    @classmethod
    def all(cls, connection: redis.Redis | None = None, prefix: str | None = None,
            keys: Keys | None = None, serializer: Any = None) -> list[Queue]:
        """Every queue that has had a job, sorted by name.

        A name in Redis that is not a valid queue name (never written by geventq) is
        left out: see :func:`stored_queue_names`.
        """
        connection, keys = resolve_connection_and_keys(connection, keys, prefix)
        names, _ = stored_queue_names(connection, keys)
        return [cls(n, connection=connection, keys=keys, serializer=serializer) for n in names]

    # -- pausing (geventq.flow) ------------------------------------------------
    def pause(self) -> None:
        """Workers start no job from this queue until :meth:`unpause` (running ones
        finish; enqueueing goes on). Stored in Redis: it outlives worker restarts."""
        flow.pause(self.connection, self.keys, self.name)

    def unpause(self) -> None:
        """Let workers take this queue's jobs again (idle ones are woken at once)."""
        flow.unpause(self.connection, self.keys, self.name)

    @property
    def is_paused(self) -> bool:
        """Whether the queue is paused (read fresh from Redis)."""
        return flow.is_paused(self.connection, self.keys, self.name)

    # -- registries --------------------------------------------------------
    @property
    def started_job_registry(self) -> StartedJobRegistry:
        return StartedJobRegistry(queue=self)

    @property
    def finished_job_registry(self) -> FinishedJobRegistry:
        return FinishedJobRegistry(queue=self)

    @property
    def failed_job_registry(self) -> FailedJobRegistry:
        return FailedJobRegistry(queue=self)

    @property
    def deferred_job_registry(self) -> DeferredJobRegistry:
        return DeferredJobRegistry(queue=self)

    @property
    def canceled_job_registry(self) -> CanceledJobRegistry:
        return CanceledJobRegistry(queue=self)

    @property
    def scheduled_job_registry(self) -> ScheduledJobRegistry:
        return ScheduledJobRegistry(queue=self)


# entries per bounded step of purge_expired() and empty()
_STEP = 1000


def stored_queue_names(connection: redis.Redis, keys: Keys) -> tuple[list[str], list[bytes]]:
    """The names in the ``queues`` set: (valid queue names, sorted; the other values, raw).

    Redis may hold anything; a tool that lists queues must not fail on a value that
    another writer put there, and shows it apart (``geventq info`` marks it invalid).
    """
    names, invalid = [], []
    for raw in connection.smembers(keys.queues):
        raw = raw if isinstance(raw, bytes) else str(raw).encode()
        try:
            Queue(raw.decode(), connection=connection, keys=keys)
        except (UnicodeDecodeError, ValueError):
            invalid.append(raw)
            continue
        names.append(raw.decode())
    return sorted(names), sorted(invalid)
