"""``GreenletExecutor``: each job of a lane in a greenlet of its own.

A greenlet lane runs :func:`geventq.execution.execute` under a
``gevent.Timeout`` per job. (A fork lane has an executor of its own,
:class:`geventq.worker.forkexecutor.ForkExecutor`.)

``geventq stop JOB_ID`` interrupts only the *run* of a job: the call of its
function (:meth:`stop_region`). It
is thrown into the job's greenlet from the hub, and only if the job is still
in that stretch when the hub gets to it. So a stop that comes too early (the
job's greenlet has not begun) makes the job end ``stopped`` without running;
one that comes too late (its exception handlers or callbacks run) changes
nothing. A stop that comes before the job reaches the executor at all is kept
by the loop (``Loop.stop_job``). The job always ends once, and its slot always
comes free.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import gevent

from ..endings import Ending
from ..exceptions import ShutdownRequested, StopRequested
from ..job import Job
from ..worker.executors import JobSink

logger = logging.getLogger("geventq.worker")

StopRegion = Callable[[Job], contextlib.AbstractContextManager]
# run(job, stop_region) -> the job's ending; ShutdownRequested/GreenletExit propagate
RunJob = Callable[[Job, StopRegion], Ending]


class GreenletExecutor:
    """Runs up to ``size`` jobs at once, each in its own greenlet."""

    def __init__(self, size: int, run: RunJob, sink: JobSink) -> None:
        self.size = size
        self.run = run
        self.sink = sink
        self._running: dict[str, gevent.Greenlet] = {}
        self._jobs: dict[gevent.Greenlet, Job] = {}
        self._stop_requests: set[str] = set()  # ids of running jobs that geventq stop named
        self._in_stop_region: dict[str, gevent.Greenlet] = {}

    # -- the protocol ----------------------------------------------------------------
    def free_slots(self) -> int:
        return self.size - len(self._running)

    def submit(self, job: Job) -> None:
        greenlet = gevent.Greenlet(self._run_job, job)
        self._running[job.id] = greenlet
        self._jobs[greenlet] = job
        greenlet.start()

    def running(self) -> dict[str, Job]:
        """The jobs running now, by id (safe from another thread: retried on a resize)."""
        for _ in range(3):
            try:
                return {job.id: job for job in list(self._jobs.values())}
            except RuntimeError:
                continue
        return {}

    def job_of(self, greenlet: Any) -> Job | None:
        """The job ``greenlet`` runs, if it runs one of ours (safe from another thread)."""
        return self._jobs.get(greenlet)

    def interrupt(self) -> None:
        pass  # greenlets are killed by stop(), once the loop has ended

    def stop(self, cold: bool) -> None:
        """Kill every job's greenlet with ShutdownRequested; each job goes back."""
        if not cold or not self._running:
            return
        jobs = {job_id: self._jobs[greenlet] for job_id, greenlet in self._running.items()}
        gevent.killall(list(self._running.values()), ShutdownRequested, block=True, timeout=10)
        # a greenlet killed before it ever ran never reached _run_job's clean-up
        for job_id, greenlet in list(self._running.items()):
            if greenlet.dead:
                self._forget(job_id)
                self.sink.job_interrupted(jobs[job_id])

    def close(self) -> None:
        pass  # greenlets hold nothing once the loop has ended

    # -- one job -------------------------------------------------------------------------
    def _run_job(self, job: Job) -> None:
        ending = None
        try:
            ending = self.run(job, self.stop_region)
        except (ShutdownRequested, gevent.GreenletExit):
            self.sink.job_interrupted(job)
        finally:
            self._stop_requests.discard(job.id)
            # a job leaves running() only once its ending is with the finisher (or it is
            # back on its queue): the self-check must always find it in one of the two
            if ending is not None:
                self.sink.job_ended(ending)
            self._forget(job.id)
            self.sink.slot_freed()

    def _forget(self, job_id: str) -> None:
        greenlet = self._running.pop(job_id, None)
        if greenlet is not None:
            self._jobs.pop(greenlet, None)

    # -- geventq stop ------------------------------------------------------------------
    def stop_job(self, job_id: str) -> bool:
        """Stop one running job of this lane; True if it runs here."""
        if job_id not in self._running:
            return False
        self._stop_requests.add(job_id)
        if job_id in self._in_stop_region:
            gevent.get_hub().loop.run_callback(self._deliver_stop, job_id)
            logger.info("job %s stopped on request", job_id)
        else:
            logger.info("job %s: stop requested while it was not running its function (it "
                        "stops before it begins, or ends as it was ending)", job_id)
        return True

    def _deliver_stop(self, job_id: str) -> None:
        # the hub runs this: the job's greenlet is parked at a switch, in the stretch or not
        greenlet = self._in_stop_region.get(job_id)
        if greenlet is not None:
            greenlet.throw(StopRequested(f"job {job_id} stopped on request"))

    @contextlib.contextmanager
    def stop_region(self, job: Job) -> Iterator[None]:
        """The stretch of a job's run that :meth:`stop_job` interrupts (``StopRequested``)."""
        if job.id in self._stop_requests:
            raise StopRequested(f"job {job.id} stopped on request before it began")
        self._in_stop_region[job.id] = gevent.getcurrent()
        try:
            yield
        finally:
            del self._in_stop_region[job.id]
