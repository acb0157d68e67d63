"""Finished and failed jobs per minute per queue, derived from the workers' counters.

Workers add every job that ends to counters kept in Redis
(:mod:`geventq.metrics.counting`); counters only grow. A rate is the growth of a
counter between two readings divided by the time between them, so
:class:`QueueRates` keeps the readings this dashboard process took lately: the
rate shown is the growth over the last :data:`WINDOW` seconds (or since the
first reading, when the process has not watched that long). Nothing is written
to Redis, and a restarted dashboard measures again from its first reading.

What counts: ``finished`` is the jobs that ended finished; ``failed`` the jobs
that ended failed, timed out included (outcomes ``failed`` and ``timed_out``).
A failure that is retried, a stopped job and a rate-limited one count in
neither.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

WINDOW = 60.0  # seconds of readings a rate covers, once the process has watched that long
MIN_SPAN = 1.0  # seconds two readings must be apart to give a rate
FINISHED_OUTCOMES = frozenset({"finished"})
FAILED_OUTCOMES = frozenset({"failed", "timed_out"})

Counts = dict[str, tuple[float, float]]  # queue -> (finished, failed) jobs, ever


def ended_counts(jobs: Mapping[tuple[str, str, str], float]) -> Counts:
    """Per queue, the (finished, failed) jobs of the counters ``jobs`` ((queue, function,
    outcome) -> jobs: :func:`geventq.metrics.reading.read_job_counts`), summed over functions."""
    counts: dict[str, list[float]] = {}
    for (queue, _function, outcome), value in jobs.items():
        if outcome in FINISHED_OUTCOMES:
            counts.setdefault(queue, [0.0, 0.0])[0] += value
        elif outcome in FAILED_OUTCOMES:
            counts.setdefault(queue, [0.0, 0.0])[1] += value
    return {queue: (finished, failed) for queue, (finished, failed) in counts.items()}


@dataclass(frozen=True)
class Rates:
    """Jobs per minute of the queues asked for; ``None`` while not measured yet."""

    per_queue: Mapping[str, tuple[float, float] | None]  # queue -> (finished, failed) per minute
    span: float | None  # seconds between the two readings compared

    def of(self, queue: str) -> dict[str, float | None]:
        """``{"finished_per_minute", "failed_per_minute"}`` of one queue (JSON-ready)."""
        pair = self.per_queue.get(queue)
        if pair is None:
            return {"finished_per_minute": None, "failed_per_minute": None}
        return {"finished_per_minute": pair[0], "failed_per_minute": pair[1]}


class QueueRates:
    """The readings of one dashboard process, and the rates they give.

    ``clock`` is monotonic seconds (injected by tests). Thread-safe; the readings
    kept are bounded (one per ``min_span`` over ``window``), whatever the number
    of browsers polling.
    """

    def __init__(self, window: float = WINDOW, min_span: float = MIN_SPAN,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < min_span < window:
            raise ValueError(f"need 0 < min_span < window, got {min_span!r} and {window!r}")
        self.window = window
        self.min_span = min_span
        self.clock = clock
        self._readings: deque[tuple[float, Counts]] = deque(maxlen=int(window / min_span) + 2)
        self._lock = threading.Lock()

    @property
    def readings_kept(self) -> int:
        """How many readings are kept now (at most ``window / min_span + 2``)."""
        return len(self._readings)

    def update(self, counts: Counts, queues: Iterable[str]) -> Rates:
        """Take a reading of ``counts`` (see :func:`ended_counts`) and return the rates
        of ``queues`` since the oldest reading kept.

        A counter that went down means the counters were deleted (or Redis was
        flushed): the readings start again, and there is no rate until the next one.
        """
        at = self.clock()
        with self._lock:
            if self._readings and _went_down(self._readings[-1][1], counts):
                self._readings.clear()
            if not self._readings or at - self._readings[-1][0] >= self.min_span:
                self._readings.append((at, counts))
            # keep one reading at least `window` old (the base), none older than it
            while len(self._readings) > 1 and at - self._readings[1][0] >= self.window:
                self._readings.popleft()
            base_at, base = self._readings[0]
        span = at - base_at
        if span < self.min_span:
            return Rates({}, None)
        per_queue = {}
        for queue in queues:
            now_finished, now_failed = counts.get(queue, (0.0, 0.0))
            then_finished, then_failed = base.get(queue, (0.0, 0.0))  # absent then: none yet
            per_queue[queue] = (_per_minute(now_finished - then_finished, span),
                                _per_minute(now_failed - then_failed, span))
        return Rates(per_queue, round(span, 1))


def _went_down(before: Counts, after: Counts) -> bool:
    for queue, (finished, failed) in before.items():
        now_finished, now_failed = after.get(queue, (0.0, 0.0))
        if now_finished < finished or now_failed < failed:
            return True
    return False


def _per_minute(growth: float, span: float) -> float:
    return round(max(0.0, growth) * 60.0 / span, 1)
