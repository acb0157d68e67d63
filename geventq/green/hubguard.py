"""The hub guard: find the jobs that block the gevent hub, and stop a worker they wedge.

A job that computes without yielding stalls every greenlet of its worker, and
its ``gevent.Timeout`` cannot fire until it yields. The guard uses gevent's
monitor thread (a native thread that checks every ``max_blocking_time``
seconds whether the hub has run, and publishes ``EventLoopBlocked`` naming the
greenlet that held it). For each such event the guard, in that thread:

- maps the greenlet to the job it runs and logs a WARNING naming the job and
  its function, saying to run that function's queue as a fork queue;
- records it: the job's hash field ``hub_blocked`` (seconds in all) and the
  worker's counter ``hub_blocked`` (one per blocking episode, shown by
  ``geventq info``);
- when the blocking job is past its timeout by more than ``max_blocking_time``
  (so its Timeout could not fire), stops the worker: it fails that job with
  ``JobTimeoutException`` and the reason, puts the worker's other in-flight
  jobs back on their queues, writes the endings the worker had not written
  yet, forgets the worker, and ends the process with ``EXIT_HUB_BLOCKED`` (4);
  the launcher starts a fresh worker.

Why stop the process rather than raise into the job: ``signal.pthread_kill`` of
the main thread with a Python signal handler can raise into a Python loop, but
not into a long C call (the case where it matters most); it can land in any
greenlet at any bytecode, in the middle of a Redis command on a shared
connection, in a ``finally`` block, or be swallowed by the job's own ``except
BaseException``. Whatever state survived would be suspect. Ending the process
is certain; everything the guard writes goes through its own Redis connection
from the monitor thread, never touching the stuck hub. Exception handlers and
``on_failure`` callbacks of the stopped job do not run (they are user code that
would need the hub). The real fix is a fork queue, which the warning says.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import redis

from .. import lifecycle, scripts
from ..connection import clone_connection
from ..defaults import EXIT_HUB_BLOCKED
from ..endings import Ending
from ..execution import time_limit
from ..recording import record_endings
from ..utils import as_str

if TYPE_CHECKING:
    from ..worker.finisher import BatchFinisher
    from ..worker.forkpool import ForkPool
    from .executor import GreenletExecutor

logger = logging.getLogger("geventq.worker")


class HubGuard:
    """Subscribes to gevent's ``EventLoopBlocked`` for one worker's hub."""

    def __init__(self, worker: Any, executor: GreenletExecutor, finisher: BatchFinisher,
                 forks: ForkPool | None, max_blocking_time: float):
        if not isinstance(max_blocking_time, (int, float)) or max_blocking_time <= 0:
            raise ValueError(f"max_blocking_time must be a positive number of seconds, "
                             f"got {max_blocking_time!r}")
        self.worker = worker
        self.executor = executor  # whose running() maps the blocking greenlet to its job
        self.finisher = finisher  # whose pending() endings are written before the exit
        self.forks = forks  # whose children are killed before the exit
        self.max_blocking_time = float(max_blocking_time)
        self._pid = os.getpid()
        self._hub: Any = None
        self._started_monitor = False
        self._connection: redis.Redis | None = None
        self._episode: dict[str, Any] | None = None  # the greenlet blocking now, and since when
        self._blocked: dict[str, float] = {}  # job id -> seconds it blocked the hub in all
        self._stopping = False

    # -- in the main thread ------------------------------------------------
    def start(self) -> None:
        """Start the monitor thread of the current (main) hub and subscribe."""
        import gevent
        from gevent import events

        self._hub = gevent.get_hub()
        gevent.config.max_blocking_time = self.max_blocking_time
        if self._hub.periodic_monitoring_thread is None:
            gevent.config.print_blocking_reports = False  # our warning says it better
            # monitor_thread is on only while this hub's thread starts: hubs made later
            # (the heartbeat thread's, a fork child's) get no monitor of their own
            gevent.config.monitor_thread = True
            try:
                self._hub.start_periodic_monitoring_thread()
                self._started_monitor = True
            finally:
                gevent.config.monitor_thread = False
        if self._on_event not in events.subscribers:
            events.subscribers.append(self._on_event)

    def stop(self) -> None:
        from gevent import events

        with contextlib.suppress(ValueError):
            events.subscribers.remove(self._on_event)
        monitor = self._hub.periodic_monitoring_thread if self._hub is not None else None
        if self._started_monitor and monitor is not None:
            monitor.kill()
            self._hub.periodic_monitoring_thread = None

    # -- in gevent's monitor thread ------------------------------------------
    def _on_event(self, event: Any) -> None:
        from gevent.events import EventLoopBlocked

        if not isinstance(event, EventLoopBlocked) or event.hub is not self._hub \
                or os.getpid() != self._pid or self._stopping:
            return
        try:
            self.blocked(event.greenlet, time.time(), event.info)
        except Exception:  # an exception here would end gevent's monitor thread
            logger.exception("the hub guard failed handling a blocked hub")

    def blocked(self, greenlet: Any, moment: float, info: Any = None) -> None:
        """Handle one report that ``greenlet`` has held the hub for ``max_blocking_time``."""
        episode = self._episode
        new = not (episode and episode["greenlet"] is greenlet
                   and moment - episode["seen"] <= 2.5 * self.max_blocking_time)
        if new:
            episode = self._episode = {"greenlet": greenlet, "since": moment - self.max_blocking_time}
        assert episode is not None
        episode["seen"] = moment
        seconds = moment - episode["since"]
        job = self._job_of(greenlet)
        if job is None:
            if new:
                logger.warning("the gevent hub of worker %s has been blocked for more than %.1f s by "
                               "%r (not a job)", self.worker.name, seconds, greenlet)
            return
        if new:
            episode["before"] = self._blocked.get(job.id, 0.0)
            self._forget_ended_jobs()
        total = self._blocked[job.id] = episode["before"] + seconds
        log = logger.warning if new else logger.debug
        log("job %s %s has blocked the gevent hub for more than %.1f s without yielding: every other job "
            "of worker %s waits meanwhile, and its timeout cannot fire. Run %s on a fork queue "
            "(--fork-queue %s, or move the function to a queue of its own and fork that)%s",
            job.id, job.func_name, seconds, self.worker.name, job.func_name, job.origin,
            _where(info))
        self._record(job.id, total, new)
        if self._overran(job, moment):
            self._stop_worker(job, seconds, total)

    def _job_of(self, greenlet: Any) -> Any:
        return self.executor.job_of(greenlet)

    def _forget_ended_jobs(self) -> None:
        running = self.executor.running()
        for job_id in [i for i in self._blocked if i not in running]:
            del self._blocked[job_id]

    def _overran(self, job: Any, moment: float) -> bool:
        limit = time_limit(job.timeout)
        if limit is None:
            return False
        if job.started_at:
            started = job.started_at.timestamp()
        else:
            started = self._episode["since"] if self._episode else moment
        return moment > started + limit + self.max_blocking_time

    def _redis(self) -> redis.Redis:
        if self._connection is None:  # this thread's own: the main thread's pool is in use
            self._connection = clone_connection(self.worker.connection)
        return self._connection

    def _record(self, job_id: str, total: float, new: bool) -> None:
        try:
            scripts.call(self._redis(), "hub_blocked",
                         [self.worker.keys.job(job_id), self.worker.key,
                          self.worker.keys.metrics_totals],
                         [f"{total:.1f}", 1 if new else 0])
        except redis.RedisError as exc:
            logger.warning("could not record the blocked hub in Redis: %s", exc)

    def _stop_worker(self, job: Any, seconds: float, total: float) -> None:
        """Fail the job, put the others back, end the process. Never returns."""
        self._stopping = True
        worker = self.worker
        reason = (f"job {job.id} ({job.func_name}) blocked the gevent hub past its timeout of "
                  f"{job.timeout} s ({seconds:.1f} s without yielding), so the timeout could not "
                  f"fire; worker {worker.name} was stopped. Run {job.func_name} on a fork queue "
                  f"(--fork-queue {job.origin})")
        logger.critical("%s. Stopping the worker; its other jobs go back on their queues.", reason)
        try:
            if self.forks is not None:
                self.forks.kill_all()  # their jobs are put back below: they must not run on
            self._settle(job, reason, total)
        except Exception:
            logger.exception("could not settle the jobs of worker %s; the other workers will "
                             "recover them when its heartbeat lapses", worker.name)
        finally:
            for handler in logging.getLogger().handlers + logger.handlers:
                with contextlib.suppress(Exception):
                    handler.flush()
            os._exit(EXIT_HUB_BLOCKED)

    def _settle(self, job: Any, reason: str, total: float) -> None:
        worker, conn = self.worker, self._redis()
        in_flight = {as_str(i) for i in conn.smembers(worker.keys.worker_jobs(worker.name))}
        # endings the finisher had not written yet (those it had are out of the set)
        endings = [e for e in self.finisher.pending()
                   if e.job.id in in_flight and e.job.id != job.id]
        started = job.started_at.timestamp() if job.started_at else time.time()
        endings.append(Ending(job, "failed", f"geventq.exceptions.JobTimeoutException: {reason}\n",
                              extra={"duration": f"{time.time() - started:.6f}",
                                     "hub_blocked": f"{total:.1f}"}))
        ok = sum(1 for e in endings if e.outcome == "finished")
        # an ending no script accepts fails its job alone (see geventq.recording)
        record_endings(conn, worker.keys, worker.name, endings, extra_commands=[
            ("HINCRBY", worker.key, "successful", ok),
            ("HINCRBY", worker.key, "failed", len(endings) - ok)])
        ended = {e.job.id for e in endings}
        back = 0
        pipe = conn.pipeline(transaction=False)
        others = sorted(in_flight - ended)
        for job_id in others:
            pipe.hget(worker.keys.job(job_id), "origin")
        for job_id, origin in zip(others, pipe.execute()):
            outcome = lifecycle.give_back(
                conn, worker.keys, worker.name, job_id, as_str(origin) or "",
                f"worker stopped: {reason}; this job had already been requeued "
                f"{worker.max_abandoned_requeues} time(s)",
                max_requeues=worker.max_abandoned_requeues)
            back += outcome == "queued"
        pipe = conn.pipeline(transaction=True)
        lifecycle.forget_worker(pipe, worker.keys, worker.name)
        pipe.execute()
        logger.critical("worker %s stopped: job %s failed, %d other job(s) put back on their "
                        "queues, %d ending(s) written", worker.name, job.id, back, len(endings) - 1)


def _where(info: Any) -> str:
    """' (at File "...", line N, in f)': the innermost frame of gevent's "Blocked Stack"."""
    frame = ""
    in_stack = False
    for line in info or ():
        if not isinstance(line, str):
            continue
        for part in line.splitlines():
            if part.startswith("Blocked Stack"):
                in_stack = True
            elif in_stack and (not part.strip() or part.startswith("Info:")):
                return f" (at {frame})" if frame else ""
            elif in_stack and part.strip().startswith("File "):
                frame = part.strip()
    return f" (at {frame})" if frame else ""
