"""Job progress and events (API section 9): a mixin of :class:`geventq.job.Job`.

``set_progress`` stores the progress in the job's hash (field ``progress``, JSON) and
adds a ``progress`` event to the job's events stream, in one script call. The end
script (``end.lua``/``end_batch.lua``) adds the end event (``finished``, ``failed``
or ``stopped``) to that stream when it exists, in the same step that ends the job,
and gives the stream a short expiry (:data:`ENDED_EVENTS_TTL`).

``events()`` first makes sure the stream exists while the job has not ended (one
script call, so the end cannot slip between the check and the listening), then
replays the stream (the latest progress and, if it came, the end) and blocks on
``XREAD`` for what follows: an update reaches a listener as soon as Redis has it.
The only reads that are not driven by the stream are a status check once per
second of silence, for the ends no worker writes (canceled, deleted, or failed by
recovery after the worker died).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from . import scripts
from .exceptions import NoSuchJobError
from .utils import as_str, now, to_datetime

if TYPE_CHECKING:
    import redis

    from .keys import Keys

ENDED_EVENTS_TTL = 300  # seconds the stream stays after the end event (written in the Lua)
LISTENING_TTL = 86400  # seconds a stream lives without news while the job has not ended
MAX_EVENTS = 100  # progress events a stream keeps (about): late listeners need the latest
FINAL_EVENTS = ("finished", "failed", "stopped", "canceled")
_SILENCE = 1.0  # seconds of XREAD block between status checks


class JobProgress:
    """Progress and events of one job; mixed into Job (which provides id, key, keys,
    connection)."""

    id: str
    key: str
    keys: Keys
    connection: redis.Redis

    def set_progress(self, percent: float, message: str | None = None) -> bool:
        """Store and publish the progress of this running job (0-100, and a message).

        One script call. Returns False, and changes nothing, when the job is not
        ``started`` (it ended, or was canceled meanwhile). ValueError/TypeError name a
        bad argument before anything is written.
        """
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) \
                or not math.isfinite(percent) or not 0 <= percent <= 100:
            raise ValueError(f"set_progress: percent must be a number from 0 to 100, "
                             f"got {percent!r}")
        if message is not None and not isinstance(message, str):
            raise TypeError(f"set_progress: message must be a str or None, got "
                            f"{type(message).__name__}")
        stamp = now()
        stored = json.dumps({"percent": float(percent), "message": message, "at": stamp})
        reply = scripts.call(self.connection, "progress", [self.key, self.keys.events(self.id)], [
            repr(float(percent)), message or "", "1" if message is not None else "", repr(stamp),
            stored, LISTENING_TTL, MAX_EVENTS])
        return as_str(reply) == "started"

    @property
    def progress(self) -> dict[str, Any] | None:
        """``{"percent": float, "message": str | None, "at": datetime}``, read fresh, or None."""
        return parse_progress(self.connection.hget(self.key, "progress"))

    def events(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield this job's events: the latest progress, then each new one, then the end.

        Each event is a dict with ``"event"`` (``"progress"``, then one of
        ``"finished"``, ``"failed"``, ``"stopped"``, ``"canceled"``) and ``"at"`` (a UTC
        datetime); a progress event has ``"percent"`` and ``"message"`` too. The
        iterator ends after the end event; ``TimeoutError`` when ``timeout`` seconds
        pass first; ``NoSuchJobError`` when the job does not exist (or is deleted).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        stream = self.keys.events(self.id)
        # now, not at the first next(): from this call on, no event can be missed
        status, start, stored = scripts.call(self.connection, "events_open", [self.key, stream],
                                             [LISTENING_TTL])
        return _listen(self, stream, as_str(status), start, parse_progress(stored or None),
                       deadline, timeout)


def parse_progress(raw: Any) -> dict[str, Any] | None:
    """The stored ``progress`` field as a dict, or None (absent or not ours)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
        percent, at = float(value["percent"]), float(value["at"])
        message = value.get("message")
    except (ValueError, TypeError, KeyError):
        return None
    return {"percent": percent, "message": message if isinstance(message, str) else None,
            "at": to_datetime(at)}


def _event(fields: dict) -> dict[str, Any]:
    """A stream entry as an event dict."""
    text = {as_str(k): as_str(v) for k, v in fields.items()}
    event: dict[str, Any] = {"event": text.get("event", "")}
    try:
        event["at"] = to_datetime(float(text.get("at", "")))
    except ValueError:
        event["at"] = None
    if event["event"] == "progress":
        try:
            event["percent"] = float(text.get("percent", ""))
        except ValueError:
            event["percent"] = None
        event["message"] = text.get("message")
    return event


def _ended(job: JobProgress, status: str) -> dict[str, Any]:
    """The end event of a job whose end no stream recorded, from its hash."""
    at = job.connection.hget(job.key, "ended_at")
    try:
        stamp: datetime | None = to_datetime(float(at)) if at is not None else None
    except ValueError:
        stamp = None
    return {"event": status, "at": stamp}


def _listen(job: JobProgress, stream: str, status: str, start: Any,
            stored: dict[str, Any] | None, deadline: float | None,
            timeout: float | None) -> Iterator[dict[str, Any]]:
    """The events: the latest progress up to ``start`` (the stream's last entry when the
    listening began; else ``stored``, the job's progress then), then every event after
    it, to the end."""
    before = [e for e in _entries(job, stream, "-", start) if e["event"] != "open"]
    progress = [e for e in before if e["event"] == "progress"][-1:]
    if not progress and stored:  # none in the stream (expired, trimmed): the hash's
        progress = [{"event": "progress", **stored}]
    yield from progress
    final = next((e for e in before if e["event"] in FINAL_EVENTS), None)
    if final is not None:
        yield final
        return
    if status in FINAL_EVENTS:
        yield _ended(job, status)
        return
    if not status:
        raise NoSuchJobError(f"no job with id {job.id!r}")
    last_id = start
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError(f"job {job.id} did not end within {timeout} s")
        block = _SILENCE if remaining is None else max(0.001, min(_SILENCE, remaining))
        # geventq's clients speak RESP2: [[stream, [(entry id, fields), ...]]] or None
        # (redis-py's type also allows RESP3's dict)
        reply = cast("list[list[Any]] | None",
                     job.connection.xread({stream: last_id}, block=int(block * 1000)))
        if reply:
            for entry_id, fields in reply[0][1]:
                last_id = entry_id
                event = _event(fields)
                if event["event"] == "open":
                    continue
                yield event
                if event["event"] in FINAL_EVENTS:
                    return
            continue
        # a second of silence: look for the ends no worker writes (canceled, deleted, or
        # failed by recovery), after what the stream still holds
        status = as_str(job.connection.hget(job.key, "status"))
        if status in FINAL_EVENTS or not status:
            for event in _entries(job, stream, f"({as_str(last_id)}", "+"):
                if event["event"] == "open":
                    continue
                yield event
                if event["event"] in FINAL_EVENTS:
                    return
            if status:
                yield _ended(job, status)
                return
            raise NoSuchJobError(f"job {job.id} was deleted before it ended")


def _entries(job: JobProgress, stream: str, low: Any, high: Any) -> list[dict[str, Any]]:
    """The stream's events from ``low`` to ``high`` (XRANGE bounds)."""
    if as_str(high) == "0-0":
        return []
    # XRANGE answers a list of (entry id, fields), never nil (redis-py's type allows the nil
    # entries XCLAIM may answer)
    entries = cast("list[tuple[Any, dict]]", job.connection.xrange(stream, min=low, max=high))
    return [_event(fields) for _, fields in entries]
