"""One job as the job page and ``GET /api/jobs/<id>`` show it: one HGETALL, parsed defensively.

The job hash is read as it is, field by field, rather than through ``Job``: a
field that does not parse is shown as missing instead of failing the page, and
serialized values go through :class:`~geventq.dashboard.display.SafeLoader`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis

from ..keys import Keys
from ..progress import parse_progress
from ..stats import reply_float, reply_int, reply_text
from .display import MAX_LOAD_BYTES, SafeLoader, Unreadable, call_arguments, clip, iso_time, preview

TIMESTAMPS = ("created_at", "enqueued_at", "started_at", "ended_at")
TERMINAL = frozenset({"finished", "failed", "stopped", "canceled"})
MAX_HISTORY = 20  # earlier tries' tracebacks shown (the newest ones)
MAX_FIELDS = 200  # fields of one job hash read (a job has about 20)
LARGE_FIELDS = ("data", "result", "meta", "exc_info", "exc_history", "description")


def job_progress(fields: dict[str, Any]) -> dict[str, Any] | None:
    """The job's progress (``job.progress``, with ``at`` as Unix time for JSON), or None."""
    found = parse_progress(fields.get("progress"))
    return None if found is None else {**found, "at": found["at"].timestamp()}


@dataclass
class JobDetail:
    """What the job page shows."""

    id: str
    status: str
    func_name: str
    origin: str
    description: str | None
    args: str
    kwargs: str
    result: str | None
    meta: str | None
    exc_info: str | None
    exc_history: list[str]
    stamps: dict[str, float | None]
    worker_name: str | None
    options: dict[str, str]  # timeout, ttls, retries left...: as stored
    dependency_ids: list[str] = field(default_factory=list)
    progress: dict[str, Any] | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def as_dict(self) -> dict[str, Any]:
        """The JSON of ``GET /api/jobs/<id>`` (timestamps in ISO 8601 UTC)."""
        return {"id": self.id, "status": self.status, "func_name": self.func_name,
                "origin": self.origin, "description": self.description, "args": self.args,
                "kwargs": self.kwargs, "result": self.result, "meta": self.meta,
                "exc_info": self.exc_info, "exc_history": self.exc_history,
                **{name: iso_time(stamp) for name, stamp in self.stamps.items()},
                "worker_name": self.worker_name, "dependency_ids": self.dependency_ids,
                "progress": self.progress, **self.options}


OPTION_FIELDS = ("timeout", "result_ttl", "failure_ttl", "ttl", "retries_left", "requeues",
                 "hub_blocked", "duration")


def read_job(connection: redis.Redis, keys: Keys, loader: SafeLoader, job_id: str) -> JobDetail | None:
    """The job, or None when its hash does not exist (two round trips).

    The sizes of the fields that may be large come first: a value over
    MAX_LOAD_BYTES is never transferred, only described.
    """
    raw = _read_fields(connection, keys.job(job_id))
    if raw is None:
        return None
    text = {k: reply_text(v) if not isinstance(v, Unreadable) else repr(v)
            for k, v in raw.items() if k not in ("data", "result", "meta")}
    status = text.get("status", "")
    args, kwargs = call_arguments(loader.loads(raw.get("data")))
    result = preview(loader.loads(raw["result"])) if status == "finished" and "result" in raw else None
    meta = preview(loader.loads(raw["meta"])) if raw.get("meta") else None
    deps = [d for d in text.get("deps", "").split(",") if d]
    return JobDetail(
        id=job_id, status=status, func_name=text.get("func", ""), origin=text.get("origin", ""),
        description=clip(text["description"], 2000) if "description" in text else None,
        args=args, kwargs=kwargs, result=result, meta=meta,
        exc_info=clip(text["exc_info"]) if text.get("exc_info") else None,
        exc_history=_history(text.get("exc_history")),
        stamps={name: reply_float(text.get(name)) for name in TIMESTAMPS},
        worker_name=text.get("worker_name") or None,
        options={name: clip(text[name], 100) for name in OPTION_FIELDS if name in text},
        dependency_ids=deps[:100], progress=job_progress(text))


def _read_fields(connection: redis.Redis, key: str) -> dict[str, Any] | None:
    """The hash's fields (at most MAX_FIELDS); a large field over the limit as Unreadable."""
    pipe = connection.pipeline(transaction=False)
    pipe.hkeys(key)
    for name in LARGE_FIELDS:
        pipe.hstrlen(key, name)
    names, *sizes = pipe.execute(raise_on_error=False)
    if not isinstance(names, list) or not names:  # gone, or not a hash at all
        return None
    too_big = {name: size for name, size in zip(LARGE_FIELDS, map(reply_int, sizes))
               if size > MAX_LOAD_BYTES}
    wanted = [n for n in sorted(map(reply_text, names))[:MAX_FIELDS] if n not in too_big]
    fields: dict[str, Any] = dict(zip(wanted, connection.hmget(key, wanted))) if wanted else {}
    for name, size in too_big.items():
        fields[name] = Unreadable(f"{size:,} bytes: too large to show")
    return fields


def _history(raw: str | None) -> list[str]:
    """The earlier tries' tracebacks (a JSON list of strings), the newest MAX_HISTORY."""
    if not raw:
        return []
    try:
        tries = json.loads(raw)
    except (ValueError, RecursionError):
        return ["<exc_history is not valid JSON>"]
    if not isinstance(tries, list):
        return ["<exc_history is not a list>"]
    shown = [clip(t) if isinstance(t, str) else preview(t) for t in tries[-MAX_HISTORY:]]
    if len(tries) > MAX_HISTORY:
        shown.insert(0, f"<{len(tries) - MAX_HISTORY} earlier tries not shown>")
    return shown
