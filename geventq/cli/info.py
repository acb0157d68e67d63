"""The text of ``geventq info``.

Everything shown is read from Redis, which anyone may have written to: a value
geventq cannot use is shown marked (``<invalid queue name b'a b'>``, ``?``),
never a traceback, and text is shown with its control characters escaped.
"""

from __future__ import annotations

import redis

from ..keys import Keys


def render_info(connection: redis.Redis, keys: Keys, queue_names: list[str]) -> str:
    """Queues with their lengths and registry counts, then workers by pool."""
    from ..queue import Queue, stored_queue_names
    from ..utils import printable, text_ids
    from ..worker.base import Worker, stored_number

    invalid: list[bytes] = []
    if queue_names:
        queues = [Queue(n, connection=connection, keys=keys) for n in queue_names]
    else:
        names, invalid = stored_queue_names(connection, keys)
        queues = [Queue(n, connection=connection, keys=keys) for n in names]
    lines = [f"{len(queues)} queue(s)"]
    for q in queues:
        counts = [f"queued {q.count}"] + [
            f"{kind} {getattr(q, kind + '_job_registry').count}"
            for kind in ("started", "finished", "failed", "deferred", "scheduled", "canceled")]
        lines.append(f"  {printable(q.name):<20} " + "  ".join(counts))
    lines += [f"  <invalid queue name {raw!r}>" for raw in invalid]

    workers = Worker.all(connection=connection, keys=keys)
    if queue_names:
        workers = [w for w in workers if set(w.queue_names) & set(queue_names)]
    lines.append(f"{len(workers)} worker(s)")
    if not queue_names:
        members = connection.smembers(keys.workers)
        lines += [f"  <invalid worker name {raw!r}>" for raw in sorted(members)
                  if not text_ids([raw])]
    by_pool: dict[str, list[Worker]] = {}
    for worker in workers:
        by_pool.setdefault(worker.record.get("pool") or "", []).append(worker)
    for pool, members in sorted(by_pool.items()):
        indent = "  "
        if pool:
            lines.append(f"  pool {printable(pool)}: {len(members)} worker(s)")
            indent = "    "
        for w in members:
            rec = w.record
            current = w.current_job_ids
            ok, failed = (stored_number(rec.get(f, 0), int) for f in ("successful", "failed"))
            blocked = stored_number(rec.get("hub_blocked", 0), int)
            extra = f"  blocked-hub events {_number(blocked)}" if blocked != 0 else ""
            lines.append(
                f"{indent}{printable(w.name):<30} {w.get_state():<9} "
                f"queues={printable(','.join(w.queue_names))}  running={len(current)}"
                f"  ok={_number(ok)}  failed={_number(failed)}{extra}")
            for job_id in current[:20]:
                lines.append(f"{indent}  - {printable(job_id)}")
    from ..control import is_suspended
    from ..scheduler import render_schedule

    lines += render_schedule(connection, keys, [q.name for q in queues])
    if is_suspended(connection, keys):
        lines.append("workers are SUSPENDED (geventq resume)")
    return "\n".join(lines)


def _number(value: int | None) -> str:
    return "?" if value is None else str(value)
