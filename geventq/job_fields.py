"""The fields of a job hash: writing a new job's, and reading a stored one's.

Writing: a new job's field/value pairs, as the enqueue scripts take them
(``shared_fields``: what jobs enqueued together share, ``own_fields``: the rest).

Reading: Redis holds whatever anyone wrote there. A worker about to run a job reads its
hash strictly: a field that cannot be read fails that job, with the reason.
Tools that read jobs (``Job.fetch``, ``geventq info``) must survive any hash:
for them a field that cannot be read is None, or raises DeserializationError
when it is used, never when the job is loaded.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .exceptions import DeserializationError
from .status import JobStatus

if TYPE_CHECKING:
    from .job import Job
    from .serializers import Serializer

# fields holding serialized bytes: never decoded as text
BINARY_FIELDS = frozenset({"data", "meta", "result"})
KNOWN_FIELDS = frozenset({
    "func", "data", "description", "origin", "status", "created_at", "enqueued_at",
    "started_at", "ended_at", "timeout", "result_ttl", "failure_ttl", "ttl", "meta",
    "exc_info", "worker_name", "deps", "allow_failure", "at_front", "result", "scheduled_at",
})


# -- writing -------------------------------------------------------------------
def new_job_fields(job: Job, created_at: float) -> dict[str, Any]:
    """The hash fields of a new job (values may be None: not stored)."""
    fields: dict[str, Any] = {
        "origin": job.origin, "created_at": repr(created_at), "timeout": job.timeout,
        "result_ttl": job.result_ttl, "failure_ttl": job.failure_ttl,
    }
    pairs = iter(hash_fields(job))
    fields.update(zip(pairs, pairs))
    return fields


def hash_fields(job: Job) -> list[Any]:
    """Flat field/value pairs of a new job's hash, without None values and without
    what enqueueing adds (status, origin, created_at, enqueued_at)."""
    shared = shared_fields(job)
    fields: list[Any] = []
    for i in range(0, len(shared), 2):
        if shared[i + 1] is not None:
            fields += (shared[i], shared[i + 1])
    fields += ("data", job.serialize_data())
    fields += own_fields(job)
    return fields


def shared_fields(job: Job) -> tuple:
    """The fields that jobs enqueued together usually share, as flat pairs (values
    may be None: not stored). ``at_front`` and ``ttl`` are among them."""
    return ("func", job.func_name, "timeout", job.timeout, "result_ttl", job.result_ttl,
            "failure_ttl", job.failure_ttl, "ttl", job.ttl,
            "at_front", "1" if job.at_front else None)


def own_fields(job: Job) -> list[Any]:
    """The remaining hash fields of a new job (besides shared fields and data)."""
    description = job.given_description
    if description is None and not job.meta and not job.dependency_ids \
            and not job.allow_dependency_failure and not job.extra \
            and job.scheduled_at is None:
        return []  # the common case, tested at once
    fields: list[Any] = []
    if job.scheduled_at is not None:
        fields += ("scheduled_at", repr(job.scheduled_at.timestamp()))
    if description is not None:
        fields += ("description", description)
    if job.meta:
        fields += ("meta", job.serialize_meta())
    if job.dependency_ids:
        fields += ("deps", ",".join(job.dependency_ids))
    if job.allow_dependency_failure:
        fields += ("allow_failure", "1")
    for name, value in job.extra.items():
        if value is not None:
            fields += (name, value)
    return fields


def dump_value(serializer: Serializer, job_id: str, what: str, value: Any) -> bytes:
    """The stored form of a job's ``what`` (meta, result); ValueError naming what failed."""
    try:
        return serializer.dumps(value)
    except Exception as exc:
        raise ValueError(f"cannot serialize the {what} of job {job_id} with "
                         f"{serializer.name}: {type(exc).__name__}: {exc}") from exc


# -- reading -------------------------------------------------------------------
def load_value(serializer: Serializer, job_id: str, what: str, data: bytes) -> Any:
    """A job's stored ``what`` (arguments, meta, result), deserialized;
    DeserializationError naming what failed."""
    try:
        return serializer.loads(data)
    except Exception as exc:
        raise DeserializationError(f"cannot deserialize the {what} of job {job_id} with "
                                   f"{serializer.name}: {type(exc).__name__}: {exc}")


def decode_hash(mapping: dict, strict: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """(every field by name, raw values; the text fields decoded).

    Not ``strict``: bytes that are not UTF-8 are decoded with replacement characters.
    """
    errors = "strict" if strict else "replace"
    # two comprehensions rather than a loop over fields: a worker loads every job
    fields = {(k.decode("utf-8", errors) if k.__class__ is bytes else k): v
              for k, v in mapping.items()}
    text = {k: (v.decode("utf-8", errors) if v.__class__ is bytes else v)
            for k, v in fields.items() if k not in BINARY_FIELDS}
    return fields, text


def whole_number(value: Any) -> int | None:
    """A stored whole number (None when absent); raises ValueError when it is not one."""
    return None if value in (None, b"", "") else int(value)


def whole_number_or_none(value: Any) -> int | None:
    """A stored whole number, or None when it is absent or not one."""
    try:
        return whole_number(value)
    except ValueError:
        return None


def status_of(job_id: str, text: str | None) -> JobStatus | None:
    """The JobStatus a stored status names; DeserializationError for an unknown one."""
    if not text:
        return None
    try:
        return JobStatus(text)
    except ValueError:
        raise DeserializationError(f"job {job_id} has an unknown status {text!r}") from None


def counter_of(job_id: str, name: str, text: str | None) -> int | None:
    """A stored count such as ``retries_left``; DeserializationError when not a number."""
    try:
        return whole_number(text)
    except ValueError:
        raise DeserializationError(f"the {name} of job {job_id} is not a whole number: "
                                   f"{text!r}") from None


def text_list_of(job_id: str, name: str, raw: str | None) -> list[str]:
    """A stored JSON list such as ``exc_history``; DeserializationError when not one."""
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, list):
        raise DeserializationError(f"the {name} of job {job_id} is not a JSON list")
    return value


def call_parts(job_id: str, loaded: Any) -> tuple[Any, list | tuple, dict]:
    """(instance, args, kwargs) of deserialized job data; DeserializationError when the
    data is something else (a hash written by another program)."""
    if isinstance(loaded, (list, tuple)) and len(loaded) == 3 \
            and isinstance(loaded[1], (list, tuple)) and isinstance(loaded[2], dict):
        return loaded[0], loaded[1], loaded[2]
    raise DeserializationError(f"the arguments of job {job_id} are not [instance, args, "
                               f"kwargs] but a {type(loaded).__name__}")
