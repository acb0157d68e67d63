"""Job statuses (``from geventq.job import JobStatus`` works too)."""

from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    """Where a job is in its life."""

    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    DEFERRED = "deferred"
    SCHEDULED = "scheduled"
    CANCELED = "canceled"
    STOPPED = "stopped"

    def __str__(self) -> str:
        return self.value


TERMINAL_STATUSES = frozenset({"finished", "failed", "stopped", "canceled"})
