"""The text of ``geventq info``."""

from __future__ import annotations

import redis

from ..keys import Keys


def render_info(connection: redis.Redis, keys: Keys, queue_names: list[str]) -> str:
    """Queues with their lengths and registry counts, then workers by pool."""
    from ..queue import Queue
    from ..worker.base import Worker

    queues = [Queue(n, connection=connection, keys=keys) for n in queue_names] or \
        Queue.all(connection=connection, keys=keys)
    lines = [f"{len(queues)} queue(s)"]
    for q in queues:
        counts = [f"queued {q.count}"] + [
            f"{kind} {getattr(q, kind + '_job_registry').count}"
            for kind in ("started", "finished", "failed", "deferred", "scheduled", "canceled")]
        lines.append(f"  {q.name:<20} " + "  ".join(counts))
    workers = Worker.all(connection=connection, keys=keys)
    if queue_names:
        workers = [w for w in workers if set(w.queue_names) & set(queue_names)]
    lines.append(f"{len(workers)} worker(s)")
    by_pool: dict[str, list[Worker]] = {}
    for worker in workers:
        by_pool.setdefault(worker._loaded.get("pool") or "", []).append(worker)
    for pool, members in sorted(by_pool.items()):
        indent = "  "
        if pool:
            lines.append(f"  pool {pool}: {len(members)} worker(s)")
            indent = "    "
        for w in members:
            rec = w._loaded
            current = w.current_job_ids
            extra = f"  blocked-hub events {rec['hub_blocked']}" if rec.get("hub_blocked") else ""
            lines.append(
                f"{indent}{w.name:<30} {w.get_state():<9} queues={','.join(w.queue_names)}"
                f"  running={len(current)}  ok={rec.get('successful', 0)}"
                f"  failed={rec.get('failed', 0)}{extra}")
            for job_id in current[:20]:
                lines.append(f"{indent}  - {job_id}")
    from ..control import is_suspended
    from ..scheduler import render_schedule

    lines += render_schedule(connection, keys, [q.name for q in queues])
    if is_suspended(connection, keys):
        lines.append("workers are SUSPENDED (geventq resume)")
    return "\n".join(lines)
