"""Unique jobs (API section 8): ``unique=True`` / ``unique_key=``.

While a job of one identity waits (queued, scheduled or deferred) in a queue,
enqueueing another of that identity there returns the waiting job instead. The
identity is ``unique_key`` when given, else a digest of the function and its
serialized arguments. ``enqueue.lua`` decides it in the enqueue's own step,
through the key ``Keys.unique(queue, identity)`` holding the waiting job's id, so
two processes enqueuing at the same instant get one job. Once that job has
started (or ended, or was canceled), the key no longer counts and the next
enqueue makes a new job.
"""

from __future__ import annotations

import hashlib
from typing import Any

MAX_UNIQUE_KEY = 200


def unique_fields(func_name: str, data: bytes, unique: Any, unique_key: Any) -> dict[str, str]:
    """The job hash field ``unique`` (the identity), or {} for a job that is not unique.

    ``data``: the job's serialized arguments. Bad values raise ValueError.
    """
    if unique is not None and not isinstance(unique, bool):
        raise ValueError(f"unique= must be True or False, got {unique!r}")
    if unique_key is not None:
        if not isinstance(unique_key, str) or not unique_key or \
                len(unique_key) > MAX_UNIQUE_KEY or not unique_key.isprintable():
            raise ValueError(f"unique_key= must be 1 to {MAX_UNIQUE_KEY} printable characters, "
                             f"got {unique_key!r}")
        if unique is False:
            raise ValueError("unique_key= names the identity of a unique job: it cannot go "
                             "with unique=False")
        return {"unique": unique_key}
    if not unique:
        return {}
    digest = hashlib.sha1(str(func_name).encode() + b"\0" + data).hexdigest()
    return {"unique": digest}
