"""``GeventWorker``: hundreds of jobs at once in one process, on greenlets.

It runs the one worker loop (:mod:`geventq.worker.loop`) on the gevent runtime:
the main greenlet claims jobs in batches (never more than there are free
slots) and hands them to a :class:`GreenletExecutor`, a greenlet per job under
a ``gevent.Timeout``; the :class:`~geventq.worker.finisher.BatchFinisher`
greenlet writes the endings of many jobs in one pipeline. The Redis work per job is therefore a fraction of a
round trip when the worker is busy. An idle worker blocks on the queues' wake
tokens (BLPOP): no polling, and a new job is picked up as soon as it is
enqueued. Fork queues are a second lane with an executor of its own, a
:class:`~geventq.worker.forkexecutor.ForkExecutor` whose greenlet per job waits
for the forked child running it (:mod:`geventq.worker.forkpool`, the pool a
hub-free ``ForkWorker`` uses too; here each child first leaves this hub).

``geventq worker --mode fork`` runs a ``ForkWorker`` (no gevent at all);
``GeventWorker(mode="fork")``, built in your own (monkey-patched) process,
runs every queue in children too, waiting for them on this hub.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from gevent import monkey

from .. import setting_rules
from ..defaults import DEFAULT_CONCURRENCY, DEFAULT_MAX_BLOCKING_TIME
from ..endings import Ending
from ..exceptions import ConfigError
from ..execution import execute
from ..job import Job
from ..worker.base import Worker
from ..worker.batching import batching_loop
from ..worker.forkexecutor import ForkExecutor
from ..worker.forkpool import ForkPool
from ..worker.modes import fork_settings
from .executor import GreenletExecutor, StopRegion
from .forkchild import leave_parent_hub
from .hubguard import HubGuard
from .runtime import GeventRuntime
from .timeouts import gevent_death_penalty

logger = logging.getLogger("geventq.worker")


def _tune_gc() -> None:
    """Make the garbage collector cheap for a worker process: what start-up loaded is
    frozen (never traversed again), and young objects are collected less often. With
    hundreds of jobs in flight, collections otherwise took an eighth of the CPU.
    Done once per process (a process running workers one after another freezes once)."""
    if gc.get_freeze_count():
        return
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, 10000), middle, old)


# what the fork pool (geventq.worker.forkpool) calls, cooperative only once patched
FORK_POOL_MODULES = ("select", "os", "time")


def require_patched_for_forks() -> None:
    """Fork queues wait for their children with ``select.poll``, ``os.waitpid`` and
    ``time.sleep``: unpatched, one wait would stall every greenlet of the worker."""
    missing = [name for name in FORK_POOL_MODULES if not monkey.is_module_patched(name)]
    if missing:
        raise ConfigError(f"a GeventWorker with fork queues needs gevent's patches of "
                          f"{', '.join(missing)}, missing in this process: call "
                          "gevent.monkey.patch_all() before anything else, as `geventq worker` "
                          "does (or run geventq.ForkWorker, which needs no gevent)")


class GeventWorker(Worker):
    """Runs up to ``concurrency`` jobs at once, each in its own greenlet."""

    death_penalty = staticmethod(gevent_death_penalty)

    def __init__(self, queues: Any = ("default",), concurrency: int = DEFAULT_CONCURRENCY,
                 with_scheduler: bool = False, periodic: Any = None,
                 scheduler_lock_ttl: float | None = None, fork_queues: Any = (),
                 fork_concurrency: int | None = None, mode: str = "gevent",
                 max_blocking_time: float | None = DEFAULT_MAX_BLOCKING_TIME,
                 **kwargs: Any) -> None:
        super().__init__(queues, **kwargs)
        self.concurrency = setting_rules.concurrency(concurrency, "concurrency")
        if max_blocking_time is not None:
            max_blocking_time = setting_rules.max_blocking_time(max_blocking_time,
                                                                "max_blocking_time")
        pool = self.connection.connection_pool
        if getattr(pool, "max_connections", None) and pool.max_connections < self.concurrency + 50:
            # every job greenlet may need a connection at once (a cold shutdown puts
            # them all back together): redis-py's default of 100 would raise
            pool.max_connections = self.concurrency + 50
        # Two lanes, each claimed on its own so that neither takes more jobs than it has
        # slots: greenlets (`concurrency`) and forked children (`fork_concurrency`, see
        # geventq.worker.forkpool). Within a lane, queues keep their priority order.
        self.mode, self.fork_queue_names, self.fork_concurrency = fork_settings(
            mode, fork_queues, fork_concurrency, self.queue_names)
        if self.fork_queue_names:
            require_patched_for_forks()
        green_names = [q for q in self.queue_names if q not in self.fork_queue_names]
        runtime = GeventRuntime()
        # a scheduler candidate on a greenlet when with_scheduler (PERIODIC is validated anyway)
        parts = batching_loop(self, runtime, with_scheduler, periodic, scheduler_lock_ttl)
        self.loop, self.finisher = parts.loop, parts.finisher
        self.stop_listener, self.scheduler = parts.stop_listener, parts.scheduler
        self.executor = GreenletExecutor(self.concurrency, self._execute, self.loop)
        self.loop.add_lane(green_names, self.executor)
        self.forks = ForkPool(self, self.fork_queue_names, self.fork_concurrency,
                              in_child=leave_parent_hub) if self.fork_queue_names else None
        self.fork_executor = ForkExecutor(self.forks, self.loop, runtime) \
            if self.forks is not None else None
        if self.fork_executor is not None:
            self.loop.add_lane(self.fork_queue_names, self.fork_executor)
        self.guard = HubGuard(self, self.executor, self.finisher, self.forks, max_blocking_time) \
            if green_names and max_blocking_time else None
        if self.guard is not None:
            self.loop.services.append(self.guard)

    def _execute(self, job: Job, stop_region: StopRegion) -> Ending:
        return execute(job, self.death_penalty, self.exception_handlers,
                       self.default_result_ttl, stop_region=stop_region,
                       job_modules=self.job_modules)

    def work(self, burst: bool = False, max_jobs: int | None = None) -> bool:
        """Run jobs until stopped (or, in burst mode, until the queues are empty).

        Returns True when at least one job was run.
        """
        _tune_gc()
        return self.loop.run(burst, max_jobs, concurrency=self.concurrency, mode=self.mode,
                             fork_queues=",".join(self.fork_queue_names) or None,
                             fork_concurrency=self.fork_concurrency if self.forks else None)

    def request_stop(self, cold: bool = False) -> None:
        """Warm shutdown (finish running jobs), or cold (requeue them now)."""
        self.loop.request_stop(cold)

    def stop_job(self, job_id: str) -> bool:
        """Stop one running job of this worker; True if it was running here (a stop for
        a job not here yet is remembered: see ``Loop.stop_job``)."""
        return self.loop.stop_job(job_id)

    def running(self) -> dict[str, Job]:
        """The jobs this worker runs now, by id, in both lanes."""
        jobs = self.executor.running()
        if self.fork_executor is not None:
            jobs.update(self.fork_executor.running())
        return jobs

