"""When a job of ``enqueue_at`` / ``enqueue_in`` is due, as an epoch timestamp.

Kept apart from :mod:`geventq.scheduler` (which imports the queue) so that the
queue can use it without an import cycle.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from .utils import now


def due_timestamp(when: Any) -> float:
    """Epoch seconds of a ``datetime``; a naive datetime is taken as UTC (as in python-rq)."""
    if not isinstance(when, datetime):
        raise TypeError(f"enqueue_at takes a datetime, got {when!r}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def delay_seconds(delay: Any) -> float:
    """Seconds of a ``timedelta`` (or a number of seconds) for ``enqueue_in``."""
    if isinstance(delay, timedelta):
        return delay.total_seconds()
    if isinstance(delay, (int, float)) and not isinstance(delay, bool) and delay == delay:
        return float(delay)
    raise TypeError(f"enqueue_in takes a timedelta or seconds, got {delay!r}")


def due_in(delay: Any) -> float:
    """Epoch seconds ``delay`` from now."""
    return now() + delay_seconds(delay)
