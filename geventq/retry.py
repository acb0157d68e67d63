"""``Retry``: how many more times a failed job is tried, and after how long.

A job enqueued with ``retry=Retry(...)`` carries its policy in its own hash
(fields ``retries_left``, ``retry_max``, ``retry_intervals`` and, with
back-off, ``retry_backoff``), so any worker can apply it. The decision "try
again or fail for good" is taken by the end-of-job script, atomically with
ending the try (see ``lua/end.lua``); this module only computes the delay.

Retries after an interval > 0 are parked in the scheduled registry: a worker
started with ``--with-scheduler`` must run somewhere to queue them again.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from .utils import MAX_COUNT, parse_seconds

# Cap of the exponential back-off unless the Retry says otherwise (one hour).
DEFAULT_MAX_INTERVAL = 3600.0


class Retry:
    """Retry a failed job up to ``max`` times.

    ``interval``: seconds before each retry — one number for all of them, or a
    list (``[10, 30, 60]``: the n-th retry waits the n-th value, the last value
    repeats). ``0`` (the default) puts the job straight back on its queue.

    ``backoff=True``: exponential back-off with jitter — the n-th retry
    (0-based) waits a random time between half and all of
    ``min(max_interval, interval * 2 ** n)``; ``interval`` must then be one
    positive number.
    """

    def __init__(self, max: int = 3, interval: float | Sequence[float] = 0,
                 backoff: bool = False, max_interval: float = DEFAULT_MAX_INTERVAL):
        if isinstance(max, bool) or not isinstance(max, int) or not 1 <= max <= MAX_COUNT:
            raise ValueError(f"Retry(max=...) must be a positive integer (at most "
                             f"{MAX_COUNT}), got {max!r}")
        if isinstance(interval, (list, tuple)):
            if not interval:
                raise ValueError("Retry(interval=[...]) needs at least one value, got []")
            intervals = [_seconds(v, f"Retry(interval={list(interval)!r})") for v in interval]
        else:
            intervals = [_seconds(interval, "Retry(interval=...)")]
        if not isinstance(backoff, bool):
            raise ValueError(f"Retry(backoff=...) must be True or False, got {backoff!r}")
        if backoff and (len(intervals) != 1 or intervals[0] <= 0):
            raise ValueError(f"Retry(backoff=True) needs one positive interval to start from, "
                             f"got interval={interval!r}")
        max_interval = parse_seconds(max_interval, name="Retry(max_interval=...)",
                                     above_minimum=True)
        self.max = max
        self.intervals = intervals
        self.backoff = backoff
        self.max_interval = max_interval

    def __repr__(self) -> str:
        extra = f", backoff=True, max_interval={self.max_interval:g}" if self.backoff else ""
        return f"Retry(max={self.max}, interval={self.intervals}{extra})"

    def fields(self) -> dict[str, str]:
        """The job hash fields that carry this policy."""
        fields = {"retries_left": str(self.max), "retry_max": str(self.max),
                  "retry_intervals": ",".join(repr(v) for v in self.intervals)}
        if self.backoff:
            fields["retry_backoff"] = repr(self.max_interval)
        return fields


def retry_fields(retry: Any) -> dict[str, str]:
    """Hash fields for the ``retry=`` option; raises naming a value that is not a Retry."""
    if not isinstance(retry, Retry):
        raise ValueError(f"retry= takes a Retry(max=..., interval=...), got {retry!r}")
    return retry.fields()


def has_retry(extra: dict) -> bool:
    """True when a loaded job (its ``extra`` fields) was enqueued with ``retry=``."""
    return "retries_left" in extra


def next_delay(extra: dict) -> float:
    """Seconds before the next try of a job that just failed (0 when none is left).

    ``extra`` holds the job's fields as loaded when its try started; a started
    job belongs to one worker, so they are current.
    """
    left = int(extra.get("retries_left") or 0)
    if left <= 0:
        return 0.0
    done = int(extra.get("retry_max") or left) - left  # retries already made, 0-based
    intervals = [float(v) for v in (extra.get("retry_intervals") or "0").split(",")]
    delay = intervals[min(done, len(intervals) - 1)]
    cap = extra.get("retry_backoff")
    if cap is not None:
        delay = min(float(cap), delay * 2 ** min(done, 62)) * random.uniform(0.5, 1.0)
    return delay


def _seconds(value: Any, what: str) -> float:
    try:
        return parse_seconds(value, name="each interval")
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
