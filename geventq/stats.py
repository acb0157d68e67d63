"""What an operator sees of a deployment, read from Redis in two round trips.

One :func:`take_snapshot` gives, per queue, its job counts per state, the age of
the job that has waited longest at its head and whether it is paused; per worker
its state, queues, pool, slots (busy/free), hub-blocked count and current jobs;
the pools those workers belong to; and whether workers are suspended. The
dashboard's overview, ``geventq info --json`` and the metrics exporter share it.

Cost: round trip 1 reads the sets of queue and worker names, the suspend flag and
the set of paused queues (4 commands); round trip 2 sends :data:`QUEUE_COMMANDS` commands per queue and
:data:`WORKER_COMMANDS` per worker, each O(1) or O(log N) in the size of a
registry (counts are ``ZCARD``/``ZCOUNT``, never a scan). It only reads: expired
entries of the registries scored by expiry are left out by score, not trimmed.

Everything read back is untrusted: a field that does not parse counts as 0 (or
unknown), a key of the wrong type as empty, and no value ever raises.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from .keys import Keys
from .utils import now as clock

# the states a queue's jobs are counted in (the order of `geventq_queue_jobs{state}`)
QUEUE_STATES = ("queued", "started", "scheduled", "deferred", "failed", "finished", "canceled")
# registries scored by their expiry time: an entry whose score has passed is gone
EXPIRY_SCORED = ("failed", "finished", "canceled")
OLDEST_PEEK = 5  # queued jobs at the head whose wait is looked at for the oldest job's age
MAX_QUEUES = 1000  # a snapshot covers at most this many queues (by name), then says truncated
MAX_WORKERS = 1000  # likewise for workers
MAX_JOB_IDS = 20  # current job ids listed per worker (all of them are counted)
QUEUE_COMMANDS = 9  # LLEN, ZCOUNT expiring, 6 registry counts, SORT ... GET (the head's ages)
WORKER_COMMANDS = 3  # HGETALL, SCARD and SRANDMEMBER of its in-flight set


def pause_supported() -> bool:
    """Whether queues can be paused (``Queue.pause``/``unpause``/``is_paused``, issue 14):
    they can, and each queue's ``paused`` is read from the paused set (see geventq.flow)."""
    return True


@dataclass
class QueueStats:
    """The counts of one queue, as ``GET /api/queues`` shows them."""

    name: str
    queued: int = 0
    started: int = 0
    scheduled: int = 0
    deferred: int = 0
    failed: int = 0
    finished: int = 0
    canceled: int = 0
    oldest_job_age: float = 0.0  # seconds the longest-waiting head job has waited; 0 when empty
    paused: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WorkerStats:
    """One live worker."""

    name: str
    hostname: str = ""
    pid: int = 0
    state: str = "idle"  # idle, busy, suspended
    queues: list[str] = field(default_factory=list)
    pool: str = ""
    mode: str = ""
    slots: int = 0  # jobs it can run at once: greenlets plus forked children
    busy: int = 0  # jobs it holds now
    free: int = 0
    hub_blocked: int = 0
    current_job_ids: list[str] = field(default_factory=list)  # at most MAX_JOB_IDS of them
    successful: int = 0
    failed: int = 0
    working_time: float = 0.0
    birth: float | None = None
    last_heartbeat: float | None = None
    version: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PoolStats:
    """The workers of one ``geventq pool`` (name ``""``: workers started on their own)."""

    name: str
    workers: int = 0
    busy: int = 0
    free: int = 0
    hub_blocked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Snapshot:
    """Everything :func:`take_snapshot` read, and what it cost."""

    taken_at: float
    queues: list[QueueStats]
    workers: list[WorkerStats]
    pools: list[PoolStats]
    suspended: bool
    truncated: bool  # more queues or workers exist than a snapshot covers
    commands: int  # Redis commands sent
    round_trips: int

    def queue(self, name: str) -> QueueStats | None:
        return next((q for q in self.queues if q.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {"taken_at": self.taken_at, "suspended": self.suspended,
                "truncated": self.truncated,
                "queues": [q.as_dict() for q in self.queues],
                "workers": [w.as_dict() for w in self.workers],
                "pools": [p.as_dict() for p in self.pools]}


def take_snapshot(connection: redis.Redis, keys: Keys, queue_names: Iterable[str] | None = None,
                  *, now: float | None = None, max_job_ids: int = MAX_JOB_IDS) -> Snapshot:
    """Read the state of every queue (or of ``queue_names``) and every live worker.

    With ``queue_names``, only the workers listening on one of them are kept.
    """
    stamp = clock() if now is None else now
    pipe = connection.pipeline(transaction=False)
    wanted = None if queue_names is None else [str(n) for n in queue_names]
    if wanted is None:
        pipe.smembers(keys.queues)
    pipe.smembers(keys.workers)
    pipe.exists(keys.suspended)
    pipe.smembers(keys.paused)
    first = pipe.execute(raise_on_error=False)
    commands = len(first)
    if wanted is None:
        wanted = _names(first.pop(0))
    worker_names, suspended = _names(first[0]), reply_int(first[1]) > 0
    paused = set(_names(first[2]))
    truncated = len(wanted) > MAX_QUEUES or len(worker_names) > MAX_WORKERS
    wanted, worker_names = wanted[:MAX_QUEUES], worker_names[:MAX_WORKERS]

    pipe = connection.pipeline(transaction=False)
    for name in wanted:
        _queue_commands(pipe, keys, name, stamp)
    for name in worker_names:
        pipe.hgetall(keys.worker(name))
        pipe.scard(keys.worker_jobs(name))
        pipe.srandmember(keys.worker_jobs(name), max_job_ids)
    replies = pipe.execute(raise_on_error=False) if len(pipe) else []
    commands += len(replies)
    round_trips = 2
    queue_replies = [replies[i * QUEUE_COMMANDS:(i + 1) * QUEUE_COMMANDS] for i in range(len(wanted))]
    # the heads' ages through SORT ... GET need a prefix free of SORT's pattern characters and
    # read access to every key (an ACL user with key patterns is refused): else, a 3rd and 4th trip
    retry = [i for i, r in enumerate(queue_replies) if _needs_fallback(r[-1])]
    if retry:
        heads, sent = _head_enqueued_at(connection, keys, [wanted[i] for i in retry])
        for i, stamps in zip(retry, heads):
            queue_replies[i][-1] = stamps
        commands += sent
        round_trips += 2
    queues = [_queue_stats(name, r, stamp) for name, r in zip(wanted, queue_replies)]
    for queue in queues:
        queue.paused = queue.name in paused
    offset = len(wanted) * QUEUE_COMMANDS
    workers = []
    for i, name in enumerate(worker_names):
        record, busy, sample = replies[offset + i * WORKER_COMMANDS: offset + (i + 1) * WORKER_COMMANDS]
        worker = _worker_stats(name, record, busy, sample)
        if worker is not None:
            workers.append(worker)
    if queue_names is not None:
        workers = [w for w in workers if set(w.queues) & set(wanted)]
    return Snapshot(stamp, queues, workers, _pools(workers), suspended, truncated, commands,
                    round_trips)


# -- queues ---------------------------------------------------------------------

def _queue_commands(pipe: Any, keys: Keys, name: str, now: float) -> None:
    """The QUEUE_COMMANDS reads of one queue."""
    pipe.llen(keys.queue(name))
    pipe.zcount(keys.expiring(name), "-inf", now)  # queued ids whose ttl ran out, not purged yet
    for state in QUEUE_STATES[1:]:
        key = keys.registry(state, name)
        if state in EXPIRY_SCORED:
            pipe.zcount(key, f"({now!r}", "+inf")
        else:
            pipe.zcard(key)
    if "*" in keys.prefix or "->" in keys.prefix:
        pipe.echo("no SORT pattern under this prefix")  # not a list: read in the fallback
    else:
        pipe.sort(keys.queue(name), start=0, num=OLDEST_PEEK, by="nosort",
                  get=[keys.job("*") + "->enqueued_at"])


def _head_enqueued_at(connection: redis.Redis, keys: Keys, names: list[str]) -> tuple[list[list], int]:
    """Without SORT: the head ids of each queue, then their ``enqueued_at`` (two round trips).

    Returns the stamps per queue and the number of commands sent.
    """
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.lrange(keys.queue(name), 0, OLDEST_PEEK - 1)
    heads = [r if isinstance(r, list) else [] for r in pipe.execute(raise_on_error=False)]
    pipe = connection.pipeline(transaction=False)
    for ids in heads:
        for job_id in ids:
            pipe.hget(keys.job(reply_text(job_id)), "enqueued_at")
    sent = len(names) + len(pipe)
    stamps = iter(pipe.execute(raise_on_error=False) if len(pipe) else [])
    return [[next(stamps) for _ in ids] for ids in heads], sent


def _needs_fallback(reply: Any) -> bool:
    """The SORT was not sent (the prefix) or refused (ACL); a key of the wrong type is not retried."""
    if isinstance(reply, redis.ResponseError):
        return "WRONGTYPE" not in str(reply)
    return isinstance(reply, bytes)


def _queue_stats(name: str, replies: list, now: float) -> QueueStats:
    length, expired, *counts, heads = replies
    stats = QueueStats(name, max(0, reply_int(length) - reply_int(expired)))
    for state, count in zip(QUEUE_STATES[1:], counts):
        setattr(stats, state, max(0, reply_int(count)))
    waits = [now - t for t in map(reply_float, heads if isinstance(heads, list) else []) if t is not None]
    stats.oldest_job_age = round(max([0.0, *waits]), 3) if stats.queued else 0.0
    return stats


# -- workers ----------------------------------------------------------------------

def _worker_stats(name: str, record: Any, busy: Any, sample: Any) -> WorkerStats | None:
    """A worker from its hash (None when the hash is gone: the worker is dead)."""
    if not isinstance(record, dict) or not record:
        return None
    fields = {reply_text(k): reply_text(v) for k, v in record.items()}
    queues = [q for q in fields.get("queues", "").split(",") if q]
    fork_queues = {q for q in fields.get("fork_queues", "").split(",") if q}
    green = reply_int(fields.get("concurrency")) if set(queues) - fork_queues else 0
    forked = reply_int(fields.get("fork_concurrency")) if fork_queues else 0
    slots, running = max(0, green) + max(0, forked), max(0, reply_int(busy))
    if fields.get("state") == "suspended":
        state = "suspended"
    else:
        state = "busy" if running else "idle"
    ids = sorted(reply_text(i) for i in sample) if isinstance(sample, list) else []
    return WorkerStats(
        name=name, hostname=fields.get("hostname", ""), pid=reply_int(fields.get("pid")), state=state,
        queues=queues, pool=fields.get("pool", ""), mode=fields.get("mode", ""), slots=slots,
        busy=running, free=max(0, slots - running), hub_blocked=max(0, reply_int(fields.get("hub_blocked"))),
        current_job_ids=ids, successful=max(0, reply_int(fields.get("successful"))),
        failed=max(0, reply_int(fields.get("failed"))),
        working_time=max(0.0, reply_float(fields.get("working_time")) or 0.0),
        birth=reply_float(fields.get("birth")), last_heartbeat=reply_float(fields.get("heartbeat")),
        version=fields.get("version", ""))


def _pools(workers: list[WorkerStats]) -> list[PoolStats]:
    pools: dict[str, PoolStats] = {}
    for worker in workers:
        pool = pools.setdefault(worker.pool, PoolStats(worker.pool))
        pool.workers += 1
        pool.busy += worker.busy
        pool.free += worker.free
        pool.hub_blocked += worker.hub_blocked
    return [pools[name] for name in sorted(pools)]


# -- reading untrusted replies --------------------------------------------------------

def reply_text(value: Any) -> str:
    """A reply as text (undecodable bytes replaced; anything else: "")."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _names(reply: Any) -> list[str]:
    """Sorted names from a set reply (an error or a wrong type reads as empty)."""
    if not isinstance(reply, (set, list)):
        return []
    return sorted({name for name in map(reply_text, reply) if name})


def reply_int(value: Any) -> int:
    """A reply as an int (garbage, an error or None: 0)."""
    if isinstance(value, bool) or isinstance(value, Exception):
        return 0
    if isinstance(value, int):
        return value
    number = reply_float(value)
    return int(number) if number is not None else 0


def reply_float(value: Any) -> float | None:
    """A reply as a finite float, else None."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
