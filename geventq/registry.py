"""Registries: the sorted sets that say where each job of a queue is.

Started and deferred registries are scored by time of entry; finished, failed
and canceled ones by expiry time, so stale entries (whose job hash expired)
are trimmed before they are counted or listed. Scheduled jobs are scored by
when they are due.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from .connection import resolve_connection_and_keys
from .exceptions import InvalidJobOperation
from .job import Job
from .job_actions import requeue_call
from .keys import Keys
from .scripts import ScriptBatch
from .utils import as_str, now, text_ids, to_datetime


class BaseRegistry:
    """Common behaviour of every registry of one queue."""

    kind = ""
    scored_by_expiry = False

    def __init__(self, name: str = "default", connection: redis.Redis | None = None,
                 queue: Any = None, keys: Keys | None = None, serializer: Any = None,
                 job_class: type[Job] | None = None, prefix: str | None = None):
        if queue is not None:
            name, connection, keys = queue.name, queue.connection, queue.keys
            serializer, job_class = queue.serializer, queue.job_class
        self.name = name
        self.connection, self.keys = resolve_connection_and_keys(connection, keys, prefix)
        self.serializer = serializer
        self.job_class = job_class or Job
        self.key = self.keys.registry(self.kind, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _trim(self, pipe) -> None:
        if self.scored_by_expiry:
            pipe.zremrangebyscore(self.key, "-inf", now())

    @property
    def count(self) -> int:
        """Number of jobs in the registry (expired entries are trimmed first)."""
        pipe = self.connection.pipeline(transaction=True)
        self._trim(pipe)
        pipe.zcard(self.key)
        return pipe.execute()[-1]

    def __len__(self) -> int:
        return self.count

    def __contains__(self, item: Job | str) -> bool:
        job_id = item.id if isinstance(item, Job) else item
        return self.connection.zscore(self.key, job_id) is not None

    def get_job_ids(self, start: int = 0, end: int = -1) -> list[str]:
        """Job ids, oldest entry first (a member that is not UTF-8 text, which geventq
        never writes, is left out)."""
        pipe = self.connection.pipeline(transaction=True)
        self._trim(pipe)
        pipe.zrange(self.key, start, end)
        return text_ids(pipe.execute()[-1])

    def get_jobs(self, start: int = 0, end: int = -1) -> list[Job]:
        """The jobs themselves (missing ones left out)."""
        jobs = self.job_class.fetch_many(self.get_job_ids(start, end), connection=self.connection,
                                         serializer=self.serializer, keys=self.keys)
        return [j for j in jobs if j is not None]


class StartedJobRegistry(BaseRegistry):
    """Jobs running now (scored by start time)."""

    kind = "started"


class FinishedJobRegistry(BaseRegistry):
    """Jobs that finished, kept for their ``result_ttl``."""

    kind = "finished"
    scored_by_expiry = True


class FailedJobRegistry(BaseRegistry):
    """Jobs that failed or were stopped, kept for their ``failure_ttl``."""

    kind = "failed"
    scored_by_expiry = True

    def requeue(self, job_or_id: Job | str, at_front: bool = False) -> Job:
        """Put a failed job back on its queue."""
        job_id = job_or_id.id if isinstance(job_or_id, Job) else job_or_id
        if job_id not in self:
            raise InvalidJobOperation(f"job {job_id} is not in the failed registry of "
                                      f"queue {self.name!r}")
        job = self.job_class.fetch(job_id, connection=self.connection,
                                   serializer=self.serializer, keys=self.keys)
        return job.requeue(at_front=at_front)  # type: ignore[return-value]  # JobActions.requeue returns its Job

    def requeue_many(self, job_ids: Iterable[str], at_front: bool = False,
                     batch_size: int = 500) -> int:
        """Put many jobs of this registry back on the queue; return how many went.

        Ids that are not in this registry, whose job is gone or is no longer failed
        are skipped. Each job moves atomically on its own (``requeue.lua``); a batch of
        ``batch_size`` ids costs two round trips (a membership check, then a pipeline
        of requeue calls), so a million jobs never pass through one call.
        """
        requeued, chunk = 0, []
        for job_id in job_ids:
            chunk.append(job_id)
            if len(chunk) >= batch_size:
                requeued += self._requeue_chunk(chunk, at_front)
                chunk = []
        if chunk:
            requeued += self._requeue_chunk(chunk, at_front)
        return requeued

    def _requeue_chunk(self, job_ids: list[str], at_front: bool) -> int:
        scores = self.connection.zmscore(self.key, job_ids)
        batch = ScriptBatch()
        for job_id, score in zip(job_ids, scores):
            if score is not None:
                batch.add("requeue", *requeue_call(self.keys, job_id, self.name, at_front))
        return sum(1 for reply in batch.execute(self.connection) if as_str(reply[0]) == "queued")


class DeferredJobRegistry(BaseRegistry):
    """Jobs waiting for their dependencies."""

    kind = "deferred"


class CanceledJobRegistry(BaseRegistry):
    """Jobs canceled before they ended (see Job.cancel)."""

    kind = "canceled"
    scored_by_expiry = True


class ScheduledJobRegistry(BaseRegistry):
    """Jobs to be enqueued at a time (scored by when they are due)."""

    kind = "scheduled"

    def get_scheduled_time(self, job_or_id: Job | str):
        """When the job is due, as a UTC datetime (None if not scheduled)."""
        job_id = job_or_id.id if isinstance(job_or_id, Job) else job_or_id
        return to_datetime(self.connection.zscore(self.key, job_id))


REGISTRY_CLASSES = {cls.kind: cls for cls in (
    StartedJobRegistry, FinishedJobRegistry, FailedJobRegistry, DeferredJobRegistry,
    CanceledJobRegistry, ScheduledJobRegistry)}
