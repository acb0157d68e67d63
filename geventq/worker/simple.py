"""``SimpleWorker``: one job at a time, in the worker's own process.

For tests and debugging. Timeouts use SIGALRM, so it must run in the main
thread. It runs the one worker loop (:mod:`geventq.worker.loop`) with one
lane, an :class:`InlineExecutor`, and writes each ending as it comes.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

from ..exceptions import JobTimeoutException, ShutdownRequested
from ..execution import DeathPenalty, execute, time_limit
from ..job import Job
from .base import Worker
from .executors import JobSink, PlainRuntime, WriteNow
from .loop import Loop

logger = logging.getLogger("geventq.worker")


@contextlib.contextmanager
def alarm_death_penalty(job: Job) -> Iterator[None]:
    """Raise JobTimeoutException in the main thread when the job's time is up."""
    limit = time_limit(job.timeout)
    if limit is None:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise JobTimeoutException(f"job {job.id} ({job.func_name}) exceeded its timeout of "
                                  f"{job.timeout} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class InlineExecutor:
    """Runs each job to its end inside ``submit``, in the caller's thread; a cold stop
    (a second signal) raises ``ShutdownRequested`` into the job from the handler."""

    size = 1

    def __init__(self, worker: Worker, sink: JobSink, death_penalty: DeathPenalty) -> None:
        self.worker = worker
        self.sink = sink
        self.death_penalty = death_penalty
        self.current: Job | None = None

    def free_slots(self) -> int:
        return 0 if self.current is not None else 1

    def running(self) -> dict[str, Job]:
        current = self.current
        return {} if current is None else {current.id: current}

    def submit(self, job: Job) -> None:
        worker = self.worker
        self.current = job
        try:
            ending = execute(job, self.death_penalty, worker.exception_handlers,
                             worker.default_result_ttl, job_modules=worker.job_modules)
        except ShutdownRequested:
            self.current = None
            self.sink.job_interrupted(job)
            return
        finally:
            self.current = None
        self.sink.job_ended(ending)
        self.sink.slot_freed()

    def stop_job(self, job_id: str) -> bool:
        return False  # nothing listens for stops in a SimpleWorker

    def interrupt(self) -> None:
        if self.current is not None:
            raise ShutdownRequested(f"cold shutdown of worker {self.worker.name}")

    def stop(self, cold: bool) -> None:
        pass  # a job runs inside submit(): by the time the loop stops, none is running

    def close(self) -> None:
        pass


class SimpleWorker(Worker):
    """Runs one job at a time in its own process."""

    death_penalty = staticmethod(alarm_death_penalty)

    def __init__(self, queues: Any = ("default",), **kwargs: Any) -> None:
        super().__init__(queues, **kwargs)
        finisher = WriteNow(self.connection, self.keys, self.name, self.key)
        self.loop = Loop(self, PlainRuntime(), finisher)
        self.executor = InlineExecutor(self, self.loop, self.death_penalty)
        self.loop.add_lane(self.queue_names, self.executor)

    def request_stop(self, cold: bool = False) -> None:
        """Warm stop (the running job finishes), or cold."""
        self.loop.request_stop(cold)

    def work(self, burst: bool = False, max_jobs: int | None = None) -> bool:
        """Run jobs one by one until stopped (or until the queues are empty in burst mode)."""
        return self.loop.run(burst, max_jobs, concurrency=1, mode="simple")
