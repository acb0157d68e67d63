"""Reading back the job counters workers keep in Redis (:mod:`geventq.metrics.counting`).

Shared by the exporter and ``geventq info --json``; stdlib and redis only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from ..keys import Keys
from ..stats import reply_float, reply_text


@dataclass
class JobMetrics:
    """The counters workers keep in Redis (:mod:`geventq.metrics.counting`)."""

    # (queue, function, outcome) -> jobs
    jobs: dict[tuple[str, str, str], float] = field(default_factory=dict)
    # (queue, function) -> {bucket bound (str) | "sum" | "count": value}
    durations: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    hub_blocked: float = 0.0
    recovered_jobs: float = 0.0
    commands: int = 0


def read_job_metrics(connection: redis.Redis, keys: Keys) -> JobMetrics:
    """The job counters, in one round trip. Garbage fields (anyone may write to Redis)
    are skipped, never raised."""
    pipe = connection.pipeline(transaction=False)
    pipe.hgetall(keys.metrics_jobs)
    pipe.hgetall(keys.metrics_durations)
    pipe.hgetall(keys.metrics_totals)
    jobs_raw, durations_raw, totals_raw = pipe.execute(raise_on_error=False)
    found = JobMetrics(commands=3)
    for labels, value in _entries(jobs_raw):
        found.jobs[labels] = value
    for (queue, func, name), value in _entries(durations_raw):
        found.durations.setdefault((queue, func), {})[name] = value
    totals = totals_raw if isinstance(totals_raw, dict) else {}
    found.hub_blocked = max(0.0, reply_float(totals.get(b"hub_blocked")) or 0.0)
    found.recovered_jobs = max(0.0, reply_float(totals.get(b"recovered_jobs")) or 0.0)
    return found


def read_job_counts(connection: redis.Redis, keys: Keys) -> dict[tuple[str, str, str], float]:
    """Only the jobs per (queue, function, outcome): one HGETALL, without the duration
    histograms (which hold three times as many fields). Garbage fields are skipped, and
    a key of another type reads as empty."""
    try:
        reply = connection.hgetall(keys.metrics_jobs)
    except redis.ResponseError:  # WRONGTYPE: whoever wrote it, the counters are unreadable
        return {}
    return dict(_entries(reply))


def _entries(reply: object) -> Iterator[tuple[tuple[str, str, str], float]]:
    if not isinstance(reply, dict):
        return
    for raw_field, raw_value in reply.items():
        try:
            labels = json.loads(reply_text(raw_field))
        except ValueError:
            continue
        value = reply_float(raw_value)
        if (isinstance(labels, list) and len(labels) == 3
                and all(isinstance(x, str) for x in labels) and value is not None and value >= 0):
            yield (labels[0], labels[1], labels[2]), value
