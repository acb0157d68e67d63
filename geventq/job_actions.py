"""What a caller can do with a stored job: status shortcuts, wait, cancel, requeue, delete.

A mixin of :class:`geventq.job.Job`, kept apart so that job.py stays about
what a job *is* (its fields, how it is stored and loaded).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import scripts
from .defaults import DEFAULT_FAILURE_TTL, MAX_SECONDS
from .exceptions import InvalidJobOperation, JobFailed, NoSuchJobError
from .keys import REGISTRY_NAMES, Keys
from .releasing import child_args, child_keys, with_queues
from .status import TERMINAL_STATUSES, JobStatus
from .utils import as_str, now

if TYPE_CHECKING:
    import redis


class JobActions:
    """Operations on one job; mixed into Job (which provides the fields used here)."""

    # what Job provides (annotations only, as in JobProgress: nothing is set here)
    id: str
    key: str
    keys: Keys
    connection: redis.Redis
    origin: str | None
    failure_ttl: int | None
    exc_info: str | None
    dependency_ids: list[str]

    if TYPE_CHECKING:  # Job's own members, declared for the type checker only
        @property
        def last_status(self) -> str | None: ...

        @property
        def result(self) -> Any: ...

        def refresh(self) -> None: ...

        def record_status(self, status: str | None) -> None: ...

        def get_status(self, refresh: bool = True) -> JobStatus | None: ...

    @property
    def is_queued(self) -> bool:
        return self.get_status() == JobStatus.QUEUED

    @property
    def is_started(self) -> bool:
        return self.get_status() == JobStatus.STARTED

    @property
    def is_finished(self) -> bool:
        return self.get_status() == JobStatus.FINISHED

    @property
    def is_failed(self) -> bool:
        return self.get_status() == JobStatus.FAILED

    @property
    def is_deferred(self) -> bool:
        return self.get_status() == JobStatus.DEFERRED

    @property
    def is_canceled(self) -> bool:
        return self.get_status() == JobStatus.CANCELED

    @property
    def is_scheduled(self) -> bool:
        return self.get_status() == JobStatus.SCHEDULED

    @property
    def is_stopped(self) -> bool:
        return self.get_status() == JobStatus.STOPPED

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the job ends; return its result or raise.

        Raises ``JobFailed`` (with ``exc_info``) when it failed, was stopped or
        canceled, and ``TimeoutError`` when ``timeout`` seconds pass first. The
        end of the job wakes the caller through Redis; nothing polls.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        waiters, done = self.keys.waiters(self.id), self.keys.done(self.id)
        pipe = self.connection.pipeline(transaction=True)
        pipe.incr(waiters)
        pipe.expire(waiters, int(timeout or 3600) + 60)
        pipe.hget(self.key, "status")
        _, _, status = pipe.execute()
        while as_str(status) not in TERMINAL_STATUSES:
            if status is None:
                raise NoSuchJobError(f"no job with id {self.id!r}")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self.connection.decr(waiters)
                raise TimeoutError(f"job {self.id} did not end within {timeout} s")
            # short blocking slices keep each call under the client's socket timeout
            block = 1.0 if remaining is None else max(0.01, min(1.0, remaining))
            token = self.connection.blpop([done], timeout=block)
            status = self.connection.hget(self.key, "status")
            if token is not None and status is None:
                return None  # finished with result_ttl=0: the job is already gone
        self.refresh()
        if self.last_status == "finished":
            return self.result
        raise JobFailed(self.id, self.exc_info or f"job was {self.last_status}")

    # -- operations on this job alone ---------------------------------------
    def cancel(self) -> None:
        """Cancel a job that has not ended: queued, deferred, scheduled or started.

        It ends ``canceled`` (in ``canceled_job_registry``) at once and never runs, or
        runs no further: a started job is stopped where its worker can stop it (a
        GeventWorker, as by ``geventq stop``), and whatever its run returns is not
        recorded. Its dependents that allow failure are released. A job that has ended
        raises ``InvalidJobOperation``.
        """
        k = self.keys
        origin = self._origin_or_load("cancel")
        worker = ""
        children: list[tuple[str, str]] = []
        ttl = self.failure_ttl  # as read from Redis: kept only if Redis can take it
        ttl = ttl if ttl.__class__ is int and (ttl == -1 or 0 < ttl <= MAX_SECONDS) \
            else DEFAULT_FAILURE_TTL
        for _ in range(100):  # retried only while the job moves under us
            reply = scripts.call(self.connection, "cancel", [
                self.key, k.queue(origin), k.registry("deferred", origin),
                k.registry("scheduled", origin), k.registry("canceled", origin),
                k.expiring(origin), k.waiters(self.id), k.done(self.id),
                k.registry("started", origin), k.worker_jobs(worker) if worker else self.key,
                k.pending(self.id), k.dependents(self.id), k.queues,
                *child_keys(k, children),
            ], [self.id, repr(now()), ttl, worker,
                k.stop_channel(), len(children), *child_args(children)])
            outcome = as_str(reply[0])
            if outcome == "worker":  # started meanwhile: its worker's in-flight set is needed
                worker = as_str(reply[1])
            elif outcome == "dependents":  # they are released with it: their keys are needed
                ids = [as_str(i) for i in reply[1]]
                children = with_queues(self.connection, k, [(ids, origin)])[0]
            else:
                _check_reply(reply, self.id, "cancel")
                self.record_status("canceled")
                return
        raise InvalidJobOperation(f"cannot cancel job {self.id}: it keeps changing")

    def requeue(self, at_front: bool = False) -> JobActions:
        """Put a failed, stopped or canceled job back on its queue."""
        origin = self._origin_or_load("requeue")
        reply = scripts.call(self.connection, "requeue",
                             *requeue_call(self.keys, self.id, origin, at_front))
        _check_reply(reply, self.id, "requeue")
        self.record_status("queued")
        return self

    def delete(self) -> None:
        """Delete the job and remove it from its queue and every registry."""
        try:
            origin = self._origin_or_load("delete")
        except NoSuchJobError:
            return
        except InvalidJobOperation:
            # its hash names no queue: the job's own keys still go ("" is no queue's name,
            # so the queue keys below hold nothing)
            origin = ""
        k = self.keys
        keys = [self.key, k.queue(origin), k.expiring(origin), k.pending(self.id),
                k.dependents(self.id)]
        keys += [k.registry(name, origin) for name in REGISTRY_NAMES]
        keys += [k.dependents(parent) for parent in self.dependency_ids]
        scripts.call(self.connection, "delete", keys, [self.id, len(REGISTRY_NAMES)])

    def _origin_or_load(self, operation: str) -> str:
        if self.origin is None or self.last_status is None:
            self.refresh()
        if self.origin is None:  # a hash geventq did not write whole: it names no queue
            raise InvalidJobOperation(f"cannot {operation} job {self.id}: it names no queue "
                                      f"(its hash has no origin field)")
        return self.origin


def requeue_call(keys: Keys, job_id: str, origin: str, at_front: bool = False) -> tuple[list, list]:
    """KEYS and ARGV of ``requeue.lua`` for one job of queue ``origin``.

    Shared by :meth:`JobActions.requeue` and batch requeues (a pipeline of these calls).
    """
    return ([keys.job(job_id), keys.registry("failed", origin), keys.registry("canceled", origin),
             keys.queue(origin), keys.wake(origin), keys.queues],
            [job_id, origin, repr(now()), "1" if at_front else "0"])


def _check_reply(reply: list, job_id: str, operation: str) -> None:
    outcome = as_str(reply[0])
    if outcome == "missing":
        raise NoSuchJobError(f"no job with id {job_id!r}")
    if outcome == "status":
        raise InvalidJobOperation(f"cannot {operation} job {job_id}: its status is "
                                  f"{as_str(reply[1])}")
