"""The loop of a worker that runs many jobs at once, with what goes around it.

``GeventWorker`` and ``ForkWorker`` differ in their runtime and executors; both run
the same loop with the same companions: a :class:`BatchFinisher` writing endings in
batches, a :class:`StopListener` for ``geventq stop``, and, with ``--with-scheduler``,
a scheduler task. :func:`batching_loop` builds them once for both; the worker then
adds its lanes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..scheduler import Scheduler, scheduler_for_worker
from .base import Worker
from .executors import Runtime
from .finisher import BatchFinisher
from .loop import Loop
from .stopping import StopListener


@dataclass
class BatchingLoop:
    """A loop (no lanes yet) and its companions, started and stopped by the loop."""

    loop: Loop
    finisher: BatchFinisher
    stop_listener: StopListener
    scheduler: Scheduler | None


def batching_loop(worker: Worker, runtime: Runtime, with_scheduler: bool = False,
                  periodic: Any = None, scheduler_lock_ttl: float | None = None) -> BatchingLoop:
    """The loop of ``worker`` on ``runtime``, its finisher, stop listener and scheduler
    (``PERIODIC`` is validated either way), each registered with the loop."""
    finisher = BatchFinisher(worker.connection, worker.keys, worker.name, worker.key,
                             busy_jobs=lambda: loop.running(),
                             written=lambda: loop.slot_freed(), runtime=runtime)
    loop = Loop(worker, runtime, finisher)
    stop_listener = StopListener(worker.connection, worker.keys, loop.stop_job,
                                 sleep=runtime.sleep)
    loop.services += [stop_listener, finisher]
    loop.tasks = [finisher.run, stop_listener.run]
    scheduler = scheduler_for_worker(worker, with_scheduler, periodic, scheduler_lock_ttl)
    if scheduler is not None:
        loop.tasks.append(lambda: scheduler.run(loop.stopping.wait))
    return BatchingLoop(loop, finisher, stop_listener, scheduler)
