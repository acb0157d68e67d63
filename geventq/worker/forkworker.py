"""``ForkWorker``: every job in a pre-forked child process, and no gevent at all.

What ``geventq worker --mode fork`` runs (``MODE = "fork"``): the one worker
loop (:mod:`geventq.worker.loop`) on :class:`~geventq.worker.executors.PlainRuntime`,
with one lane whose :class:`~geventq.worker.forkexecutor.ForkExecutor` runs each
job in a child of a :class:`~geventq.worker.forkpool.ForkPool` (children are
kept, job after job), a thread per running job waiting for its child. The
main thread claims; a finisher thread writes the endings of many jobs in one
pipeline (:class:`~geventq.worker.finisher.BatchFinisher`, as a ``GeventWorker``'s
greenlet does); the stop listener (``geventq stop``) and the scheduler
(``--with-scheduler``) are threads. The process never imports gevent, never monkey-patches and runs no
hub, so its children have no hub to leave behind.

A failure callback that runs here (its job's child was killed or died) has no
time limit: it runs in the job's waiting thread, where SIGALRM cannot reach.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

from ..exceptions import ConfigError
from ..job import Job
from .base import Worker
from .batching import batching_loop
from .executors import PlainRuntime
from .forkexecutor import ForkExecutor
from .forkpool import ForkPool
from .modes import fork_settings

logger = logging.getLogger("geventq.worker")


@contextlib.contextmanager
def no_death_penalty(job: Job) -> Iterator[None]:
    """No limit: a callback run by a job's waiting thread (see the module's docstring)."""
    yield


def refuse_a_patched_process(class_name: str) -> None:
    """A ForkWorker in a monkey-patched process would run its threads as greenlets of one
    OS thread (blocking the signals it handles) and its children on the parent's hub:
    refuse, saying how to start it without gevent."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and (monkey.is_module_patched("socket")
                               or monkey.is_module_patched("thread")):
        raise ConfigError(f"{class_name} runs without gevent, but this process is "
                          "monkey-patched: start it with `geventq worker --mode fork` (MODE = "
                          "\"fork\" written as a literal in the settings file), not from gevent "
                          "code")


class ForkWorker(Worker):
    """Runs up to ``fork_concurrency`` jobs at once, each in a forked child; no gevent."""

    death_penalty = staticmethod(no_death_penalty)

    def __init__(self, queues: Any = ("default",), fork_concurrency: int | None = None,
                 fork_queues: Any = (), with_scheduler: bool = False, periodic: Any = None,
                 scheduler_lock_ttl: float | None = None, **kwargs: Any) -> None:
        refuse_a_patched_process(type(self).__name__)
        super().__init__(queues, **kwargs)
        # every queue is a fork queue; FORK_QUEUES may still name some (a shared settings file)
        _, names, self.fork_concurrency = fork_settings("fork", fork_queues, fork_concurrency,
                                                        self.queue_names)
        self.fork_queue_names = names
        runtime = PlainRuntime()
        parts = batching_loop(self, runtime, with_scheduler, periodic, scheduler_lock_ttl)
        self.loop, self.finisher = parts.loop, parts.finisher
        self.stop_listener, self.scheduler = parts.stop_listener, parts.scheduler
        self.forks = ForkPool(self, names, self.fork_concurrency)
        self.executor = ForkExecutor(self.forks, self.loop, runtime)
        self.loop.add_lane(names, self.executor)

    def work(self, burst: bool = False, max_jobs: int | None = None) -> bool:
        """Run jobs until stopped (or, in burst mode, until the queues are empty).

        Returns True when at least one job was run.
        """
        return self.loop.run(burst, max_jobs, concurrency=self.fork_concurrency, mode="fork",
                             fork_queues=",".join(self.fork_queue_names),
                             fork_concurrency=self.fork_concurrency)

    def request_stop(self, cold: bool = False) -> None:
        """Warm stop (running jobs finish), or cold (their children are killed, the jobs
        go back on their queues)."""
        self.loop.request_stop(cold)

    def stop_job(self, job_id: str) -> bool:
        """Stop one running job of this worker; True if it was running here."""
        return self.loop.stop_job(job_id)

    def running(self) -> dict[str, Job]:
        """The jobs this worker runs now, by id."""
        return self.executor.running()
