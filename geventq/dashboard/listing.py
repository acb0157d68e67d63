"""Pages of jobs: a queue's waiting jobs or one of its registries, newest first.

No request reads more than one page of jobs. A page costs two round trips: the
count and the page's ids (``LRANGE`` / ``ZREVRANGE`` by rank, O(log N + page)),
then one ``HMGET`` of a few fields per job on the page. Registries scored by
expiry (finished, failed, canceled) keep their live entries at the top ranks,
so the count (``ZCOUNT`` of scores still to come) and the ranks agree without
trimming anything.

Search scans a bounded window: the newest ``scan_limit`` entries (default
1,000), reading each one's id, function and exception text in one pipeline, and
pages over what matched. A match older than the window is not found; the page
says how many entries were searched out of how many.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import redis

from ..keys import Keys
from ..stats import EXPIRY_SCORED, reply_float, reply_int, reply_text
from .display import iso_time, last_line

SOURCES = ("queued", "started", "finished", "failed", "scheduled", "deferred", "canceled")
ROW_FIELDS = ("status", "func", "origin", "created_at", "enqueued_at", "started_at", "ended_at",
              "exc_info", "worker_name")
MAX_SEARCH_LENGTH = 200  # characters of a search text


@dataclass
class JobRow:
    """One line of a list of jobs (``missing``: the id is listed but its hash is gone)."""

    id: str
    status: str = ""
    func: str = ""
    origin: str = ""
    created_at: float | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    exception: str = ""  # the last line of exc_info
    worker_name: str = ""
    missing: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status or None, "func_name": self.func or None,
                "origin": self.origin or None, "created_at": iso_time(self.created_at),
                "enqueued_at": iso_time(self.enqueued_at), "started_at": iso_time(self.started_at),
                "ended_at": iso_time(self.ended_at), "exception": self.exception or None,
                "worker_name": self.worker_name or None, "missing": self.missing}


@dataclass
class Page:
    """One page of jobs and where it stands."""

    source: str
    number: int  # 1-based
    size: int
    total: int  # entries listed (with a search: the matches found)
    rows: list[JobRow] = field(default_factory=list)
    search: str = ""
    scanned: int = 0  # entries the search looked at
    source_total: int = 0  # entries in the queue or registry

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "page": self.number, "page_size": self.size,
                "pages": self.pages, "total": self.total, "search": self.search or None,
                "scanned": self.scanned, "source_total": self.source_total,
                "jobs": [row.as_dict() for row in self.rows]}


class JobList:
    """The jobs of one queue (``queued``) or one of its registries, newest first.

    ``scheduled`` lists the job due soonest first: what runs next.
    """

    def __init__(self, connection: redis.Redis, keys: Keys, queue: str, source: str,
                 now: float):
        if source not in SOURCES:
            raise ValueError(f"unknown registry {source!r}: one of {', '.join(SOURCES)}")
        self.connection, self.keys, self.queue, self.source = connection, keys, queue, source
        self.key = keys.queue(queue) if source == "queued" else keys.registry(source, queue)
        self.now = now

    def _count(self, pipe: Any) -> None:
        if self.source == "queued":
            pipe.llen(self.key)
        elif self.source in EXPIRY_SCORED:
            pipe.zcount(self.key, f"({self.now!r}", "+inf")
        else:
            pipe.zcard(self.key)

    def _ids(self, pipe: Any, start: int, stop: int) -> None:
        """Ids of the newest-first ranks ``start``..``stop`` (inclusive)."""
        if self.source == "queued":  # the tail is the newest: read backwards from it
            pipe.lrange(self.key, -stop - 1, -start - 1)
        elif self.source == "scheduled":
            pipe.zrange(self.key, start, stop)
        else:
            pipe.zrevrange(self.key, start, stop)

    def _window(self, start: int, stop: int) -> tuple[int, list[str]]:
        """(count, ids of ranks start..stop within the count), in one round trip."""
        pipe = self.connection.pipeline(transaction=False)
        self._count(pipe)
        self._ids(pipe, start, stop)
        count, ids = pipe.execute(raise_on_error=False)
        count = max(0, reply_int(count))
        ids = [reply_text(i) for i in ids] if isinstance(ids, list) else []
        if self.source == "queued":
            ids.reverse()
        return count, ids[:max(0, count - start)]

    def page(self, number: int, size: int) -> Page:
        """Page ``number`` (1-based) of ``size`` jobs."""
        number = max(1, number)
        start = (number - 1) * size
        count, ids = self._window(start, start + size - 1)
        rows = [row for row, _ in self._rows(ids)]
        return Page(self.source, number, size, count, rows, source_total=count)

    def search(self, text: str, number: int, size: int, scan_limit: int) -> Page:
        """Page ``number`` of the jobs among the newest ``scan_limit`` whose id, function
        or exception text holds ``text`` (case-insensitive)."""
        text = text[:MAX_SEARCH_LENGTH]
        count, matches = self.matches(text, scan_limit)
        number = max(1, number)
        start = (number - 1) * size
        return Page(self.source, number, size, len(matches), matches[start:start + size],
                    search=text, scanned=min(count, scan_limit), source_total=count)

    def matches(self, text: str, scan_limit: int) -> tuple[int, list[JobRow]]:
        """(entries in the list, the rows that match ``text``) among the newest ``scan_limit``."""
        needle = text[:MAX_SEARCH_LENGTH].lower()
        count, ids = self._window(0, max(0, scan_limit - 1))
        found = [row for row, exc_info in self._rows(ids)
                 if needle in row.id.lower() or needle in row.func.lower()
                 or needle in exc_info.lower()]
        return count, found

    def _rows(self, ids: list[str]) -> list[tuple[JobRow, str]]:
        """(row, full exc_info) of each id, from one pipeline of HMGETs."""
        if not ids:
            return []
        pipe = self.connection.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self.keys.job(job_id), ROW_FIELDS)
        rows = []
        for job_id, values in zip(ids, pipe.execute(raise_on_error=False)):
            if not isinstance(values, list) or all(v is None for v in values):
                rows.append((JobRow(job_id, missing=True), ""))
                continue
            (status, func, origin, created, enqueued, started, ended, exc_info,
             worker) = map(reply_text, values)
            rows.append((JobRow(job_id, status, func, origin, reply_float(created),
                                reply_float(enqueued), reply_float(started), reply_float(ended),
                                last_line(exc_info), worker), exc_info))
        return rows
