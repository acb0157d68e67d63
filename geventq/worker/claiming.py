"""Claiming: how the worker loop takes jobs from Redis and waits for them.

The :class:`Claimer` keeps what one claim leaves for the next, per lane: the jobs
the next claim should start in its own round trip (the job a wake token named, or
those the last claim peeked at), whether the last claim emptied the lane's queues,
jobs claimed whose start failed, and when jobs that a limit holds back may start.
An idle worker waits in :meth:`Claimer.wait_for_work`, blocked on its lanes' wake
tokens (BLPOP). :class:`Backoff` paces retries after errors, for the claimer and
the loop alike. The loop itself (:mod:`geventq.worker.loop`) decides when to claim.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from .. import lifecycle, scripts
from ..job import Job
from ..recording import RETRY_CAP
from ..redis_errors import describe, is_transient
from ..utils import as_str, backoff_delay
from .base import Worker
from .executors import Executor, Runtime
from .tuning import CLAIM_MAX, IDLE_BLOCK

logger = logging.getLogger("geventq.worker")


@dataclass
class Lane:
    """Queues (in priority order) whose jobs one executor runs."""

    queue_names: list[str]
    executor: Executor

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(self.queue_names)


class Backoff:
    """Waits before the next try after an error, longer with each error in a row; a
    stop (``stopping`` set) ends the wait."""

    def __init__(self, stopping: Any) -> None:
        self.stopping = stopping
        self.failures = 0  # errors in a row

    def succeeded(self) -> None:
        self.failures = 0

    def failed(self, what: str, exc: Exception) -> None:
        """A transient error is retried with back-off; any other (a bug, or data no script
        accepts) is logged as an error and the worker goes on, never in a busy loop."""
        self.failures += 1
        delay = backoff_delay(self.failures, cap=RETRY_CAP)
        if is_transient(exc):
            logger.warning("Redis unavailable while %s (%s); retrying in %.1f s", what,
                           describe(exc), delay)
        else:
            logger.error("error while %s (%s); going on in %.1f s", what, describe(exc), delay,
                         exc_info=not isinstance(exc, redis.RedisError))
        self.stopping.wait(delay)


class Claimer:
    """Claims and starts the jobs of a worker's lanes; waits for work when there is none.

    ``on_error(what, exc)`` is told of every error (the loop backs off and checks its
    in-flight set: a claim's reply may have been lost).
    """

    def __init__(self, worker: Worker, runtime: Runtime, backoff: Backoff,
                 on_error: Callable[[str, Exception], None]) -> None:
        self.worker = worker
        self.runtime = runtime
        self.backoff = backoff
        self.on_error = on_error
        self.unstarted: list[tuple[str, str]] = []  # claimed; their start failed
        self.retry_in: float | None = None  # jobs a limit holds back may start then (limits)
        self._candidates: dict[tuple[str, ...], list[tuple[str, str]]] = {}
        self._drained: set[tuple[str, ...]] = set()  # lanes whose last claim emptied them
        self._lane_waiter: Any = None
        self._channel = scripts.Channel(worker.connection)  # the claim loop's connection
        self._wake: dict[str, str] = {}  # wake key -> queue name
        self._lane_keys: dict[str, tuple[str, ...]] = {}  # queue name -> its lane's key

    def add_lane(self, lane: Lane) -> None:
        for name in lane.queue_names:
            self._wake[self.worker.keys.wake(name)] = name
            self._lane_keys.setdefault(name, lane.key)

    def drained(self, lanes: list[Lane]) -> bool:
        """Whether the last claim of each of ``lanes`` emptied its queues."""
        return self._drained.issuperset(lane.key for lane in lanes)

    def claim(self, lane: Lane, count: int) -> tuple[int, list[Job]]:
        """Claim and start up to ``count`` jobs of ``lane``: (how many were claimed, the
        started jobs). An error is passed to ``on_error`` and claims nothing."""
        worker = self.worker
        claimed: list[tuple[str, str]] = []
        candidates = self._candidates.pop(lane.key, [])[:count]
        try:
            if self.unstarted:
                claimed = self.unstarted
                jobs = lifecycle.start(worker.connection, worker.keys, worker.name, claimed,
                                       job_class=worker.job_class, serializer=worker.serializer,
                                       channel=self._channel)
            else:
                # the jobs this claim should take start in its round trip
                result = lifecycle.claim_and_start(
                    worker.connection, worker.keys, lane.queue_names, worker.name, count,
                    candidates, peek=min(CLAIM_MAX, lane.executor.size),
                    job_class=worker.job_class, serializer=worker.serializer,
                    channel=self._channel)
                claimed, jobs = result.claimed, result.jobs
                self._candidates[lane.key] = result.peeked
                self.retry_in = result.retry_in
                if len(claimed) < count and not result.peeked:
                    self._drained.add(lane.key)
                else:
                    self._drained.discard(lane.key)
                if not claimed and not jobs:
                    return 0, []
        except Exception as exc:  # not only Redis errors: what Redis holds is not trusted
            # started on the next turn, not left in limbo; after an error retrying cannot
            # fix, the self-check finds (and starts, or drops) what the claim took
            self.unstarted = claimed if is_transient(exc) else []
            self.on_error("claiming jobs", exc)
            return 0, []
        self.unstarted = []
        self.backoff.succeeded()
        return len(claimed) or len(jobs), jobs  # (a named job may have been claimed before)

    def idle_block(self) -> float:
        """Seconds an idle wait may last: IDLE_BLOCK, or less when jobs that a limit holds
        back may start sooner (the last claim said when: geventq.limits)."""
        if self.retry_in is None:
            return IDLE_BLOCK
        return min(max(self.retry_in, 0.001), IDLE_BLOCK)

    def wait_for_work(self, wake_keys: list[str], slot_free: Any = None) -> None:
        """Block until a wake token of ``wake_keys`` comes (or ``idle_block()`` passes);
        with ``slot_free`` (an event: a lane is full), also until it is set."""
        if slot_free is not None:
            # a lane is full: its next free slot must end the wait as a wake token does, so
            # the BLPOP goes on in a task of its own (a later wait picks it up again)
            if self._lane_waiter is None or self.runtime.done(self._lane_waiter):
                self._lane_waiter = self.runtime.spawn(self.wait_for_work, wake_keys)
            self.runtime.wait_any(self._lane_waiter, slot_free)
            return
        try:
            if self.runtime.current() is self._lane_waiter:
                token = self.worker.connection.blpop(wake_keys, timeout=self.idle_block())
            else:  # the claim loop's own connection: nothing else uses it while it waits
                token = scripts.send(self._channel, [("BLPOP", *wake_keys, self.idle_block())])[0]
                if isinstance(token, Exception):
                    raise token
            self.backoff.succeeded()
            if token is not None and token[1] != b"1":  # enqueue named a job: claim it first
                queue_name = self._wake[as_str(token[0])]
                self._candidates[self._lane_keys[queue_name]] = [(queue_name, as_str(token[1]))]
        except Exception as exc:
            self.on_error("waiting for jobs", exc)

    def close(self) -> None:
        """Stop a wait under way in its own task; close the claim loop's connection."""
        if self._lane_waiter is not None:
            self.runtime.kill([self._lane_waiter], timeout=0)
        self._channel.close()
