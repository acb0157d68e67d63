"""When a job of ``enqueue_at`` / ``enqueue_in`` is due, as an epoch timestamp.

Kept apart from :mod:`geventq.scheduler` (which imports the queue) so that the
queue can use it without an import cycle.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from .utils import MAX_SECONDS, now, parse_seconds


def due_timestamp(when: Any) -> float:
    """Epoch seconds of a ``datetime``; a naive datetime is taken as UTC (as in python-rq).

    Any datetime Python can represent (years 1 to 9999) is accepted; anything
    else raises ``TypeError`` naming it.
    """
    if not isinstance(when, datetime):
        raise TypeError(f"enqueue_at takes a datetime, got {when!r}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        return when.timestamp()
    except (OverflowError, ValueError, OSError) as exc:  # e.g. year 1 with a positive offset
        raise ValueError(f"enqueue_at cannot place {when!r} in time: {exc}") from None


def delay_seconds(delay: Any) -> float:
    """Seconds of a ``timedelta`` (or a number of seconds) for ``enqueue_in``.

    At most :data:`~geventq.utils.MAX_SECONDS` either way (a negative delay is
    due at once); NaN, infinities and other types are refused.
    """
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"enqueue_in takes a timedelta or seconds, got {delay!r}")
    try:
        return parse_seconds(seconds, name="enqueue_in's delay", minimum=-MAX_SECONDS)
    except ValueError:
        raise ValueError(f"enqueue_in takes a finite delay of at most {MAX_SECONDS} s either "
                         f"way, got {delay!r}") from None


def due_in(delay: Any) -> float:
    """Epoch seconds ``delay`` from now."""
    return now() + delay_seconds(delay)
