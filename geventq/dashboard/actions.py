"""What the dashboard's buttons do: requeue, delete, stop a job; requeue failed jobs; pause a queue.

Each action goes through the library's own state transitions (one Lua script
per job). Failures a user can cause (the job is gone, or not in a state that
allows the action) raise :class:`ActionError` with a message for the page.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..control import send_stop_job_command
from ..exceptions import DeserializationError, InvalidJobOperation, NoSuchJobError
from ..job import Job
from ..queue import Queue
from ..registry import FailedJobRegistry
from ..stats import reply_text
from ..utils import now
from .config import DashboardConfig
from .listing import JobList

SCAN_COUNT = 1000  # ZSCAN hint when requeueing a whole failed registry


class ActionError(Exception):
    """An action that cannot be done; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


def _job(config: DashboardConfig, job_id: str) -> Job:
    # the dashboard's loader: loading the job's meta never runs code from Redis
    return Job(job_id, connection=config.connection, serializer=config.loader, keys=config.keys)


def requeue_job(config: DashboardConfig, job_id: str) -> None:
    """Put a failed, stopped or canceled job back on its queue."""
    try:
        _job(config, job_id).requeue()
    except NoSuchJobError:
        raise ActionError(f"no job with id {job_id!r}", 404) from None
    except (InvalidJobOperation, DeserializationError, ValueError) as exc:
        raise ActionError(str(exc)) from None


def delete_job(config: DashboardConfig, job_id: str) -> None:
    """Delete the job from Redis, its queue and every registry."""
    try:
        job = _job(config, job_id)
        job.refresh()
        job.delete()
    except NoSuchJobError:
        raise ActionError(f"no job with id {job_id!r}", 404) from None
    except (DeserializationError, ValueError) as exc:
        raise ActionError(f"cannot read job {job_id!r}: {exc}") from None


def stop_job(config: DashboardConfig, job_id: str) -> None:
    """Ask the worker running the job to stop it (it ends as ``stopped``)."""
    try:
        send_stop_job_command(config.connection, job_id, config.keys)
    except NoSuchJobError:
        raise ActionError(f"no job with id {job_id!r}", 404) from None
    except InvalidJobOperation as exc:
        raise ActionError(str(exc)) from None


def requeue_failed(config: DashboardConfig, queue: str, ids: list[str] | None = None,
                   search: str = "") -> int:
    """Requeue failed jobs of ``queue``: ``ids``, else those the search finds, else all.

    A search requeues what it matches among the newest ``search_limit`` entries (the
    same window the page searched). The whole registry is walked with ZSCAN, a
    batch at a time: a million jobs are never read at once.
    """
    registry = FailedJobRegistry(queue, connection=config.connection, keys=config.keys)
    if ids is not None:
        return registry.requeue_many(ids)
    if search:
        listing = JobList(config.connection, config.keys, queue, "failed", now())
        _, rows = listing.matches(search, config.search_limit)
        return registry.requeue_many(row.id for row in rows)
    return registry.requeue_many(_live_ids(config, registry.key))


def _live_ids(config: DashboardConfig, key: str) -> Iterator[str]:
    """Every id of a registry scored by expiry whose entry has not expired."""
    stamp = now()
    for member, score in config.connection.zscan_iter(key, count=SCAN_COUNT):
        if score > stamp:
            yield reply_text(member)


def set_paused(config: DashboardConfig, queue: str, paused: bool) -> None:
    """Pause or unpause a queue: while paused, workers start none of its jobs (running
    ones finish, enqueueing goes on). Pausing a paused queue changes nothing."""
    target = Queue(queue, connection=config.connection, keys=config.keys)
    if paused:
        target.pause()
    else:
        target.unpause()
