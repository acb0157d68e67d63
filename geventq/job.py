"""A job: one call of a function, stored as one Redis hash.

This module never imports the queue or the registries: state transitions that
touch queues live in :mod:`geventq.lifecycle`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import redis

from .callables import describe_callable_cached, resolve_callable
from .connection import resolve_connection_and_keys
from .context import reset_current_job, set_current_job
from .dependency import Dependency, dependency_ids  # noqa: F401  (Dependency re-exported)
from .exceptions import DeserializationError, NoSuchJobError
from .ids import new_job_id  # noqa: F401  (re-exported)
from .job_actions import JobActions
from .job_fields import (
    KNOWN_FIELDS,
    call_parts,
    counter_of,
    decode_hash,
    dump_value,
    load_value,
    new_job_fields,
    status_of,
    text_list_of,
    whole_number,
    whole_number_or_none,
)
from .keys import Keys, resolve_keys  # noqa: F401  (resolve_keys re-exported)
from .names import check_job_id, job_id_to_look_up
from .progress import JobProgress
from .serializers import Serializer, resolve_serializer
from .status import TERMINAL_STATUSES, JobStatus  # noqa: F401  (re-exported)
from .timestamps import TIMESTAMPS, Timestamp
from .utils import storable_text, to_datetime


class Job(JobActions, JobProgress):
    """A job: its function, arguments, options, status and result."""

    # Defaults shared by every job until one sets its own: a job is built per
    # enqueue and per start, so __init__ only sets what is per-instance.
    func_name: str | None = None
    _instance: Any = None
    _args: tuple | list = ()
    _data: bytes | None = None  # serialized (instance, args, kwargs), loaded lazily
    _description: str | None = None
    origin: str | None = None
    _status: str | None = None
    created_at = Timestamp()
    enqueued_at = Timestamp()
    started_at = Timestamp()
    ended_at = Timestamp()
    scheduled_at = Timestamp()  # when a job of enqueue_at / enqueue_in is due
    timeout: int | None = None
    result_ttl: int | None = None
    failure_ttl: int | None = None
    ttl: int | None = None
    exc_info: str | None = None
    worker_name: str | None = None
    allow_dependency_failure = False
    at_front = False
    _result: Any = None
    _raw_result: bytes | None = None
    _raw_meta: bytes | None = None  # a stored meta a reading tool has not needed yet
    _fresh_id = False
    # False once a stored hash is loaded: its (instance, args, kwargs) are deserialized
    # on first use; True for a job built in memory (nothing to load)
    args_loaded = True
    # why a started job's hash cannot be loaded (set by lifecycle.start, read by
    # execution.execute: the job then fails with it instead of running)
    load_error: str | None = None

    def __init__(self, id: str | None = None, connection: redis.Redis | None = None,
                 serializer: Any = None, prefix: str | None = None, keys: Keys | None = None):
        connection, keys = resolve_connection_and_keys(connection, keys, prefix)
        self._set_up(id, connection, resolve_serializer(serializer), keys)

    @classmethod
    def from_resolved(cls, id: str | None, connection: redis.Redis, serializer: Serializer,
                      keys: Keys) -> Job:
        """``cls(id, ...)`` for hot paths whose connection, serializer and keys are
        already resolved (a queue's or a worker's): skips resolving them per job."""
        if cls.__init__ is not Job.__init__:  # a subclass's own __init__ still runs
            return cls(id, connection=connection, serializer=serializer, keys=keys)
        job = cls.__new__(cls)
        job._set_up(id, connection, serializer, keys)
        return job

    def _set_up(self, id: str | None, connection: redis.Redis, serializer: Serializer,
                keys: Keys) -> None:
        # a generated id that was never written cannot be taken: enqueueing skips the look-up
        self._fresh_id = not id
        self.id = id = id or new_job_id()
        self.connection, self.serializer, self.keys = connection, serializer, keys
        self.key = keys.job(id)
        self._kwargs: dict = {}
        self.meta: dict = {}
        self.dependency_ids: list[str] = []
        self.extra: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Job({self.id!r}, func={self.func_name!r}, status={self._status!r})"

    @property
    def generated_id(self) -> bool:
        """True while the id is one this process generated and never sent to Redis: no
        job can hold it, so enqueueing skips looking it up."""
        return self._fresh_id

    def mark_id_sent(self) -> None:
        """The id is being sent to Redis: from now on (even if that write fails) it is
        looked up before the job is written again."""
        self._fresh_id = False

    @property
    def last_status(self) -> str | None:
        """The status as this object last read or wrote it: the stored text, no round
        trip (None: not read yet, or the job is gone). See :meth:`get_status`."""
        return self._status

    def record_status(self, status: str | None) -> None:
        """Note the status Redis now holds for this job, as its writer learnt it (no
        round trip; ``get_status(refresh=False)`` returns it)."""
        self._status = status

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- building ----------------------------------------------------------
    @classmethod
    def create(cls, func: Any, args: Iterable | None = None, kwargs: dict | None = None, *,
               connection: redis.Redis | None = None, serializer: Any = None,
               keys: Keys | None = None, id: str | None = None, origin: str | None = None,
               timeout: int | None = None, result_ttl: int | None = None,
               failure_ttl: int | None = None, ttl: int | None = None,
               description: str | None = None, meta: dict | None = None,
               depends_on: Any = None, at_front: bool = False, _resolved: bool = False) -> Job:
        """Build a job in memory (nothing is written until it is enqueued).

        ``_resolved``: connection, serializer and keys are a queue's own (checked already).
        """
        if id is not None:
            check_job_id(id)
        if meta is not None and not isinstance(meta, dict):
            raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
        if description is not None:
            storable_text(description, "description")
        if _resolved:
            job = cls.from_resolved(id, connection, serializer, keys)  # type: ignore[arg-type]  # resolved
        else:
            job = cls(id, connection=connection, serializer=serializer, keys=keys)
        job.func_name, job._instance = describe_callable_cached(func)
        storable_text(job.func_name, "the function's dotted path")
        if args is not None:
            job._args = tuple(args)
        if kwargs is not None and not isinstance(kwargs, dict):
            raise TypeError(f"kwargs must be a dict, got {type(kwargs).__name__}")
        if kwargs:
            job._kwargs = dict(kwargs)
        # options left at their defaults keep the class-level values: a job is built per enqueue
        if description is not None:
            job._description = description
        job.origin = origin
        job.timeout, job.result_ttl, job.failure_ttl, job.ttl = timeout, result_ttl, failure_ttl, ttl
        if meta:
            job.meta = dict(meta)
        if depends_on is not None:
            job.dependency_ids, job.allow_dependency_failure = dependency_ids(depends_on, job.keys.prefix)
        if at_front:
            job.at_front = True
        if "opentelemetry.trace" in sys.modules:  # the app traces: the job carries its context
            from .tracing import inject

            inject(job)
        return job

    def serialize_data(self) -> bytes:
        """Serialize (instance, args, kwargs); raises ValueError naming what failed."""
        if self._data is None:
            try:
                self._data = self.serializer.dumps([self._instance, list(self._args), self._kwargs])
            except Exception as exc:
                raise ValueError(f"cannot serialize the arguments of {self.func_name} with "
                                 f"{self.serializer.name}: {type(exc).__name__}: {exc}") from exc
        return self._data

    def to_mapping(self, created_at: float) -> dict[str, Any]:
        """The hash fields of a new job (see :func:`geventq.job_fields.new_job_fields`)."""
        fields = new_job_fields(self, created_at)
        self.created_at = to_datetime(created_at)
        return fields

    @property
    def given_description(self) -> str | None:
        """The description given at enqueue (or stored); None: :attr:`description` is
        made from the call."""
        return self._description

    def serialize_meta(self) -> bytes:
        """The stored form of ``meta``; raises ValueError naming what failed."""
        return dump_value(self.serializer, self.id, "meta", self.meta)

    def serialize_result(self, value: Any) -> bytes:
        """The stored form of a return value; raises ValueError naming what failed."""
        return dump_value(self.serializer, self.id, "result", value)

    # -- loading -----------------------------------------------------------
    @classmethod
    def fetch(cls, id: str, connection: redis.Redis | None = None, serializer: Any = None,
              prefix: str | None = None, keys: Keys | None = None) -> Job:
        """Load a job; raises NoSuchJobError when it does not exist (ValueError for an
        id that is not a non-empty string)."""
        id = job_id_to_look_up(id)
        job = cls(id, connection=connection, serializer=serializer, prefix=prefix, keys=keys)
        job.refresh()
        return job

    @classmethod
    def fetch_many(cls, ids: Iterable[str], connection: redis.Redis | None = None,
                   serializer: Any = None, prefix: str | None = None,
                   keys: Keys | None = None) -> list[Job | None]:
        """Load many jobs in one round trip; None where a job does not exist (ValueError,
        before anything is read, for an id that is not a non-empty string)."""
        if isinstance(ids, (str, bytes)):
            raise ValueError(f"fetch_many takes a list of job ids, got {ids!r}")
        ids = [job_id_to_look_up(job_id) for job_id in ids]
        connection, keys = resolve_connection_and_keys(connection, keys, prefix)
        pipe = connection.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(keys.job(job_id))
        jobs: list[Job | None] = []
        for job_id, mapping in zip(ids, pipe.execute()):
            if not mapping:
                jobs.append(None)
                continue
            job = cls(job_id, connection=connection, serializer=serializer, keys=keys)
            job.load_mapping(mapping, strict=False)
            jobs.append(job)
        return jobs

    def refresh(self) -> None:
        """Reload every field from Redis."""
        mapping = self.connection.hgetall(self.key)
        if not mapping:
            raise NoSuchJobError(f"no job with id {self.id!r}")
        self.load_mapping(mapping, strict=False)

    def load_mapping(self, mapping: dict, strict: bool = True) -> None:
        """Fill this job from a stored hash (bytes or str keys).

        ``strict`` (a worker about to run it): a field that cannot be read raises.
        Else (tools: ``fetch``, ``refresh``) it reads as None, or its property raises
        DeserializationError when used (``meta``, ``get_status()``), see job_fields.
        """
        m, text = decode_hash(mapping, strict)
        get = text.get
        self.func_name = get("func")
        self._data = m.get("data")
        self._instance, self._args, self._kwargs = None, (), {}
        self.args_loaded = False
        self._description = get("description")
        self.origin = get("origin")
        self._status = get("status")
        # the stored timestamps, made datetimes when first read
        self.__dict__["_loaded_stamps"] = tuple(map(get, TIMESTAMPS))
        for name in TIMESTAMPS:
            self.__dict__.pop(name, None)
        number = whole_number if strict else whole_number_or_none
        self.timeout = number(get("timeout"))
        self.result_ttl = number(get("result_ttl"))
        self.failure_ttl = number(get("failure_ttl"))
        self.ttl = number(get("ttl"))
        raw_meta = m.get("meta")
        if strict or not raw_meta:
            self.meta = self._load_meta(raw_meta) if raw_meta else {}
        else:
            self._raw_meta = raw_meta
        self.exc_info = get("exc_info")
        self.worker_name = get("worker_name")
        deps = get("deps")
        self.dependency_ids = deps.split(",") if deps else []
        self.allow_dependency_failure = get("allow_failure") == "1"
        self.at_front = get("at_front") == "1"
        self._raw_result = m.get("result")
        self._result = None
        self.extra = {k: v for k, v in text.items() if k not in KNOWN_FIELDS}

    @property
    def meta(self) -> dict:
        """Free-form data kept with the job (``save_meta()`` writes it)."""
        if self._raw_meta is not None:
            self._meta = self._load_meta(self._raw_meta)  # raises again on every read
            self._raw_meta = None
        return self._meta

    @meta.setter
    def meta(self, value: dict) -> None:
        self._meta, self._raw_meta = value, None

    def _load_meta(self, raw: bytes) -> dict:
        meta = self._load("meta", raw)
        if not isinstance(meta, dict):
            raise DeserializationError(f"the meta of job {self.id} is not a dict but a "
                                       f"{type(meta).__name__}")
        return meta

    def _load(self, what: str, data: bytes) -> Any:
        return load_value(self.serializer, self.id, what, data)

    def _ensure_args(self) -> None:
        if self._data is not None and not self.args_loaded:
            loaded = self._load("arguments", self._data)
            self._instance, self._args, self._kwargs = call_parts(self.id, loaded)
            self.args_loaded = True

    @property
    def args(self) -> tuple:
        self._ensure_args()
        return tuple(self._args)

    @property
    def kwargs(self) -> dict:
        self._ensure_args()
        return dict(self._kwargs)

    @property
    def instance(self) -> Any:
        self._ensure_args()
        return self._instance

    @property
    def func(self):
        """The callable this job runs (imports it)."""
        self._ensure_args()
        return resolve_callable(self.func_name, self._instance)  # type: ignore[arg-type]  # None: it raises, naming it

    @property
    def description(self) -> str:
        if self._description is not None:
            return self._description
        try:
            args = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        except DeserializationError:
            args = ["..."]
        return f"{self.func_name}({', '.join(args)})"

    # -- status and result --------------------------------------------------
    def get_status(self, refresh: bool = True) -> JobStatus | None:
        """The job's status, read fresh from Redis (None if the job is gone)."""
        if refresh:
            value = self.connection.hget(self.key, "status")
            self._status = value.decode(errors="replace") if value is not None else None  # type: ignore[union-attr]
        return status_of(self.id, self._status)

    @property
    def retries_left(self) -> int | None:
        """Retries still allowed, as last loaded (None: enqueued without ``retry=``)."""
        return counter_of(self.id, "retries_left", self.extra.get("retries_left"))

    @property
    def exc_history(self) -> list[str]:
        """The traceback text of every failed try, oldest first (jobs with ``retry=``)."""
        return text_list_of(self.id, "exc_history", self.extra.get("exc_history"))

    @property
    def result(self) -> Any:
        """The return value once the job finished, else None (read fresh from Redis)."""
        if self._status != "finished" or self._raw_result is None:
            status, raw = self.connection.hmget(self.key, "status", "result")
            self._status = status.decode(errors="replace") if status is not None else None  # type: ignore[union-attr]
            if self._status != "finished" or raw is None:
                return None
            if raw != self._raw_result:
                self._raw_result, self._result = raw, None  # type: ignore[assignment]
        if self._result is None and self._raw_result is not None:
            self._result = self._load("result", self._raw_result)
        return self._result

    def return_value(self) -> Any:
        """Same as :attr:`result`."""
        return self.result

    def save_meta(self) -> None:
        """Write ``job.meta`` to Redis (other fields are left alone)."""
        self.connection.hset(self.key, "meta", self.serialize_meta())

    # -- running -----------------------------------------------------------
    def perform(self) -> Any:
        """Run the function in this process with this job as the current job."""
        token = set_current_job(self)
        try:
            func = self.func
            return func(*self.args, **self.kwargs)
        finally:
            reset_current_job(token)
