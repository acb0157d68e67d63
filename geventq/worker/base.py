"""``Worker``: what every worker shares — registration, heartbeat, look-ups.

A worker is a Redis hash (``worker:<name>``) kept alive by a heartbeat; its
in-flight jobs are the set ``worker:<name>:jobs`` that the claim script fills.
How jobs run is left to the subclasses (``SimpleWorker``, ``GeventWorker``).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import redis

from .. import lifecycle, setting_rules
from ..allowlist import JobModules, job_modules_from
from ..connection import clone_connection, resolve_connection_and_keys
from ..defaults import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_MAX_ABANDONED_REQUEUES,
    DEFAULT_SHUTDOWN_GRACE,
)
from ..eviction import check_eviction_policy
from ..execution import ExceptionHandler
from ..job import Job
from ..keys import Keys
from ..names import check_worker_name
from ..queue import Queue
from ..serializers import resolve_serializer
from ..utils import import_attribute, now, text_ids, to_datetime
from ..version import VERSION
from .heartbeat import Liveness

logger = logging.getLogger("geventq.worker")


class WorkerState:
    IDLE = "idle"
    BUSY = "busy"
    SUSPENDED = "suspended"


class Worker:
    """The common base of all workers, and the class-level look-ups.

    ``job_modules``: the modules whose functions this worker may run (``JOB_MODULES``,
    see docs/security.md); None runs any importable function. ``allow_eviction``:
    start even when Redis' ``maxmemory-policy`` is not ``noeviction`` (with a warning).
    """

    _liveness: Liveness | None = None
    _beat_connection: redis.Redis | None = None  # the heartbeat thread's own, when it beats

    def __init__(self, queues: Iterable[Queue | str] | Queue | str = ("default",),
                 connection: redis.Redis | None = None, name: str | None = None,
                 job_class: type[Job] | str | None = None,
                 queue_class: type[Queue] | str | None = None,
                 exception_handlers: Sequence[ExceptionHandler | str] = (),
                 serializer: Any = None, prefix: str | None = None,
                 keys: Keys | None = None, default_result_ttl: int | None = None,
                 heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
                 shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
                 max_abandoned_requeues: int = DEFAULT_MAX_ABANDONED_REQUEUES,
                 disable_default_exception_handler: bool = False,
                 job_modules: Iterable[str] | JobModules | None = None,
                 allow_eviction: bool = False) -> None:
        if isinstance(queues, (str, Queue)):
            queues = [queues]
        queues = list(queues)
        if keys is None and prefix is None:  # Queue objects name the prefix the worker serves
            keys = next((q.keys for q in queues if isinstance(q, Queue)), None)
        self.connection, self.keys = resolve_connection_and_keys(connection, keys, prefix)
        self.serializer = resolve_serializer(serializer)
        self.job_class: type[Job] = _class(job_class, Job, "job class")
        self.queue_class: type[Queue] = _class(queue_class, Queue, "queue class")
        foreign = [q.name for q in queues if isinstance(q, Queue) and q.keys.prefix != self.keys.prefix]
        if foreign:
            raise ValueError(f"queue(s) {', '.join(foreign)} are under another key prefix than the "
                             f"worker's {self.keys.prefix!r}: a worker serves the queues of one prefix")
        self.queues: list[Queue] = [
            q if isinstance(q, Queue) else self.queue_class(
                q, connection=self.connection, keys=self.keys, serializer=self.serializer)
            for q in queues]
        if not self.queues:
            raise ValueError("a worker needs at least one queue")
        self.queue_names = [q.name for q in self.queues]
        self.hostname: str | None = socket.gethostname()
        self.pid = os.getpid()
        self.name = check_worker_name(name or f"{self.hostname}.{self.pid}.{uuid.uuid4().hex[:6]}")
        self.key = self.keys.worker(self.name)
        self.exception_handlers = [import_attribute(h) if isinstance(h, str) else h
                                   for h in exception_handlers]
        # checked by the rules of their settings (docs/configuration.md): a bad value here
        # would fail later, inside the worker, where it cannot be reported as clearly
        self.default_result_ttl = None if default_result_ttl is None else \
            setting_rules.default_result_ttl(default_result_ttl, "default_result_ttl")
        self.heartbeat_interval = setting_rules.heartbeat_interval(heartbeat_interval,
                                                                   "heartbeat_interval")
        self.shutdown_grace = setting_rules.shutdown_grace(shutdown_grace, "shutdown_grace")
        self.max_abandoned_requeues = setting_rules.max_abandoned_requeues(
            max_abandoned_requeues, "max_abandoned_requeues")
        self.job_modules: JobModules | None = job_modules_from(job_modules)
        self.allow_eviction = bool(allow_eviction)
        self.birth_date: datetime | None = None
        self._loaded: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, queues={self.queue_names})"

    # -- registration ------------------------------------------------------
    @property
    def worker_ttl(self) -> int:
        """Seconds the worker's key outlives its last heartbeat: one missed beat, plus 1 s.

        The heartbeat comes from the worker's pulse process (it beats while a job
        blocks the hub or holds the GIL), so it is late only when Redis is; recovery
        sweeps (every half interval) then find a dead worker within about two to
        three intervals of its death.
        """
        return max(2, math.ceil(self.heartbeat_interval * 2 + 1))

    def register(self, **fields: Any) -> None:
        """Announce this worker in Redis and start keeping its key alive.

        Refuses (before writing anything) a name a live worker holds, and a Redis
        that may evict keys (``EvictionPolicyError``) unless ``allow_eviction``.
        """
        check_eviction_policy(self.connection, self.allow_eviction)
        if self.serializer.name == "json" and self.job_modules is None:
            logger.warning("worker %s decodes jobs as JSON but has no JOB_MODULES: whoever can "
                           "write to Redis can make it run any importable function "
                           "(docs/security.md)", self.name)
        if self.connection.exists(self.key):
            raise ValueError(f"a worker named {self.name!r} is already registered and alive")
        stamp = now()
        self.birth_date = to_datetime(stamp)
        mapping: dict[Any, Any] = {"name": self.name, "hostname": self.hostname, "pid": self.pid,
                   "queues": ",".join(self.queue_names), "state": WorkerState.IDLE,
                   "birth": repr(stamp), "heartbeat": repr(stamp), "version": VERSION,
                   "successful": 0, "failed": 0, "working_time": 0,
                   "pool": os.environ.get("GEVENTQ_POOL", "")}
        mapping.update({k: v for k, v in fields.items() if v is not None})
        pipe = self.connection.pipeline(transaction=True)
        pipe.hset(self.key, mapping=mapping)
        pipe.expire(self.key, self.worker_ttl)
        pipe.sadd(self.keys.workers, self.name)
        pipe.execute()
        self._liveness = Liveness(
            self.name, self.connection,
            {"name": self.name, "key": self.key, "workers": self.keys.workers,
             "interval": self.heartbeat_interval, "ttl": self.worker_ttl,
             "state": mapping["state"]},
            self._beat_from_thread, self.heartbeat_interval)
        self._liveness.start()
        announce_ready()
        logger.info("worker %s started on queues %s", self.name, " ".join(self.queue_names))

    def heartbeat(self, connection: redis.Redis | None = None, **fields: Any) -> None:
        """Prove this worker is alive (and update fields such as its state)."""
        pipe = (connection or self.connection).pipeline(transaction=True)
        mapping: dict[Any, Any] = {"heartbeat": repr(now()), **fields}
        pipe.hset(self.key, mapping=mapping)
        pipe.expire(self.key, self.worker_ttl)
        # back in the set if Redis lost it or a recoverer took a slow worker for dead
        pipe.sadd(self.keys.workers, self.name)
        pipe.execute()

    def _beat_from_thread(self, state: str) -> None:
        """The heartbeat from a native thread of this process, when no pulse can run."""
        if self._beat_connection is None:
            self._beat_connection = clone_connection(self.connection)
        self.heartbeat(self._beat_connection, state=state)

    def set_state(self, state: str) -> None:
        """Record the worker's state (idle, suspended); every later beat writes it too."""
        if self._liveness is not None:
            self._liveness.set_state(state)
        self.connection.hset(self.key, "state", state)

    def unregister(self) -> None:
        """Remove the worker; jobs still in its in-flight set go back to their queues.

        With Redis away, the worker is left to expire: the other workers then
        recover whatever it still held. Its heartbeat stops first, so that no beat
        brings the key back after it is deleted.
        """
        if self._liveness is not None:
            self._liveness.stop()
            self._liveness = None
        try:
            if self.connection.scard(self.keys.worker_jobs(self.name)):
                outcomes = lifecycle.recover_worker(self.connection, self.keys, self.name,
                                          self.max_abandoned_requeues)
                logger.warning("worker %s stopped holding %d job(s): %s", self.name,
                               len(outcomes), outcomes)
            pipe = self.connection.pipeline(transaction=True)
            lifecycle.forget_worker(pipe, self.keys, self.name)
            pipe.execute()
        except redis.RedisError as exc:
            logger.warning("worker %s could not unregister (%s: %s); other workers recover "
                           "its jobs once its key expires", self.name, type(exc).__name__, exc)
            return
        logger.info("worker %s stopped", self.name)

    def is_suspended(self) -> bool:
        return bool(self.connection.exists(self.keys.suspended))

    # -- reading a worker's record -------------------------------------------
    # A worker hash may hold anything (Redis is shared): what cannot be read shows as
    # None, and a look-up never fails on it.
    def refresh(self) -> None:
        """Reload this worker's record from Redis."""
        self._loaded = _text_record(self.connection.hgetall(self.key))

    @property
    def record(self) -> dict[str, str]:
        """The worker's hash as last loaded (text; bytes that are not UTF-8 replaced)."""
        return dict(self._loaded)

    def _field(self, name: str, default: Any = None) -> Any:
        self.refresh()
        return self._loaded.get(name, default)

    def get_state(self) -> str:
        """'suspended', else 'busy' while it runs a job, else 'idle'.

        Busy/idle is read from the worker's in-flight set rather than stored,
        so it is exact at every moment and costs the worker no writes.
        """
        if self._field("state") == WorkerState.SUSPENDED:
            return WorkerState.SUSPENDED
        busy = self.connection.scard(self.keys.worker_jobs(self.name))
        return WorkerState.BUSY if busy else WorkerState.IDLE

    @property
    def successful_job_count(self) -> int | None:
        """Jobs it finished (None if its record holds no number there)."""
        return stored_number(self._field("successful", 0), int)

    @property
    def failed_job_count(self) -> int | None:
        """Jobs that failed on it (None if its record holds no number there)."""
        return stored_number(self._field("failed", 0), int)

    @property
    def total_working_time(self) -> float | None:
        """Seconds spent running jobs (None if its record holds no number there)."""
        return stored_number(self._field("working_time", 0), float)

    @property
    def last_heartbeat(self) -> datetime | None:
        return to_datetime(self._field("heartbeat"))

    @property
    def current_job_ids(self) -> list[str]:
        """Ids of every job this worker runs now."""
        return sorted(text_ids(self.connection.smembers(self.keys.worker_jobs(self.name))))

    @property
    def pool(self) -> str:
        return self._field("pool", "")

    # -- look-ups ------------------------------------------------------------
    @classmethod
    def _from_record(cls, name: str, record: dict, connection: redis.Redis, keys: Keys) -> Worker:
        worker = cls.__new__(cls)
        worker.connection, worker.keys, worker.name = connection, keys, name
        worker.key = keys.worker(name)
        worker._loaded = loaded = _text_record(record)
        worker.hostname = loaded.get("hostname")
        worker.pid = stored_number(loaded.get("pid"), int)
        worker.queue_names = [q for q in loaded.get("queues", "").split(",") if q]
        worker.serializer = resolve_serializer(None)
        # a name that is not a queue's (not written by geventq) stays in queue_names only
        worker.queues = []
        for queue_name in worker.queue_names:
            try:
                worker.queues.append(Queue(queue_name, connection=connection, keys=keys))
            except ValueError:
                continue
        worker.birth_date = to_datetime(loaded.get("birth"))
        return worker

    @classmethod
    def all(cls, connection: redis.Redis | None = None, queue: Queue | None = None,
            prefix: str | None = None, keys: Keys | None = None) -> list[Worker]:
        """Every live worker (of one queue, when ``queue`` is given), sorted by name.

        A name in the workers set that is not UTF-8 text (never written by geventq)
        is left out.
        """
        if queue is not None:
            connection, keys = queue.connection, queue.keys
        connection, keys = resolve_connection_and_keys(connection, keys, prefix)
        names = sorted(text_ids(connection.smembers(keys.workers)))
        pipe = connection.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.worker(name))
        # a worker key of another type (not written by geventq) is no live worker
        workers = [cls._from_record(name, record, connection, keys)
                   for name, record in zip(names, pipe.execute(raise_on_error=False))
                   if record and isinstance(record, dict)]
        if queue is not None:
            workers = [w for w in workers if queue.name in w.queue_names]
        return workers

    @classmethod
    def count(cls, connection: redis.Redis | None = None, queue: Queue | None = None,
              prefix: str | None = None, keys: Keys | None = None) -> int:
        """How many live workers there are (on one queue, when given)."""
        return len(cls.all(connection=connection, queue=queue, prefix=prefix, keys=keys))

    @classmethod
    def find_by_key(cls, worker_key: str, connection: redis.Redis | None = None,
                    prefix: str | None = None, keys: Keys | None = None) -> Worker | None:
        """The live worker with this key (``geventq:worker:<name>``), or None."""
        connection, keys = resolve_connection_and_keys(connection, keys, prefix)
        name = keys.parse_worker_key(worker_key)
        try:
            record = connection.hgetall(worker_key)
        except redis.ResponseError:  # a key of another type: not a worker geventq wrote
            return None
        return cls._from_record(name, record, connection, keys) if record else None


def stored_number(value: Any, kind: type) -> Any:
    """``kind(value)`` for a number read from a worker's record; None when it is not one."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        return None
    return None if kind is float and not math.isfinite(number) else number


def _text_record(record: dict) -> dict[str, str]:
    """A worker hash as text: bytes that are not UTF-8 are shown with replacement characters."""
    return {k.decode(errors="replace") if isinstance(k, bytes) else k:
            v.decode(errors="replace") if isinstance(v, bytes) else v for k, v in record.items()}


def announce_ready() -> None:
    """Tell a supervising ``geventq pool`` that this worker is registered and taking jobs.

    The pool reads the heartbeat file's mtime as liveness (touched from process
    start) and a non-empty file as readiness.
    """
    path = os.environ.get("GEVENTQ_HEARTBEAT_FILE")
    if path:
        try:
            with open(path, "w") as fh:
                fh.write("ready\n")
        except OSError:
            logger.warning("cannot write the heartbeat file %s", path)


def _class(value: Any, default: type, what: str) -> type:
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = import_attribute(value)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ValueError(f"cannot import {what} {value!r}: {exc}") from None
    if not isinstance(value, type) or not issubclass(value, default):
        raise ValueError(f"{what} must be a subclass of {default.__name__}, got {value!r}")
    return value
