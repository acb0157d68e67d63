"""The metric families of API section 10, read from Redis only.

One :class:`RedisCollector` scrape reads :func:`geventq.stats.take_snapshot`
(queues, workers: two round trips, ``QUEUE_COMMANDS`` per queue and
``WORKER_COMMANDS`` per worker) and then the three metric hashes the workers
keep (one round trip, three commands). Nothing is kept between scrapes, so any number
of exporters on any host show the same numbers, and a restart loses nothing.

The text is made by ``prometheus-client`` (the ``geventq[metrics]`` extra): it
owns the escaping of label values (queue and function names come from whoever
enqueued) and follows the format's changes, which hand-written text would not.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from ..keys import Keys
from ..stats import QUEUE_STATES, Snapshot, take_snapshot
from .counting import BUCKETS, OUTCOMES
from .reading import JobMetrics, read_job_metrics


class RedisCollector(Collector):
    """Collects every section-10 family from Redis at each scrape."""

    def __init__(self, connection: redis.Redis, keys: Keys) -> None:
        self.connection = connection
        self.keys = keys
        self.last_commands = 0  # Redis commands the last scrape sent (for bench/)

    def collect(self) -> Iterator[Metric]:
        snapshot = take_snapshot(self.connection, self.keys, max_job_ids=0)
        metrics = read_job_metrics(self.connection, self.keys)
        self.last_commands = snapshot.commands + metrics.commands
        yield from queue_families(snapshot)
        yield from job_families(metrics)
        yield from worker_families(snapshot)


def queue_families(snapshot: Snapshot) -> list[Metric]:
    jobs = GaugeMetricFamily("geventq_queue_jobs", "Jobs of a queue per state.",
                             labels=["queue", "state"])
    oldest = GaugeMetricFamily("geventq_queue_oldest_job_age_seconds",
                               "Seconds the oldest queued job has waited (0 when empty).",
                               labels=["queue"])
    paused = GaugeMetricFamily("geventq_queue_paused", "1 while the queue is paused.",
                               labels=["queue"])
    for queue in snapshot.queues:
        for state in QUEUE_STATES:
            jobs.add_metric([queue.name, state], getattr(queue, state))
        oldest.add_metric([queue.name], queue.oldest_job_age)
        paused.add_metric([queue.name], 1 if queue.paused else 0)
    return [jobs, oldest, paused]


def job_families(metrics: JobMetrics) -> list[Metric]:
    total = CounterMetricFamily("geventq_jobs", "Jobs ended, per outcome.",
                                labels=["queue", "function", "outcome"])
    for (queue, func, outcome), value in sorted(metrics.jobs.items()):
        if outcome in OUTCOMES:
            total.add_metric([queue, func, outcome], value)
    duration = HistogramMetricFamily("geventq_job_duration_seconds",
                                     "Seconds jobs ran, per function.",
                                     labels=["queue", "function"])
    for (queue, func), stored in sorted(metrics.durations.items()):
        buckets, running = [], 0.0
        for bound in BUCKETS:
            running += stored.get(repr(bound), 0.0)
            buckets.append((repr(bound), running))
        # +Inf holds every job timed, so the buckets always add up to the count
        count = max(running + stored.get("+Inf", 0.0), stored.get("count", 0.0))
        buckets.append(("+Inf", count))
        duration.add_metric([queue, func], buckets, stored.get("sum", 0.0))
    blocked = CounterMetricFamily("geventq_hub_blocked", "Times a job blocked a worker's hub.",
                                  value=metrics.hub_blocked)
    recovered = CounterMetricFamily("geventq_recovered_jobs",
                                    "Jobs of dead workers put back or failed by recovery.",
                                    value=metrics.recovered_jobs)
    return [total, duration, blocked, recovered]


def worker_families(snapshot: Snapshot) -> list[Metric]:
    workers = GaugeMetricFamily("geventq_workers", "Live workers per state.", labels=["state"])
    states = {"idle": 0, "busy": 0, "suspended": 0}
    busy = free = 0
    for worker in snapshot.workers:
        states[worker.state] = states.get(worker.state, 0) + 1
        busy += worker.busy
        free += worker.free
    for state, count in states.items():
        workers.add_metric([state], count)
    slots = GaugeMetricFamily("geventq_worker_slots", "Job slots of all live workers.",
                              labels=["state"])
    slots.add_metric(["busy"], busy)
    slots.add_metric(["free"], free)
    return [workers, slots]


def make_registry(connection: redis.Redis, keys: Keys) -> tuple[CollectorRegistry, RedisCollector]:
    """A registry holding only geventq's collector (no process metrics of the exporter)."""
    registry = CollectorRegistry(auto_describe=False)
    collector = RedisCollector(connection, keys)
    registry.register(collector)
    return registry, collector
