"""``geventq info --json``: the facts of the metrics as one JSON object (schema in
docs/metrics.md, pinned by tests/test_info_json.py).

Read from Redis only, like the exporter: :func:`geventq.stats.take_snapshot` and
:func:`geventq.metrics.reading.read_job_metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from ..keys import Keys
from ..stats import take_snapshot
from .reading import read_job_metrics

SCHEMA_VERSION = 1  # raised when a field changes meaning or goes; new fields keep it


def status(connection: redis.Redis, keys: Keys, queue_names: Sequence[str] = ()) -> dict[str, Any]:
    """Queues, workers, pools and the job counters, as one JSON-ready dict.

    ``queue_names``: only those queues (and the workers on them); the job counters
    are then those of these queues too.
    """
    snapshot = take_snapshot(connection, keys, list(queue_names) or None)
    metrics = read_job_metrics(connection, keys)
    wanted = set(queue_names)
    jobs = [{"queue": q, "function": f, "outcome": o, "count": int(n)}
            for (q, f, o), n in sorted(metrics.jobs.items()) if not wanted or q in wanted]
    durations = [{"queue": q, "function": f, "count": int(d.get("count", 0)),
                  "sum_seconds": round(d.get("sum", 0.0), 6)}
                 for (q, f), d in sorted(metrics.durations.items()) if not wanted or q in wanted]
    return {
        "schema": SCHEMA_VERSION,
        "prefix": keys.prefix,
        **snapshot.as_dict(),
        "jobs": jobs,
        "durations": durations,
        "totals": {"hub_blocked": int(metrics.hub_blocked),
                   "recovered_jobs": int(metrics.recovered_jobs)},
    }
