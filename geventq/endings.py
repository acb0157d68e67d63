"""Ending many jobs per script call: the hot path of :func:`geventq.lifecycle.end_jobs`.

Nearly every job ends with no dependents and no retry to decide. Such
"plain" endings go to ``end_batch.lua``, one call per queue for a whole batch
(one hash write per job, one registry update per batch); the rest go to
``end.lua``, one call per job. Both kinds share one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .keys import Keys
from .retry import has_retry
from .utils import as_str

if TYPE_CHECKING:
    from .lifecycle import Ending

_PLAIN_OUTCOMES = frozenset({"finished", "failed", "stopped"})


def is_plain(ending: Ending) -> bool:
    """True when ``end_batch.lua`` can end the job (no dependents known, no retry)."""
    return not ending.dependents and ending.outcome in _PLAIN_OUTCOMES and not (
        ending.outcome == "failed" and has_retry(ending.job.extra))


def batch_calls(keys: Keys, worker_name: str, endings: Sequence[Ending],
                stamp: str) -> list[tuple[list, list, list[Ending]]]:
    """(KEYS, ARGV, endings) of the ``end_batch.lua`` calls for plain endings, one per queue."""
    by_queue: dict[str, list[Ending]] = {}
    for ending in endings:
        by_queue.setdefault(ending.job.origin, []).append(ending)
    in_flight = keys.worker_jobs(worker_name)
    calls = []
    for queue_name, group in by_queue.items():
        registry = keys.registry
        script_keys = [in_flight, registry("started", queue_name),
                       registry("finished", queue_name), registry("failed", queue_name)]
        args: list[Any] = [stamp]
        dependents, waiters, done = keys.dependents, keys.waiters, keys.done
        for ending in group:
            job = ending.job
            job_id = job.id
            script_keys += (job.key, dependents(job_id), waiters(job_id), done(job_id))
            extra = ending.extra
            args += (job_id, ending.outcome, ending.ttl, ending.payload, len(extra))
            for pair in extra.items():
                args += pair
        calls.append((script_keys, args, group))
    return calls


def skipped(group: list[Ending], reply: list) -> list[tuple[Ending, list[str]]]:
    """The endings ``end_batch.lua`` left for ``end.lua``, with the dependents it found."""
    return [(group[int(reply[i]) - 1], [as_str(c) for c in reply[i + 1]])
            for i in range(0, len(reply), 2)]
