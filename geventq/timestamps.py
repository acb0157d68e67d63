"""The datetimes of a job, converted from the stored hash only when read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .utils import to_datetime

# scheduled_at: when a job of enqueue_at / enqueue_in is due (None for any other job)
TIMESTAMPS = ("created_at", "enqueued_at", "started_at", "ended_at", "scheduled_at")


class Timestamp:
    """A datetime attribute of a job (or None), converted from the loaded hash on first
    read: a worker loads every job it runs, and most never look at their timestamps."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.index = name, TIMESTAMPS.index(name)

    def __get__(self, job: Any, owner: type | None = None) -> Any:
        if job is None:
            return self
        d = job.__dict__
        value = d.get(self.name, _UNSET)
        if value is _UNSET:
            loaded = d.get("_loaded_stamps")
            value = d[self.name] = to_datetime(loaded[self.index]) if loaded else None
        return value

    def __set__(self, job: Any, value: datetime | None) -> None:
        job.__dict__[self.name] = value


_UNSET = object()
