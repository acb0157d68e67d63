"""What the overview page and ``GET /api/overview`` show: the snapshot and the queues' rates.

Cost: :func:`geventq.stats.take_snapshot` (two round trips), then one HGETALL for
the workers' job counters (:func:`geventq.metrics.reading.read_job_counts`),
from which :class:`~geventq.dashboard.rates.QueueRates` derives jobs per minute.
"""

from __future__ import annotations

from typing import Any

from ..metrics.reading import read_job_counts
from ..stats import Snapshot, take_snapshot
from .config import DashboardConfig
from .rates import Rates, ended_counts


def read_overview(config: DashboardConfig) -> tuple[Snapshot, Rates]:
    """The snapshot of every queue and worker, and each queue's finished/failed per minute."""
    snapshot = take_snapshot(config.connection, config.keys)
    counts = ended_counts(read_job_counts(config.connection, config.keys))
    rates = config.rates.update(counts, [queue.name for queue in snapshot.queues])
    return snapshot, rates


def overview_dict(snapshot: Snapshot, rates: Rates) -> dict[str, Any]:
    """The JSON of ``GET /api/overview``: the snapshot, each queue with its two rates
    (``finished_per_minute``, ``failed_per_minute``; null until measured) and
    ``rates_span``, the seconds the rates cover."""
    data = snapshot.as_dict()
    for queue in data["queues"]:
        queue.update(rates.of(queue["name"]))
    data["rates_span"] = rates.span
    return data
