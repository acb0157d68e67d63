"""``SimpleWorker``: one job at a time, in the worker's own process.

For tests and debugging. Timeouts use SIGALRM, so it must run in the main
thread. It shares claiming, ending and shutdown rules with every worker.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Iterator
from typing import Any

import redis

from .. import lifecycle
from ..exceptions import JobTimeoutException, ShutdownRequested
from ..execution import execute, time_limit
from ..job import Job
from ..recording import RETRY_CAP, record_until_taken
from ..redis_errors import describe, is_transient
from ..utils import backoff_delay
from .base import Worker, WorkerState
from .joblog import log_endings
from .recovery import DeadWorkerRecovery, lost_claims

logger = logging.getLogger("geventq.worker")


@contextlib.contextmanager
def alarm_death_penalty(job: Job) -> Iterator[None]:
    """Raise JobTimeoutException in the main thread when the job's time is up."""
    limit = time_limit(job.timeout)
    if limit is None:
        yield
        return

    def on_alarm(signum, frame):
        raise JobTimeoutException(f"job {job.id} ({job.func_name}) exceeded its timeout of "
                                  f"{job.timeout} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class SimpleWorker(Worker):
    """Runs one job at a time in its own process."""

    death_penalty = staticmethod(alarm_death_penalty)

    def __init__(self, queues: Any = ("default",), **kwargs: Any) -> None:
        super().__init__(queues, **kwargs)
        self._stop_requested = 0
        self._current: Job | None = None
        self._jobs_run = 0
        self._redis_failures = 0
        self._next_self_check = 0.0
        self._next_up: list[tuple[str, str]] = []  # what the last claim peeked at
        self._suspended = False

    def _check_suspended(self) -> bool:
        suspended = self.is_suspended()
        if suspended != self._suspended:
            self._suspended = suspended
            self.set_state(WorkerState.SUSPENDED if suspended else WorkerState.IDLE)
        return suspended

    def request_stop(self, cold: bool = False) -> None:
        self._stop_requested = 2 if cold else max(self._stop_requested, 1)

    def work(self, burst: bool = False, max_jobs: int | None = None) -> bool:
        """Run jobs one by one until stopped (or until the queues are empty in burst mode)."""
        self.register(concurrency=1, mode="simple")
        recovery = DeadWorkerRecovery(self.connection, self.keys, self.name, self.heartbeat_interval,
                                      self.max_abandoned_requeues)
        recovery.start()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        wake_keys = [self.keys.wake(name) for name in self.queue_names]
        try:
            while not self._stop_requested:
                if max_jobs is not None and self._jobs_run >= max_jobs:
                    break
                try:
                    if not self._work_once(burst, wake_keys):
                        break
                    self._redis_failures = 0
                except Exception as exc:  # never a crash, never a busy loop
                    self._next_self_check = 0.0  # a claim's reply may have been lost
                    self._backoff("taking a job", exc)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            recovery.stop()
            self.unregister()
        return self._jobs_run > 0

    def _work_once(self, burst: bool, wake_keys: list[str]) -> bool:
        """Take and run one job (or wait for one); False when a burst is done."""
        if self._check_suspended():
            time.sleep(1)
            return True
        claimed: list[tuple[str, str]] = []
        if time.monotonic() >= self._next_self_check:
            # between jobs this worker holds nothing: whatever is in flight was lost
            lost = lost_claims(self.connection, self.keys, self.name, ())
            claimed = lost[:1]  # one at a time; look again at once while more are left
            self._next_self_check = 0.0 if len(lost) > 1 else \
                time.monotonic() + self.heartbeat_interval
        if claimed:
            jobs = lifecycle.start(self.connection, self.keys, self.name, claimed,
                                   job_class=self.job_class, serializer=self.serializer)
        else:
            # the job the last claim peeked at starts with this claim: one round trip
            result = lifecycle.claim_and_start(
                self.connection, self.keys, self.queue_names, self.name, 1, self._next_up,
                peek=1, job_class=self.job_class, serializer=self.serializer)
            claimed, jobs, self._next_up = result.claimed, result.jobs, result.peeked
        if not claimed:
            if burst:
                return False
            self.connection.blpop(wake_keys, timeout=1)
            return True
        for job in jobs:
            self._perform(job)
        self._jobs_run += 1
        return True

    def _backoff(self, what: str, exc: Exception) -> None:
        self._redis_failures += 1
        delay = backoff_delay(self._redis_failures, cap=RETRY_CAP)
        if is_transient(exc):
            logger.warning("Redis unavailable while %s (%s); retrying in %.1f s", what,
                           describe(exc), delay)
        else:  # a bug, or data no script accepts: logged, and the worker goes on
            logger.error("error while %s (%s); going on in %.1f s", what, describe(exc), delay,
                         exc_info=not isinstance(exc, redis.RedisError))
        end = time.monotonic() + delay
        while time.monotonic() < end and not self._stop_requested:
            time.sleep(min(0.1, end - time.monotonic()))

    def _perform(self, job: Job) -> None:
        self._current = job
        try:
            ending = execute(job, self.death_penalty, self.exception_handlers,
                             self.default_result_ttl, job_modules=self.job_modules)
        except ShutdownRequested:
            # on a Redis error the job stays in the in-flight set: unregister puts it back
            lifecycle.give_back(self.connection, self.keys, self.name, job.id, job.origin,
                                f"shutdown: worker {self.name} stopped while the job ran",
                                max_requeues=self.max_abandoned_requeues)
            return
        finally:
            self._current = None
        ok = ending.outcome == "finished"
        # the result is kept: retried until Redis takes it; an ending no retry can write
        # fails this job alone (see geventq.recording)
        record_until_taken(self.connection, self.keys, self.name, [ending], extra_commands=[
            ("HINCRBY", self.key, "successful" if ok else "failed", 1),
            ("HINCRBYFLOAT", self.key, "working_time", ending.extra.get("duration", "0"))],
            sleep=time.sleep)
        log_endings([ending])

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_requested += 1
        if self._stop_requested >= 2 and self._current is not None:
            raise ShutdownRequested(f"cold shutdown of worker {self.name}")
        logger.info("worker %s: %s shutdown", self.name,
                    "cold" if self._stop_requested >= 2 else "warm")
