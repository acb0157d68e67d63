"""Every job state transition on the Python side, each one atomic in Redis.

Workers differ only in how they run a job; they all claim, start, end and
requeue jobs through these functions. Each transition is one Lua script, and
the batch forms send the transitions of many jobs in one round trip.

A claim moves ids from queues into started registries and the worker's
in-flight set in one step; ``start`` then marks them started and loads them.
Ending a job releases its dependents in the same step, so a dependent is
enqueued exactly once even when its parents end together on two workers.

Enqueueing (queued, deferred, scheduled) is :mod:`geventq.enqueueing`, and
``Queue(is_async=False)`` is :mod:`geventq.inline`; this package holds what workers
(and recoverers) do: :mod:`.claim` (claim, start), :mod:`.end` (end),
:mod:`.recover` (requeue, fail, forget a worker). docs/transitions.md has the table.
"""

from __future__ import annotations

from .. import scripts
from ..endings import Ending
from .claim import Claim, claim, claim_and_start, start
from .end import end_job, end_jobs
from .recover import (
    dead_workers,
    drop_stale_claims,
    fail_started,
    forget_worker,
    give_back,
    recover_dead_workers,
    recover_worker,
    requeue_started,
)

__all__ = [
    "Claim", "Ending", "claim", "claim_and_start", "dead_workers", "drop_stale_claims", "end_job",
    "end_jobs", "fail_started", "forget_worker", "give_back", "recover_dead_workers",
    "recover_worker", "requeue_started", "scripts", "start",
]
