"""Invariants of geventq's data in Redis, checked by the stateful and chaos tests.

:func:`check_all` reads the key space of some queues and asserts:

1. every job id the test knows is in exactly one place (its queue, or one registry
   of its queue: started, finished, failed, deferred, scheduled, canceled) and its
   hash's status says that place; or its hash is gone and the test says it may be
   (deleted, ``result_ttl=0``, its ``ttl`` ran out); an expired id may linger in its
   queue until a claim drops it, in no registry;
2. no queue or registry holds an id without a hash, except a queued id whose ``ttl``
   ran out (its score in the queue's ``expiring`` set is in the past);
3. every started job is in the in-flight set of a worker whose key is alive;
4. no deferred job waits on a parent that has ended, unless that parent failed
   (failed, stopped or canceled) and the child does not allow failure; a parent
   whose hash is gone (deleted) is not judged.

Each assertion counts as one check (:data:`CHECKS`), for the tests' statistics.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from geventq.keys import REGISTRY_NAMES, Keys
from geventq.utils import as_str

# the status a job's hash has in each place
STATUS_OF_PLACE = {
    "queue": {"queued"}, "started": {"started"}, "finished": {"finished"},
    "failed": {"failed", "stopped"}, "deferred": {"deferred"}, "scheduled": {"scheduled"},
    "canceled": {"canceled"},
}
ENDED = {"finished", "failed", "stopped", "canceled"}
FAILED = {"failed", "stopped", "canceled"}

CHECKS = {"count": 0}


def _ok(condition: bool, message: object) -> None:
    CHECKS["count"] += 1
    assert condition, message


def snapshot(connection, keys: Keys, queue_names: Iterable[str]) -> dict:
    """Where every id of these queues is: {'queue:<q>': [ids], '<registry>:<q>': {id: score},
    'expiring:<q>': {id: score}}."""
    pipe = connection.pipeline(transaction=True)  # one consistent view
    names = list(queue_names)
    for name in names:
        pipe.lrange(keys.queue(name), 0, -1)
        pipe.zrange(keys.expiring(name), 0, -1, withscores=True)
        for kind in REGISTRY_NAMES:
            pipe.zrange(keys.registry(kind, name), 0, -1, withscores=True)
    replies = iter(pipe.execute())
    view: dict = {}
    for name in names:
        view[f"queue:{name}"] = [as_str(i) for i in next(replies)]
        view[f"expiring:{name}"] = {as_str(i): s for i, s in next(replies)}
        for kind in REGISTRY_NAMES:
            view[f"{kind}:{name}"] = {as_str(i): s for i, s in next(replies)}
    return view


def places_of(view: dict, queue_names: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """{job id: [(place, queue name), ...]} from a :func:`snapshot`."""
    places: dict[str, list[tuple[str, str]]] = {}
    for name in queue_names:
        for job_id in view[f"queue:{name}"]:
            places.setdefault(job_id, []).append(("queue", name))
        for kind in REGISTRY_NAMES:
            for job_id in view[f"{kind}:{name}"]:
                places.setdefault(job_id, []).append((kind, name))
    return places


def check_all(connection, keys: Keys, queue_names: Iterable[str], known: Iterable[str],
              may_be_gone: set[str] | frozenset[str] = frozenset()) -> int:
    """Assert the invariants (module docstring) over ``queue_names``; ``known`` are the ids
    the test made, ``may_be_gone`` those whose hash may legitimately be missing.
    Returns how many checks were made."""
    before = CHECKS["count"]
    names = list(queue_names)
    view = snapshot(connection, keys, names)
    places = places_of(view, names)
    known = set(known)
    ids = set(places) | known
    fields = ("status", "origin", "deps", "allow_failure")
    pipe = connection.pipeline(transaction=False)
    for job_id in sorted(ids):
        pipe.hmget(keys.job(job_id), fields)
    hashes = {job_id: dict(zip(fields, (as_str(v) if v is not None else None for v in reply)))
              for job_id, reply in zip(sorted(ids), pipe.execute())}
    moment = time.time()

    def expired(job_id: str, queue: str) -> bool:
        score = view[f"expiring:{queue}"].get(job_id)
        return score is not None and score <= moment + 1  # ttl is whole seconds

    for job_id in sorted(ids):
        where = places.get(job_id, [])
        status = hashes[job_id]["status"]
        if status is None:  # 1. and 2.: gone
            _ok(job_id in may_be_gone or job_id not in known,
                f"job {job_id} lost its hash (places {where})")
            _ok(all(place == "queue" and expired(job_id, queue) for place, queue in where),
                f"job {job_id} has no hash but is listed in {where}")
            continue
        _ok(len(where) == 1, f"job {job_id} ({status}) is in {len(where)} places: {where}")
        place, queue = where[0]
        _ok(status in STATUS_OF_PLACE[place], f"job {job_id} is in {place} but its status is {status}")
        _ok(hashes[job_id]["origin"] == queue, f"job {job_id} of {hashes[job_id]['origin']} is in {queue}")

    # 3. every started job has a live owner
    started = [job_id for name in names for job_id in view[f"started:{name}"]]
    if started:
        workers = [as_str(w) for w in connection.smembers(keys.workers)]
        pipe = connection.pipeline(transaction=False)
        for worker in workers:
            pipe.exists(keys.worker(worker))
            pipe.smembers(keys.worker_jobs(worker))
        replies = pipe.execute()
        owners: dict[str, list[str]] = {}
        for i, worker in enumerate(workers):
            if replies[2 * i]:
                for job_id in replies[2 * i + 1]:
                    owners.setdefault(as_str(job_id), []).append(worker)
        for job_id in started:
            _ok(len(owners.get(job_id, [])) == 1,
                f"started job {job_id} has live owners {owners.get(job_id, [])}")

    # 4. no deferred job waits on a parent that has ended, unless it failed without allow_failure
    for job_id in (j for name in names for j in view[f"deferred:{name}"]):
        waits = [as_str(p) for p in connection.smembers(keys.pending(job_id))]
        child = hashes.get(job_id) or {}
        allow = child.get("allow_failure") == "1"
        _ok(bool(waits), f"deferred job {job_id} waits on nothing")
        for parent in waits:
            parent_status = as_str(connection.hget(keys.job(parent), "status") or b"") or None
            if parent_status is None:
                continue  # deleted: not judged
            _ok(parent_status not in ENDED or (parent_status in FAILED and not allow),
                f"deferred job {job_id} (allow_failure={allow}) waits on {parent}, which is "
                f"{parent_status}")
    return CHECKS["count"] - before
