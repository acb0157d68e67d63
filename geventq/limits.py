"""Limits per key (API section 8): ``Limit(key, concurrency=, rate=, per=)``.

A limit is decided in Redis, in the claim script (``claim.lua`` with the helpers
of ``_limits.lua``), so it holds across every worker on every host and costs no
round trip of its own. A job carries its key in the hash field ``limit`` (and its
definition in ``limit_def``); the latest definition of each key, written at
enqueue in the same round trip, is the one the claims apply (``Keys.limits``).
See docs/flow-control.md for the behaviour and docs/data-model.md for the keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .keys import Keys
from .utils import as_text

MAX_KEY_LENGTH = 200
MAX_CONCURRENCY = 1_000_000
MAX_RATE = 10_000  # starts per window: the window is a list of that many times at most
MAX_PER = 366 * 86400.0  # a year: longer windows are surely a mistake


class Limit:
    """At most ``concurrency`` jobs carrying ``key`` run at once, and at most ``rate`` of
    them start in any ``per`` seconds, across every worker. At least one of the two.

    Bad values raise ``ValueError`` (a value of the wrong type too), at once: nothing
    is written.
    """

    __slots__ = ("key", "concurrency", "rate", "per")

    def __init__(self, key: str, concurrency: int | None = None, rate: int | None = None,
                 per: float = 1.0) -> None:
        self.key = check_limit_key(key)
        self.concurrency = _positive_int(concurrency, "concurrency", MAX_CONCURRENCY)
        self.rate = _positive_int(rate, "rate", MAX_RATE)
        if isinstance(per, bool) or not isinstance(per, (int, float)) or not math.isfinite(per) \
                or not 0 < per <= MAX_PER:
            raise ValueError(f"Limit per= must be a number of seconds above 0 (at most "
                             f"{MAX_PER:.0f}), got {per!r}")
        self.per = float(per)
        if self.concurrency is None and self.rate is None:
            raise ValueError(f"Limit({key!r}) needs concurrency= or rate= (or both)")

    def definition(self) -> str:
        """The stored form: ``"concurrency rate per"``, ``-`` for a part not given."""
        return " ".join(["-" if self.concurrency is None else str(self.concurrency),
                         "-" if self.rate is None else str(self.rate), repr(self.per)])

    def __repr__(self) -> str:
        parts = [repr(self.key)]
        if self.concurrency is not None:
            parts.append(f"concurrency={self.concurrency}")
        if self.rate is not None:
            parts += [f"rate={self.rate}", f"per={self.per:g}"]
        return f"Limit({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limit) and (self.key, self.definition()) == (
            other.key, other.definition())

    def __hash__(self) -> int:
        return hash((self.key, self.definition()))


def check_limit_key(key: Any) -> str:
    """``key`` if it may name a limit: a non-empty string of printable characters, at most
    MAX_KEY_LENGTH long; else ValueError naming it."""
    if not isinstance(key, str):
        raise ValueError(f"a Limit key must be a string, got {type(key).__name__} {key!r}")
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValueError(f"a Limit key must be 1 to {MAX_KEY_LENGTH} printable characters, "
                         f"got {key!r}")
    return key


def _positive_int(value: Any, name: str, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ValueError(f"Limit {name}= must be a whole number from 1 to {high}, got {value!r}")
    return value


def check_limit(value: Any, is_async: bool = True) -> Limit | None:
    """The ``limit=`` option: None or a :class:`Limit`; refused where it cannot apply."""
    if value is None:
        return None
    if not isinstance(value, Limit):
        raise ValueError(f"limit= must be a geventq.Limit, got {type(value).__name__} {value!r}")
    if not is_async:
        raise ValueError(f"{value!r} cannot apply on an is_async=False queue: its jobs run "
                         "at once in the enqueuing process, not through a worker's claim")
    return value


def limit_fields(limit: Limit) -> dict[str, str]:
    """The job hash fields of a limited job."""
    return {"limit": limit.key, "limit_def": limit.definition()}


def definition_commands(keys: Keys, fields: Iterable[dict[str, Any]]) -> list[tuple]:
    """HSET commands storing the latest definition of each limit key among jobs' extra
    fields (sent in the enqueue's own round trip, before the jobs)."""
    latest: dict[str, str] = {}
    for extra in fields:
        name = extra.get("limit")
        if name is not None:
            latest[name] = extra["limit_def"]
    if not latest:
        return []
    pairs = [v for item in latest.items() for v in item]
    return [("HSET", keys.limits, *pairs)]


def limit_lines(connection: Any, keys: Keys, most: int = 20) -> list[str]:
    """``geventq info``'s lines about limit keys: per key (at most ``most``, those with jobs
    running or parked first), its definition, running jobs and parked jobs. Read only;
    whatever Redis holds that does not parse is shown as ``?``."""
    fields = connection.hgetall(keys.limits)
    names = sorted(as_text(k) for k in fields if "\t" not in as_text(k))
    if not names:
        return []
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.zcard(keys.limit_slots(name))
        pipe.llen(keys.limit_parked(name))
    counts = pipe.execute(raise_on_error=False)
    rows = []
    for i, name in enumerate(names):
        running, parked = (c if isinstance(c, int) else "?" for c in counts[2 * i:2 * i + 2])
        rows.append((running == 0 and parked == 0, name, running, parked))
    rows.sort(key=lambda row: (row[0], row[1]))
    lines = [f"{len(names)} limit key(s)"]
    for _, name, running, parked in rows[:most]:
        definition = as_text(fields.get(name.encode(), b"?"))
        lines.append(f"  {name:<30} {_describe(definition)}  running={running}  parked={parked}")
    if len(rows) > most:
        lines.append(f"  ... and {len(rows) - most} more")
    return lines


def _describe(definition: str) -> str:
    """"3 10 1.0" -> "concurrency 3, 10 per 1 s"."""
    parts = definition.split(" ")
    if len(parts) != 3:
        return "?"
    concurrency, rate, per = parts
    text = []
    if concurrency != "-":
        text.append(f"concurrency {concurrency}")
    if rate != "-":
        text.append(f"{rate} per {per.removesuffix('.0')} s")
    return ", ".join(text) or "?"
