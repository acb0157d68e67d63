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

from .. import lifecycle
from ..connection import resolve_connection_and_keys
from ..defaults import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_MAX_ABANDONED_REQUEUES,
    DEFAULT_SHUTDOWN_GRACE,
)
from ..execution import ExceptionHandler
from ..job import Job
from ..keys import Keys
from ..queue import Queue
from ..serializers import resolve_serializer
from ..utils import as_str, import_attribute, now, to_datetime
from ..version import VERSION

logger = logging.getLogger("geventq.worker")


class WorkerState:
    IDLE = "idle"
    BUSY = "busy"
    SUSPENDED = "suspended"


class Worker:
    """The common base of all workers, and the class-level look-ups."""

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
                 disable_default_exception_handler: bool = False) -> None:
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
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.name = name or f"{self.hostname}.{self.pid}.{uuid.uuid4().hex[:6]}"
        if ":" in self.name or " " in self.name:
            raise ValueError(f"worker name must not contain ':' or spaces: {self.name!r}")
        self.key = self.keys.worker(self.name)
        self.exception_handlers = [import_attribute(h) if isinstance(h, str) else h
                                   for h in exception_handlers]
        self.default_result_ttl = default_result_ttl
        self.heartbeat_interval = heartbeat_interval
        self.shutdown_grace = shutdown_grace
        self.max_abandoned_requeues = max_abandoned_requeues
        self.birth_date: datetime | None = None
        self._loaded: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, queues={self.queue_names})"

    # -- registration ------------------------------------------------------
    @property
    def worker_ttl(self) -> int:
        """Seconds the worker's key outlives its last heartbeat: one missed beat, plus 1 s.

        The heartbeat comes from a native thread (it beats while a job blocks the
        hub), so it is late only when Redis is; recovery sweeps (every half interval)
        then find a dead worker within about two to three intervals of its death.
        """
        return max(2, math.ceil(self.heartbeat_interval * 2 + 1))

    def register(self, **fields: Any) -> None:
        """Announce this worker in Redis; refuse a name a live worker holds."""
        if self.connection.exists(self.key):
            raise ValueError(f"a worker named {self.name!r} is already registered and alive")
        stamp = now()
        self.birth_date = to_datetime(stamp)
        mapping = {"name": self.name, "hostname": self.hostname, "pid": self.pid,
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
        announce_ready()
        logger.info("worker %s started on queues %s", self.name, " ".join(self.queue_names))

    def heartbeat(self, connection: redis.Redis | None = None, **fields: Any) -> None:
        """Prove this worker is alive (and update fields such as its state)."""
        pipe = (connection or self.connection).pipeline(transaction=True)
        pipe.hset(self.key, mapping={"heartbeat": repr(now()), **fields})
        pipe.expire(self.key, self.worker_ttl)
        # back in the set if Redis lost it or a recoverer took a slow worker for dead
        pipe.sadd(self.keys.workers, self.name)
        pipe.execute()

    def set_state(self, state: str) -> None:
        self.connection.hset(self.key, "state", state)

    def unregister(self) -> None:
        """Remove the worker; jobs still in its in-flight set go back to their queues.

        With Redis away, the worker is left to expire: the other workers then
        recover whatever it still held.
        """
        try:
            if self.connection.scard(self.keys.worker_jobs(self.name)):
                outcomes = lifecycle.recover_worker(self.connection, self.keys, self.name,
                                          self.max_abandoned_requeues)
                logger.warning("worker %s stopped holding %d job(s): %s", self.name,
                               len(outcomes), outcomes)
            pipe = self.connection.pipeline(transaction=True)
            pipe.srem(self.keys.workers, self.name)
            pipe.delete(self.key)
            pipe.execute()
        except redis.RedisError as exc:
            logger.warning("worker %s could not unregister (%s: %s); other workers recover "
                           "its jobs once its key expires", self.name, type(exc).__name__, exc)
            return
        logger.info("worker %s stopped", self.name)

    def is_suspended(self) -> bool:
        return bool(self.connection.exists(self.keys.suspended))

    # -- reading a worker's record -------------------------------------------
    def refresh(self) -> None:
        """Reload this worker's record from Redis."""
        self._loaded = {as_str(k): as_str(v) for k, v in self.connection.hgetall(self.key).items()}

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
    def successful_job_count(self) -> int:
        return int(self._field("successful", 0))

    @property
    def failed_job_count(self) -> int:
        return int(self._field("failed", 0))

    @property
    def total_working_time(self) -> float:
        """Seconds spent running jobs."""
        return float(self._field("working_time", 0))

    @property
    def last_heartbeat(self) -> datetime | None:
        return to_datetime(self._field("heartbeat"))

    @property
    def current_job_ids(self) -> list[str]:
        """Ids of every job this worker runs now."""
        return sorted(as_str(i) for i in self.connection.smembers(self.keys.worker_jobs(self.name)))

    @property
    def pool(self) -> str:
        return self._field("pool", "")

    # -- look-ups ------------------------------------------------------------
    @classmethod
    def _from_record(cls, name: str, record: dict, connection: redis.Redis, keys: Keys) -> Worker:
        worker = cls.__new__(cls)
        worker.connection, worker.keys, worker.name = connection, keys, name
        worker.key = keys.worker(name)
        worker._loaded = {as_str(k): as_str(v) for k, v in record.items()}
        worker.hostname = worker._loaded.get("hostname")
        worker.pid = int(worker._loaded.get("pid", 0))
        worker.queue_names = [q for q in worker._loaded.get("queues", "").split(",") if q]
        worker.serializer = resolve_serializer(None)
        worker.queues = [Queue(q, connection=connection, keys=keys) for q in worker.queue_names]
        worker.birth_date = to_datetime(worker._loaded.get("birth"))
        return worker

    @classmethod
    def all(cls, connection: redis.Redis | None = None, queue: Queue | None = None,
            prefix: str | None = None, keys: Keys | None = None) -> list[Worker]:
        """Every live worker (of one queue, when ``queue`` is given), sorted by name."""
        if queue is not None:
            connection, keys = queue.connection, queue.keys
        connection, keys = resolve_connection_and_keys(connection, keys, prefix)
        names = sorted(as_str(n) for n in connection.smembers(keys.workers))
        pipe = connection.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.worker(name))
        workers = [cls._from_record(name, record, connection, keys)
                   for name, record in zip(names, pipe.execute()) if record]
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
        record = connection.hgetall(worker_key)
        return cls._from_record(name, record, connection, keys) if record else None


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
