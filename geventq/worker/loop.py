"""The worker loop, written once for every kind of worker.

``Loop`` owns register/unregister (and so the heartbeat), recovery of dead
workers, the suspend flag, claim -> submit -> finish, lost claims, back-off,
warm and cold stop, burst mode and ``max_jobs``. Plugged in: an executor per
*lane* (the queues it claims for; a lane claims only as many jobs as its
executor has free slots), the finisher that writes endings, and the runtime
(plain threads or gevent). See :mod:`geventq.worker.executors` and
docs/architecture.md.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from .. import lifecycle
from ..endings import Ending
from ..job import Job
from ..redis_errors import describe
from ..utils import backoff_delay
from .base import Worker, WorkerState
from .claiming import Backoff, Claimer, Lane
from .executors import EarlyStops, Executor, Finisher, Runtime
from .recovery import DeadWorkerRecovery, lost_claims
from .tuning import BUNCH, CLAIM_MAX, GATHER, GIVE_BACK_ATTEMPTS, IDLE_BLOCK, SUSPEND_CHECK

logger = logging.getLogger("geventq.worker")


class Loop:
    """Runs one worker: claims jobs for its lanes and hands them to their executors."""

    def __init__(self, worker: Worker, runtime: Runtime, finisher: Finisher) -> None:
        self.worker = worker
        self.lanes: list[Lane] = []  # add_lane()
        self.runtime = runtime
        self.finisher = finisher
        self.services: list[Any] = []  # start() after the signals, stop() at the end
        self.tasks: list[Callable[[], Any]] = []  # run in the background while the loop runs
        self.stopping = runtime.event()  # warm stop asked
        self.slot_free = runtime.event()  # a job ended (or was given back): a slot came free
        self.cold = False
        self.claimed = 0
        self.early_stops = EarlyStops()
        # geventq stop (heard in another thread by a ForkWorker) against handing a job over:
        # a stop either finds the job at its executor or is kept for it
        self._stops_lock = threading.Lock()
        self._signals = 0
        self._suspended = False
        self._suspend_checked = -SUSPEND_CHECK
        self._next_self_check = 0.0
        self.backoff = Backoff(self.stopping)  # errors in a row, for the loop and the claimer
        self.claimer = Claimer(worker, runtime, self.backoff, self.redis_error)

    def add_lane(self, queue_names: Sequence[str], executor: Executor) -> Lane:
        """A lane for ``queue_names`` (none: no lane), claimed in the order lanes are added."""
        lane = Lane(list(queue_names), executor)
        if lane.queue_names:
            self.lanes.append(lane)
            self.claimer.add_lane(lane)
        return lane

    # -- running ------------------------------------------------------------------
    def run(self, burst: bool = False, max_jobs: int | None = None, **fields: Any) -> bool:
        """Register (``fields`` go to the worker's hash), run until stopped (or, in burst
        mode, until the queues are empty, or ``max_jobs`` jobs), then unregister.
        Returns True when at least one job was claimed."""
        worker = self.worker
        # caught before the worker shows as registered: a SIGTERM to a visible worker stops it
        undo = [self.runtime.on_signal(signum, self.on_signal)
                for signum in (signal.SIGTERM, signal.SIGINT)]
        try:
            worker.register(**fields)
        except BaseException:
            for restore in undo:
                restore()
            raise
        recovery = DeadWorkerRecovery(worker.connection, worker.keys, worker.name,
                                      worker.heartbeat_interval, worker.max_abandoned_requeues)
        handles: list[Any] = []
        started: list[Any] = []
        try:
            for service in self.services:  # before the threads: the hub guard's monitor
                service.start()
                started.append(service)
            recovery.start()
            handles = [self.runtime.spawn(task) for task in self.tasks]
            self._loop(burst, max_jobs)
            self.drain()
        finally:
            self._stop_all(recovery, handles, started, undo)
        return self.claimed > 0

    def _stop_all(self, recovery: DeadWorkerRecovery, handles: list[Any], services: list[Any],
                  undo: list[Callable[[], None]]) -> None:
        self.claimer.close()
        for lane in self.lanes:
            lane.executor.close()
        for service in reversed(services):
            service.stop()
        recovery.stop()
        self.runtime.kill(handles, timeout=2)
        for restore in undo:
            restore()
        self.worker.unregister()

    def _loop(self, burst: bool, max_jobs: int | None) -> None:
        gathered = False
        while not self.stopping.is_set():
            if max_jobs is not None and self.claimed >= max_jobs:
                return
            if self._check_suspended():
                self.stopping.wait(SUSPEND_CHECK)
                continue
            self._check_lost_claims()
            # cleared before the lanes are looked at: a slot freed from here on (in the
            # gathering pause, a claim, another thread) ends the waits below
            self.slot_free.clear()
            lanes, full = self._free_lanes()
            if not lanes:
                self._wait_for_a_slot()
                continue
            if self.running() and not gathered and sum(free for _, free in lanes) < BUNCH:
                gathered = True  # busy: let more slots come free, once, before claiming
                self.stopping.wait(GATHER)
                continue
            gathered = False
            if self._claim_lanes(lanes, max_jobs) and (
                    burst or not self.claimer.drained([lane for lane, _ in lanes])):
                continue  # more may be queued: claim again (an emptied queue lost its wake
                          # token, so a waiting worker goes straight to its BLPOP instead)
            if burst:
                if not self.running() and not self.finisher.busy() and self.claimer.retry_in is None:
                    return  # (jobs that a limit holds back are waited for)
                self.slot_free.clear()
                self.slot_free.wait(0.05 if self.claimer.retry_in is None else self.claimer.idle_block())
            else:
                self.claimer.wait_for_work([self.worker.keys.wake(name) for lane, _ in lanes
                                            for name in lane.queue_names],
                                           self.slot_free if full else None)

    def _wait_for_a_slot(self) -> None:
        """Every lane is full: wait until a job ends."""
        self.slot_free.clear()
        # looked at again after the clear: a job ending in another thread (a ForkWorker's)
        # may have freed its slot in between
        if not self._free_lanes()[0] and not self.stopping.is_set():
            # not for ever: a signal that reached another thread is handled (in this one)
            # only once this thread runs again
            self.slot_free.wait(IDLE_BLOCK)
        self.runtime.yield_()  # let the other jobs ending in this turn free their slots

    def running(self) -> int:
        """How many jobs the executors run now."""
        return sum(len(lane.executor.running()) for lane in self.lanes)

    def _free_lanes(self) -> tuple[list[tuple[Lane, int]], bool]:
        """([(lane, free slots)] of the lanes with room, whether a lane is full)."""
        free = [(lane, lane.executor.free_slots()) for lane in self.lanes]
        return [(lane, n) for lane, n in free if n > 0], any(n <= 0 for _, n in free)

    def _claim_lanes(self, lanes: list[tuple[Lane, int]], max_jobs: int | None) -> int:
        claimed = 0
        for lane, free in lanes:
            if max_jobs is not None:
                free = min(free, max_jobs - self.claimed)
            if free > 0:
                claimed += self._claim(lane, min(free, CLAIM_MAX))
        return claimed

    def _claim(self, lane: Lane, count: int) -> int:
        """Claim, start and submit up to ``count`` jobs of ``lane``; how many were claimed."""
        taken, jobs = self.claimer.claim(lane, count)
        if not taken:
            return 0
        self.claimed += taken
        self.submit(jobs)
        if len(jobs) < BUNCH:  # a few jobs (an idle worker's): they start now, not after
            self.runtime.yield_()  # this loop's next round trip (a bunch runs during it)
            if self.finisher.busy():
                self.runtime.yield_()  # and the finisher sends those already done before it
        return taken

    def submit(self, jobs: Sequence[Job]) -> None:
        """Hand started jobs to the executor of their queue's lane.

        A job that ``geventq stop`` named before it got here ends ``stopped`` at once.
        """
        for job in jobs:
            with self._stops_lock:
                stopped = self.early_stops.take(job.id)
                if not stopped:
                    self.lane_of(job.origin).executor.submit(job)
            if stopped:
                logger.info("job %s %s stopped on request before it began", job.id, job.func_name)
                self.job_ended(Ending(job, "stopped", "stopped: geventq stop was requested "
                                                      "before the job began",
                                      extra={"duration": "0.000000"}))

    def lane_of(self, queue_name: str | None) -> Lane:
        for lane in self.lanes:
            if queue_name in lane.queue_names:
                return lane
        return self.lanes[0]  # a lost claim of a queue this worker no longer serves

    def _check_lost_claims(self) -> None:
        """Now and then, and after a Redis error: run claimed jobs this worker lost track of."""
        if time.monotonic() < self._next_self_check:
            return
        worker = self.worker
        self._next_self_check = time.monotonic() + worker.heartbeat_interval
        held = {job_id for lane in self.lanes for job_id in lane.executor.running()}
        held |= {e.job.id for e in self.finisher.pending()}
        held |= {job_id for _, job_id in self.claimer.unstarted}
        try:
            lost = lost_claims(worker.connection, worker.keys, worker.name, held)
            jobs = lifecycle.start(worker.connection, worker.keys, worker.name, lost,
                                   job_class=worker.job_class, serializer=worker.serializer)
        except Exception as exc:
            self.redis_error("checking its in-flight jobs", exc)
            return
        self.submit(jobs)

    # -- errors and the suspend flag ----------------------------------------------------
    def redis_error(self, what: str, exc: Exception) -> None:
        """An error while ``what``: back off (a stop ends the wait), and look at the
        in-flight set on the next turn (a reply may have been lost)."""
        self._next_self_check = 0.0
        self.backoff.failed(what, exc)

    def _check_suspended(self) -> bool:
        """Whether the worker is suspended (``geventq suspend``), read at most every
        ``SUSPEND_CHECK`` seconds; while Redis is away the last answer stands."""
        moment = time.monotonic()
        if moment - self._suspend_checked < SUSPEND_CHECK:
            return self._suspended
        self._suspend_checked = moment
        worker = self.worker
        try:
            suspended = worker.is_suspended()
        except redis.RedisError:
            return self._suspended
        if suspended != self._suspended:
            self._suspended = suspended
            try:
                worker.set_state(WorkerState.SUSPENDED if suspended else WorkerState.IDLE)
            except redis.ConnectionError:
                pass  # the heartbeat writes it too (set_state passed it on)
            logger.info("worker %s %s", worker.name, "suspended" if suspended else "resumed")
        return self._suspended

    # -- jobs ending (called by the executors) --------------------------------------------
    def job_ended(self, ending: Ending) -> None:
        """An executor's job ended: its ending goes to the finisher."""
        self.finisher.add(ending)

    def job_interrupted(self, job: Job) -> None:
        """A cold stop interrupted ``job``: put it back on its queue, retrying a few times
        (then it stays in the in-flight set: unregister or the other workers requeue it)."""
        worker = self.worker
        reason = f"shutdown: worker {worker.name} stopped while the job ran, and the job had " \
                 f"already been requeued {worker.max_abandoned_requeues} time(s)"
        outcome = "left for recovery"
        for attempt in range(1, GIVE_BACK_ATTEMPTS + 1):
            try:
                # a job whose hash no script accepts is failed with the reason instead
                outcome = lifecycle.give_back(
                    worker.connection, worker.keys, worker.name, job.id, job.origin or "", reason,
                    max_requeues=worker.max_abandoned_requeues)
                break
            except Exception as exc:  # transient: give_back keeps the others to the job
                logger.warning("could not put job %s back (%s); retrying", job.id, describe(exc))
                self.runtime.sleep(backoff_delay(attempt, base=0.2))
        logger.warning("job %s %s interrupted by shutdown: %s", job.id, job.func_name,
                       "put back on its queue" if outcome == "queued" else outcome)

    def slot_freed(self) -> None:
        """An executor's slot came free (or the finisher wrote endings)."""
        self.slot_free.set()

    # -- stopping -------------------------------------------------------------------------
    def stop_job(self, job_id: str) -> bool:
        """``geventq stop``: stop a job running here; True if it was. A job that is not
        running here (yet: claimed, but not handed to its executor) is remembered for a
        while, and ends ``stopped`` when it gets here."""
        with self._stops_lock:
            for lane in self.lanes:
                if lane.executor.stop_job(job_id):
                    return True
            self.early_stops.remember(job_id)
        return False

    def request_stop(self, cold: bool = False) -> None:
        """Warm stop (running jobs finish), or cold (they are interrupted and put back)."""
        self.stopping.set()
        if cold:
            self.cold = True
        self.slot_free.set()

    def on_signal(self, signum: int) -> None:
        """SIGTERM/SIGINT once: warm stop; twice: cold."""
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            logger.info("worker %s got %s: warm shutdown, %d job(s) running", self.worker.name,
                        name, self.running())
            self.request_stop()
            return
        logger.warning("worker %s got %s again: cold shutdown", self.worker.name, name)
        self.request_stop(cold=True)
        for lane in self.lanes:  # an inline job is interrupted here, from the handler
            lane.executor.interrupt()

    def drain(self) -> None:
        """Let running jobs finish (up to the grace period), then put the rest back."""
        grace = self.worker.shutdown_grace
        if self.running() and not self.cold:
            logger.info("waiting up to %s s for %d running job(s)", grace, self.running())
            deadline = time.monotonic() + grace
            while not self.cold and time.monotonic() < deadline:
                self.slot_free.clear()  # before looking: a job ending from here on wakes us
                if not self.running():
                    break
                self.slot_free.wait(min(0.5, max(0.0, deadline - time.monotonic())))
        if self.running():
            logger.warning("cold shutdown: putting %d running job(s) back", self.running())
            for lane in self.lanes:
                lane.executor.stop(cold=True)
        self.finisher.flush()
