"""``GeventWorker``: hundreds of jobs at once in one process, on greenlets.

One main greenlet claims jobs in batches (never more than there are free
slots) and spawns a greenlet per job under a ``gevent.Timeout``; a finisher
greenlet writes the endings of many jobs in one pipeline. The Redis work per
job is therefore a fraction of a round trip when the worker is busy. An idle
worker blocks on the queues' wake tokens (BLPOP): no polling, and a new job
is picked up as soon as it is enqueued.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from typing import Any

import gevent
import redis
from gevent.event import Event

from .. import lifecycle, scripts, setting_rules
from ..defaults import DEFAULT_CONCURRENCY, DEFAULT_MAX_BLOCKING_TIME
from ..exceptions import ShutdownRequested
from ..execution import execute
from ..job import Job
from ..lifecycle import Ending
from ..recording import RETRY_CAP
from ..redis_errors import describe, is_transient
from ..scheduler import scheduler_for_worker
from ..utils import as_str, backoff_delay
from ..worker.base import Worker, WorkerState
from ..worker.recovery import DeadWorkerRecovery, lost_claims
from .finisher import BUNCH, GATHER, EndingsWriter
from .forking import ForkPool, fork_settings
from .hubguard import HubGuard
from .shutdown import Shutdown
from .stopping import StopListener
from .timeouts import gevent_death_penalty

logger = logging.getLogger("geventq.worker")

_IDLE_BLOCK = 1.0  # seconds an idle worker blocks on the wake tokens per call
# A busy worker claims and writes endings in bunches: each claim or write costs round
# trips whatever its size. Claims take at most _CLAIM_MAX jobs, so that the first of a
# bunch start while the next are claimed; while jobs run, fewer than BUNCH free slots
# (or endings) wait up to GATHER seconds for more. An idle worker never waits.
_CLAIM_MAX = 50
_SUSPEND_CHECK = 1.0  # seconds between looks at the suspend flag


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


class GeventWorker(EndingsWriter, StopListener, Shutdown, Worker):
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
        # geventq.green.forking). Within a lane, queues keep their priority order.
        self.mode, self.fork_queue_names, self.fork_concurrency = fork_settings(
            mode, fork_queues, fork_concurrency, self.queue_names)
        self._green_queue_names = [q for q in self.queue_names if q not in self.fork_queue_names]
        self._queue_of_wake = {self.keys.wake(name): name for name in self.queue_names}
        self._forks = ForkPool(self, self.fork_queue_names, self.fork_concurrency) \
            if self.fork_queue_names else None
        self._fork_running = 0
        self._lane_waiter: gevent.Greenlet | None = None
        self._guard = HubGuard(self, max_blocking_time) \
            if self._green_queue_names and max_blocking_time else None
        # a scheduler candidate on a greenlet when with_scheduler (PERIODIC is validated anyway)
        self.scheduler = scheduler_for_worker(self, with_scheduler, periodic, scheduler_lock_ttl)
        self._running: dict[str, gevent.Greenlet] = {}
        self._stop_requests: set[str] = set()  # ids of running jobs that geventq stop named
        self._in_stop_region: dict[str, gevent.Greenlet] = {}  # see stop_region
        self._endings: list[Ending] = []
        self._endings_ready = Event()
        self._flushing = False
        self._slot_free = Event()
        self._stopping = Event()  # warm shutdown asked
        self._cold = False
        self._suspended = False
        self._suspend_checked = 0.0
        self._claimed = 0
        self._signals = 0
        self._redis_failures = 0
        self._recovery: DeadWorkerRecovery | None = None
        self._background: list[gevent.Greenlet] = []
        self._writing: list[Ending] = []  # the endings the finisher is writing now
        self._unstarted: list[tuple[str, str]] = []  # claimed; their start failed
        self._next_self_check = 0.0
        # connections kept by the claim loop and the finisher (see scripts.Channel)
        self._channels = (scripts.Channel(self.connection), scripts.Channel(self.connection))
        # per lane (its queue names): the jobs its next claim should take, started in the
        # claim's round trip (the job a wake token named, or those the last claim peeked at)
        self._candidates: dict[tuple[str, ...], list[tuple[str, str]]] = {}
        self._drained: set[tuple[str, ...]] = set()  # lanes whose last claim emptied them

    # -- the main loop -------------------------------------------------------
    def work(self, burst: bool = False, max_jobs: int | None = None) -> bool:
        """Run jobs until stopped (or, in burst mode, until the queues are empty).

        Returns True when at least one job was run.
        """
        self.register(concurrency=self.concurrency, mode=self.mode,
                      fork_queues=",".join(self.fork_queue_names) or None,
                      fork_concurrency=self.fork_concurrency if self._forks else None)
        self._start_background()
        try:
            self._loop(burst, max_jobs)
            self._drain()
        finally:
            self._stop_background()
            self.unregister()
        return self._claimed > 0

    def _loop(self, burst: bool, max_jobs: int | None) -> None:
        wake_keys = {name: self.keys.wake(name) for name in self.queue_names}
        gathered = False
        _tune_gc()
        while not self._stopping.is_set():
            if max_jobs is not None and self._claimed >= max_jobs:
                return
            if self._check_suspended():
                self._stopping.wait(_SUSPEND_CHECK)
                continue
            self._check_lost_claims()
            lanes, full = self._free_lanes()
            if not lanes:
                self._slot_free.clear()
                self._slot_free.wait()
                gevent.sleep(0)  # let the other jobs ending in this loop turn free their slots
                continue
            if self._running and not gathered and sum(free for _, free in lanes) < BUNCH:
                gathered = True  # busy: let more slots come free, once, before claiming
                self._stopping.wait(GATHER)
                continue
            gathered = False
            if full:
                self._slot_free.clear()  # from now on, a slot of the full lane coming free counts
            if self._claim_lanes(lanes, max_jobs) and (burst or not self._drained.issuperset(
                    tuple(names) for names, _ in lanes)):
                continue  # more may be queued: claim again (an emptied queue lost its wake token,
                          # so a waiting worker goes straight to its BLPOP instead)
            if burst:
                if not self._running and not self._endings and not self._flushing:
                    return
                self._slot_free.clear()
                self._slot_free.wait(0.05)  # a finishing job may release dependents
            else:
                self._wait_for_work([wake_keys[name] for names, _ in lanes for name in names],
                                    or_slot_free=full)

    def _free_lanes(self) -> tuple[list[tuple[list[str], int]], bool]:
        """([(queue names, free slots)] of the lanes with room, whether a lane is full)."""
        green = self.concurrency - len(self._running) + self._fork_running
        lanes = [(self._green_queue_names, green), (self.fork_queue_names,
                                                   self.fork_concurrency - self._fork_running)]
        lanes = [(names, free) for names, free in lanes if names]
        return [lane for lane in lanes if lane[1] > 0], any(free <= 0 for _, free in lanes)

    def _lane_size(self, queue_names: list[str]) -> int:
        return self.fork_concurrency if queue_names == self.fork_queue_names \
            else self.concurrency

    def _claim_lanes(self, lanes: list[tuple[list[str], int]], max_jobs: int | None) -> int:
        claimed = 0
        for names, free in lanes:
            if max_jobs is not None:
                free = min(free, max_jobs - self._claimed)
            if free > 0:
                claimed += self._claim(min(free, _CLAIM_MAX), names)
        return claimed

    def _claim(self, count: int, queue_names: list[str] | None = None) -> int:
        """Claim and start up to ``count`` jobs; returns how many were claimed."""
        claimed: list[tuple[str, str]] = []
        names = queue_names or self.queue_names
        lane = tuple(names)
        candidates = self._candidates.pop(lane, [])[:count]
        try:
            if not self._unstarted:
                # the jobs this claim should take (a wake token's, or those the previous
                # claim peeked at) start in its round trip: one round trip per claim
                result = lifecycle.claim_and_start(
                    self.connection, self.keys, names, self.name, count, candidates,
                    peek=min(_CLAIM_MAX, self._lane_size(names)), job_class=self.job_class,
                    serializer=self.serializer,
                    channel=self._channels[0])
                claimed, jobs = result.claimed, result.jobs
                self._candidates[lane] = result.peeked
                if len(claimed) < count and not result.peeked:
                    self._drained.add(lane)
                else:
                    self._drained.discard(lane)
                if not claimed and not jobs:
                    return 0
            else:
                claimed = self._unstarted
                jobs = lifecycle.start(self.connection, self.keys, self.name, claimed,
                                       job_class=self.job_class, serializer=self.serializer,
                                       channel=self._channels[0])
        except Exception as exc:  # not only Redis errors: what Redis holds is not trusted
            # started on the next turn, not left in limbo; after an error retrying cannot
            # fix, the self-check finds (and starts, or drops) what the claim took
            self._unstarted = claimed if is_transient(exc) else []
            self._next_self_check = 0.0  # a claim's reply may have been lost
            self._backoff("claiming jobs", exc)
            return 0
        self._unstarted = []
        self._redis_failures = 0
        taken = len(claimed) or len(jobs)  # (a named job may have been claimed before)
        self._claimed += taken
        self._spawn(jobs)
        if len(jobs) < BUNCH:  # a few jobs (an idle worker's): they start now, not after
            gevent.sleep(0)     # this loop's next round trip (a bunch runs during it)
            if self._endings:
                gevent.sleep(0)  # and the finisher sends those already done before it, too
        return taken

    def _check_lost_claims(self) -> None:
        """Now and then, and after a Redis error: run claimed jobs this worker lost track of."""
        if time.monotonic() < self._next_self_check:
            return
        self._next_self_check = time.monotonic() + self.heartbeat_interval
        held = set(self._running) | {e.job.id for e in self._endings + self._writing} | {
            job_id for _, job_id in self._unstarted}
        try:
            lost = lost_claims(self.connection, self.keys, self.name, held)
            jobs = lifecycle.start(self.connection, self.keys, self.name, lost,
                                   job_class=self.job_class, serializer=self.serializer)
        except Exception as exc:
            self._next_self_check = 0.0
            self._backoff("checking its in-flight jobs", exc)
            return
        self._spawn(jobs)

    def _spawn(self, jobs: list[Job]) -> None:
        debug = logger.isEnabledFor(logging.DEBUG)
        for job in jobs:
            self._fork_running += self._is_fork_job(job)
            self._running[job.id] = gevent.spawn(self._run_job, job)
            if debug:
                logger.debug("job %s %s started", job.id, job.func_name)

    def _wait_for_work(self, wake_keys: list[str], or_slot_free: bool = False) -> None:
        if or_slot_free:
            # a lane is full: its next free slot must end the wait as a wake token does, so the
            # BLPOP goes on in a greenlet of its own (a later wait picks it up again)
            if self._lane_waiter is None or self._lane_waiter.ready():
                self._lane_waiter = gevent.spawn(self._wait_for_work, wake_keys)
            gevent.wait([self._lane_waiter, self._slot_free], count=1)
            return
        try:
            if gevent.getcurrent() is self._lane_waiter:
                token = self.connection.blpop(wake_keys, timeout=_IDLE_BLOCK)
            else:  # the claim loop's own connection: nothing else uses it while it waits
                token = scripts.send(self._channels[0], [("BLPOP", *wake_keys, _IDLE_BLOCK)])[0]
                if isinstance(token, Exception):
                    raise token
            self._redis_failures = 0
            if token is not None and token[1] != b"1":  # enqueue named a job: start it with the claim
                queue_name = self._queue_of_wake[as_str(token[0])]
                lane = self._green_queue_names if queue_name in self._green_queue_names \
                    else self.fork_queue_names
                self._candidates[tuple(lane)] = [(queue_name, as_str(token[1]))]
        except Exception as exc:
            self._next_self_check = 0.0
            self._backoff("waiting for jobs", exc)

    def _backoff(self, what: str, exc: Exception) -> None:
        """Wait before the next try: a transient error is retried with back-off; any
        other (a bug, or data no script accepts) is logged as an error and the worker
        goes on, never in a busy loop."""
        self._redis_failures += 1
        delay = backoff_delay(self._redis_failures, cap=RETRY_CAP)
        if is_transient(exc):
            logger.warning("Redis unavailable while %s (%s); retrying in %.1f s", what,
                           describe(exc), delay)
        else:
            logger.error("error while %s (%s); going on in %.1f s", what, describe(exc), delay,
                         exc_info=not isinstance(exc, redis.RedisError))
        self._stopping.wait(delay)

    def _check_suspended(self) -> bool:
        moment = time.monotonic()
        if moment - self._suspend_checked >= _SUSPEND_CHECK:
            self._suspend_checked = moment
            try:
                suspended = self.is_suspended()
            except redis.RedisError:
                return self._suspended
            if suspended != self._suspended:
                self._suspended = suspended
                try:
                    self.set_state(WorkerState.SUSPENDED if suspended else WorkerState.IDLE)
                except redis.ConnectionError:
                    pass  # the heartbeat writes it too (set_state passed it on)
                logger.info("worker %s %s", self.name, "suspended" if suspended else "resumed")
        return self._suspended

    # -- one job ---------------------------------------------------------------
    def _run_job(self, job: Job) -> None:
        ending = None
        fork = self._is_fork_job(job)
        try:
            if fork:
                ending = self._forks.run(job)  # type: ignore[union-attr]
            else:
                ending = execute(job, self.death_penalty, self.exception_handlers,
                                 self.default_result_ttl, stop_region=self.stop_region,
                                 job_modules=self.job_modules)
        except (ShutdownRequested, gevent.GreenletExit):
            self._return_to_queue(job)
        finally:
            self._stop_requests.discard(job.id)
            # a job leaves _running only once its ending is queued for writing (or it is
            # back on its queue): the self-check must always find it in one of the two
            if ending is not None:
                self._endings.append(ending)
                self._endings_ready.set()
            del self._running[job.id]
            self._fork_running -= fork
            self._slot_free.set()

    def _is_fork_job(self, job: Job) -> bool:
        return self._forks is not None and job.origin in self._forks.queues

    # -- background greenlets and threads ----------------------------------------
    def _start_background(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):  # first: the worker is registered already
            gevent.signal_handler(signum, self._on_signal, signum)
        if self._guard is not None:  # before the threads: none may start a hub meanwhile
            self._guard.start()
        self._recovery = DeadWorkerRecovery(self.connection, self.keys, self.name, self.heartbeat_interval,
                                            self.max_abandoned_requeues)
        self._recovery.start()
        self._background = [gevent.spawn(self._finisher), gevent.spawn(self._listen_for_stops)]
        if self.scheduler is not None:
            self._background.append(gevent.spawn(self.scheduler.run, self._stopping.wait))

    def _stop_background(self) -> None:
        if self._lane_waiter is not None:
            self._lane_waiter.kill(block=False)
        if self._forks is not None:
            self._forks.close()
        if self._guard is not None:
            self._guard.stop()
        if self._recovery:
            self._recovery.stop()
        gevent.killall(self._background, block=True, timeout=2)
        for channel in self._channels:
            channel.close()
