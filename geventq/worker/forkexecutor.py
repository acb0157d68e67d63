"""``ForkExecutor``: the executor of a fork lane, each job in a pre-forked child.

Each submitted job gets a task of the loop's runtime (a thread in a hub-free
``ForkWorker``, a greenlet in a ``GeventWorker``) that waits for the child
running it (:meth:`geventq.worker.forkpool.ForkPool.run`), then reports the
ending to the loop.

``geventq stop JOB_ID`` and a cold shutdown kill the job's child
(:meth:`ForkPool.cancel`): a stopped job ends ``stopped``, an interrupted one
goes back on its queue. A stop that comes before the job's child got it makes
the job end ``stopped`` without running; one that comes after the child
replied changes nothing. The job always ends once, and its slot always comes
free.
"""

from __future__ import annotations

import logging
import time

from ..endings import Ending
from ..exceptions import ShutdownRequested
from ..job import Job
from .executors import JobSink, Runtime
from .forkpool import SHUTDOWN, STOPPED, ForkPool
from .heartbeat import native

logger = logging.getLogger("geventq.worker")

COLD_STOP_WAIT = 10.0  # seconds a cold stop waits for the killed children's jobs to go back


class ForkExecutor:
    """Runs up to ``pool.size`` jobs at once, each in a child of ``pool``."""

    def __init__(self, pool: ForkPool, sink: JobSink, runtime: Runtime) -> None:
        self.pool = pool
        self.size = pool.size
        self.sink = sink
        self.runtime = runtime
        self._running: dict[str, Job] = {}
        # _running changes in the waiters' tasks and is read from other threads. A native
        # lock: held for a dict operation only (never across a switch), so a greenlet
        # never waits on it, and a native thread can take it whatever the hub is doing.
        # Re-entrant: a ForkWorker's SIGTERM handler (Loop.on_signal counts running())
        # runs in the main thread, maybe while that thread holds it in submit().
        self._lock = native("_thread", "RLock")()

    def free_slots(self) -> int:
        return self.size - len(self._running)

    def submit(self, job: Job) -> None:
        with self._lock:
            self._running[job.id] = job
        self.pool.start(job)  # in the loop's thread, which forks any new child
        self.runtime.spawn(self._run_job, job)

    def running(self) -> dict[str, Job]:
        """The jobs running now, by id: a copy, safe from any thread. Never a wrong empty
        answer: the loop's lost-claims check would restart every job it left out."""
        with self._lock:
            return dict(self._running)

    def _run_job(self, job: Job) -> None:
        ending: Ending | None = None
        try:
            ending = self.pool.run(job)
        except ShutdownRequested:
            self.sink.job_interrupted(job)
        except BaseException:  # the task was killed (the worker is going away): put it back
            self.sink.job_interrupted(job)
            raise
        finally:
            # a job leaves running() only once its ending is with the finisher (or it is
            # back on its queue): the self-check must always find it in one of the two
            if ending is not None:
                self.sink.job_ended(ending)
            with self._lock:
                self._running.pop(job.id, None)
            self.sink.slot_freed()

    def stop_job(self, job_id: str) -> bool:
        """``geventq stop``: kill the job's child; True if the job runs here."""
        if job_id not in self._running or not self.pool.cancel(job_id, STOPPED):
            return False
        logger.info("job %s stopped on request", job_id)
        return True

    def interrupt(self) -> None:
        pass  # children are killed by stop(), once the loop has ended

    def stop(self, cold: bool) -> None:
        """On a cold stop, kill every job's child; each job goes back on its queue."""
        if not cold:
            return
        for job_id in self.running():
            self.pool.cancel(job_id, SHUTDOWN)
        deadline = time.monotonic() + COLD_STOP_WAIT
        while self._running and time.monotonic() < deadline:
            self.runtime.sleep(0.01)

    def close(self) -> None:
        """End the children. One whose waiter outlived a cold stop's wait is killed, its job
        cancelled for the shutdown; its waiter still owns (and closes) its pipes."""
        self.pool.close()
