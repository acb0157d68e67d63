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
LIVE_STATUSES = frozenset({"queued", "started", "deferred", "scheduled"})
"""Statuses of a job that has not ended: its id cannot be reused, it can be canceled.
The Lua side is ``LIVE_STATUSES`` in ``lua/_common.lua`` (a test keeps them equal)."""
