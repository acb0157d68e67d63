"""The rules for ids and names that become parts of Redis keys.

Job ids, queue names and worker names end up inside key names, in the job
hash (``deps`` joins dependency ids with commas), in log lines and on the
pipe to a fork child. Each rule is written here once and used wherever such
a value enters through the API, a settings file or the command line.
Standard library only: the launcher imports it.
"""

from __future__ import annotations

from typing import Any

# ':' separates the parts of a key; ',' separates the ids of a job's 'deps' field and
# the queue names of a worker's record
_FORBIDDEN = (":", ",", " ")


def check_job_id(value: Any, what: str = "job_id") -> str:
    """Return ``value`` if it may be a new job's id (or a queue or worker name); else
    raise ``ValueError`` naming it.

    A job id is a non-empty string of printable characters (``str.isprintable``:
    no control, format, separator or surrogate characters, so no newline or tab
    either) without spaces, ``:`` or ``,``.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if not value.isprintable() or any(c in value for c in _FORBIDDEN):
        raise ValueError(f"{what} must hold printable characters only, without spaces, ':' "
                         f"or ',' (no control characters), got {value!r}")
    return value


def job_id_to_look_up(value: Any, what: str = "job id") -> str:
    """A job id to look a stored job up by: a non-empty ``str`` (``bytes`` are decoded).

    Lighter than :func:`check_job_id` on purpose: whatever id a queue or registry
    holds (some other writer's included) can be read back, while a value that
    would build the key of another job (``b'x'`` formatted as ``"b'x'"``, or an
    empty id) is refused with ``ValueError``.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_queue_name(value: Any, what: str = "queue name") -> str:
    """Return a valid queue name (the rule of :func:`check_job_id`); else raise
    ``ValueError`` naming it."""
    return check_job_id(value, what)


def check_worker_name(value: Any, what: str = "worker name") -> str:
    """Return a valid worker name (the rule of :func:`check_job_id`)."""
    return check_job_id(value, what)
