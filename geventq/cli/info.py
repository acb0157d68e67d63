"""The text of ``geventq info``.

Everything shown is read from Redis, where anyone may have written: a value
geventq cannot use is shown marked (``<invalid queue name b'a b'>``, ``?``,
``<cannot read: ...>`` for a key of another type), never a traceback, and text
is shown with its control characters escaped.
"""

from __future__ import annotations

import redis

from ..keys import Keys


def render_info(connection: redis.Redis, keys: Keys, queue_names: list[str]) -> str:
    """Queues with their lengths and registry counts, then workers by pool."""
    from ..control import is_suspended
    from ..queue import Queue, stored_queue_names
    from ..scheduler import render_schedule

    lines: list[str] = []
    invalid: list[bytes] = []
    if queue_names:
        queues = [Queue(n, connection=connection, keys=keys) for n in queue_names]
    else:
        try:
            names, invalid = stored_queue_names(connection, keys)
        except redis.ResponseError as exc:  # the key holds another type
            names = []
            lines.append(f"<cannot read {keys.queues}: {exc}>")
        queues = [Queue(n, connection=connection, keys=keys) for n in names]
    lines.insert(0, f"{len(queues)} queue(s)")
    paused = _paused(connection, keys)
    lines += [_queue_line(q) + ("  PAUSED" if q.name in paused else "") for q in queues]
    lines += [f"  <invalid queue name {raw!r}>" for raw in invalid]
    lines += _limit_lines(connection, keys)
    lines += _worker_lines(connection, keys, queue_names)
    try:
        lines += render_schedule(connection, keys, [q.name for q in queues])
    except redis.ResponseError as exc:
        lines.append(f"scheduler: <cannot read: {exc}>")
    if is_suspended(connection, keys):
        lines.append("workers are SUSPENDED (geventq resume)")
    return "\n".join(lines)


def _queue_line(queue) -> str:
    from ..registry import REGISTRY_CLASSES
    from ..utils import printable

    try:
        counts = [f"queued {queue.count}"] + [
            f"{kind} {REGISTRY_CLASSES[kind](queue=queue).count}"
            for kind in ("started", "finished", "failed", "deferred", "scheduled", "canceled")]
    except redis.ResponseError as exc:  # one of its keys holds another type
        return f"  {printable(queue.name):<20} <cannot read: {exc}>"
    return f"  {printable(queue.name):<20} " + "  ".join(counts)


def _limit_lines(connection: redis.Redis, keys: Keys) -> list[str]:
    """The limit keys, with their running and parked jobs (see geventq.limits)."""
    from ..limits import limit_lines
    from ..utils import printable

    try:
        return [printable(line) for line in limit_lines(connection, keys)]
    except redis.ResponseError as exc:  # the limits hash holds another type
        return [f"limits: <cannot read {keys.limits}: {exc}>"]


def _paused(connection: redis.Redis, keys: Keys) -> set[str]:
    """The paused queues' names (a paused set of another type reads as none)."""
    from ..flow import paused_names

    try:
        return paused_names(connection, keys)
    except redis.ResponseError:
        return set()


def _worker_lines(connection: redis.Redis, keys: Keys, queue_names: list[str]) -> list[str]:
    """'N worker(s)', then a line per worker (grouped by pool) with its running jobs."""
    from ..utils import printable, text_ids
    from ..worker.base import Worker

    try:
        workers = Worker.all(connection=connection, keys=keys)
        members = connection.smembers(keys.workers)
    except redis.ResponseError as exc:
        return ["0 worker(s)", f"  <cannot read {keys.workers}: {exc}>"]
    if queue_names:
        workers = [w for w in workers if set(w.queue_names) & set(queue_names)]
    lines = [f"{len(workers)} worker(s)"]
    if not queue_names:
        lines += [f"  <invalid worker name {raw!r}>" for raw in sorted(members)
                  if not text_ids([raw])]
    by_pool: dict[str, list[Worker]] = {}
    for worker in workers:
        by_pool.setdefault(worker.record.get("pool") or "", []).append(worker)
    for pool, pooled in sorted(by_pool.items()):
        indent = "  "
        if pool:
            lines.append(f"  pool {printable(pool)}: {len(pooled)} worker(s)")
            indent = "    "
        for member in pooled:
            lines += _worker_line(member, indent)
    return lines


def _worker_line(worker, indent: str) -> list[str]:
    from ..utils import printable
    from ..worker.base import stored_number

    rec = worker.record
    try:
        current, state = worker.current_job_ids, worker.get_state()
    except redis.ResponseError as exc:
        return [f"{indent}{printable(worker.name):<30} <cannot read: {exc}>"]
    ok, failed, blocked = (stored_number(rec.get(f, 0), int)
                           for f in ("successful", "failed", "hub_blocked"))
    extra = f"  blocked-hub events {_number(blocked)}" if blocked != 0 else ""
    lines = [f"{indent}{printable(worker.name):<30} {state:<9} "
             f"queues={printable(','.join(worker.queue_names))}  running={len(current)}"
             f"  ok={_number(ok)}  failed={_number(failed)}{extra}"]
    lines += [f"{indent}  - {printable(job_id)}" for job_id in current[:20]]
    return lines


def _number(value: int | None) -> str:
    return "?" if value is None else str(value)
