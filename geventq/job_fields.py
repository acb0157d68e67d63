"""Reading a stored job hash: decoding its fields, and checking those read later.

Redis holds whatever anyone wrote there. A worker about to run a job reads its
hash strictly: a field that cannot be read fails that job, with the reason.
Tools that read jobs (``Job.fetch``, ``geventq info``) must survive any hash:
for them a field that cannot be read is None, or raises DeserializationError
when it is used, never when the job is loaded.
"""

from __future__ import annotations

import json
from typing import Any

from .exceptions import DeserializationError
from .status import JobStatus

# fields holding serialized bytes: never decoded as text
BINARY_FIELDS = frozenset({"data", "meta", "result"})
KNOWN_FIELDS = frozenset({
    "func", "data", "description", "origin", "status", "created_at", "enqueued_at",
    "started_at", "ended_at", "timeout", "result_ttl", "failure_ttl", "ttl", "meta",
    "exc_info", "worker_name", "deps", "allow_failure", "at_front", "result", "scheduled_at",
})


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
