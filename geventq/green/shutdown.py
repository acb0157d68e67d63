"""Warm and cold shutdown of a GeventWorker: signals, draining, putting jobs back.

A mixin of :class:`geventq.green.worker.GeventWorker`, which owns the state used
here (``_stopping``, ``_cold``, ``_running``, ``_endings``...).
"""

from __future__ import annotations

import logging
import signal
import time

import gevent

from .. import lifecycle
from ..exceptions import ShutdownRequested
from ..job import Job
from ..redis_errors import describe
from ..utils import backoff_delay

logger = logging.getLogger("geventq.worker")


class Shutdown:
    """SIGTERM/SIGINT once: warm (running jobs finish); twice: cold (they go back)."""

    def request_stop(self, cold: bool = False) -> None:
        """Warm shutdown (finish running jobs), or cold (requeue them now)."""
        self._stopping.set()
        if cold:
            self._cold = True
        self._slot_free.set()

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals == 1:
            logger.info("worker %s got %s: warm shutdown, %d job(s) running", self.name,
                        signal.Signals(signum).name, len(self._running))
            self.request_stop()
        else:
            logger.warning("worker %s got %s again: cold shutdown", self.name,
                           signal.Signals(signum).name)
            self.request_stop(cold=True)

    def _drain(self) -> None:
        """Let running jobs finish (up to the grace period), then requeue the rest."""
        if self._running and not self._cold:
            logger.info("waiting up to %s s for %d running job(s)", self.shutdown_grace,
                        len(self._running))
            deadline = time.monotonic() + self.shutdown_grace
            while self._running and not self._cold and time.monotonic() < deadline:
                self._slot_free.clear()
                self._slot_free.wait(min(0.5, max(0.0, deadline - time.monotonic())))
        if self._running:
            logger.warning("cold shutdown: putting %d running job(s) back", len(self._running))
            jobs = {job_id: greenlet.args[0] for job_id, greenlet in self._running.items()}
            gevent.killall(list(self._running.values()), ShutdownRequested, block=True,
                           timeout=10)
            # a greenlet killed before it ever ran never reached _run_job's clean-up
            for job_id, greenlet in list(self._running.items()):
                if not greenlet.dead:
                    continue
                job = jobs[job_id]
                self._return_to_queue(job)
                del self._running[job_id]
                self._fork_running -= self._is_fork_job(job)
        while self._endings or self._flushing:
            self._endings_ready.set()
            gevent.sleep(0.01)

    def _return_to_queue(self, job: Job) -> None:
        reason = f"shutdown: worker {self.name} stopped while the job ran, and the job had " \
                 f"already been requeued {self.max_abandoned_requeues} time(s)"
        for attempt in range(1, 6):
            try:
                # a job whose hash no script accepts is failed with the reason instead
                outcome = lifecycle.give_back(
                    self.connection, self.keys, self.name, job.id, job.origin, reason,
                    max_requeues=self.max_abandoned_requeues)
                break
            except Exception as exc:  # transient: give_back keeps the others to the job
                logger.warning("could not put job %s back (%s); retrying", job.id, describe(exc))
                gevent.sleep(backoff_delay(attempt, base=0.2))
        else:  # it stays in our in-flight set: unregister or the other workers requeue it
            outcome = "left for recovery"
        logger.warning("job %s %s interrupted by shutdown: %s", job.id, job.func_name,
                       "put back on its queue" if outcome == "queued" else outcome)
