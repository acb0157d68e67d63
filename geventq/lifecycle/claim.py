"""Claim and start: a claim moves ids from queues into started registries and the
worker's in-flight set in one step (``claim.lua``); ``start`` then marks them started
and loads them (``start.lua``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from .. import scripts
from ..job import Job
from ..keys import Keys
from ..serializers import resolve_serializer
from ..utils import as_str, now

logger = logging.getLogger("geventq.worker")

# a job hash without these cannot run; it fails with a reason instead
_REQUIRED_FIELDS = ("func", "data")


def claim(connection: redis.Redis, keys: Keys, queue_names: Sequence[str], worker_name: str,
          count: int, channel: scripts.Channel | None = None) -> list[tuple[str, str]]:
    """Claim up to ``count`` jobs in queue priority order: [(queue name, job id)].

    ``channel``: a connection the caller keeps for its calls (see scripts.Channel).
    """
    reply = _claim_past_expired(connection, keys, queue_names, worker_name, count, 0, channel,
                                None)
    return _claimed(queue_names, reply[0])


def _claim_past_expired(connection: redis.Redis, keys: Keys, queue_names: Sequence[str],
                        worker_name: str, count: int, peek: int,
                        channel: scripts.Channel | None, reply: list | None) -> list:
    """The claim's reply, claimed again while a claim took nothing because it stopped at
    its budget of expired ids to drop (``claim.lua``): a worker must not take a queue
    whose head holds thousands of expired ids for an empty one."""
    while reply is None or (not reply[0] and reply[2]):
        reply = scripts.call(channel or connection, "claim",
                             *_claim_call(keys, queue_names, worker_name, count, peek))
    return reply


def _claim_call(keys: Keys, queue_names: Sequence[str], worker_name: str,
                count: int, peek: int = 0) -> tuple[list, list]:
    script_keys = []
    for name in queue_names:
        script_keys += [keys.queue(name), keys.registry("started", name), keys.expiring(name),
                        keys.wake(name)]
    # paused: geventq.flow; limits and their timers: geventq.limits
    script_keys += [keys.worker_jobs(worker_name), keys.paused, keys.limits, keys.limit_timers]
    return script_keys, [len(queue_names), count, repr(now()), peek, *queue_names]


def _claimed(queue_names: Sequence[str], flat: list) -> list[tuple[str, str]]:
    return [(queue_names[flat[i]], as_str(flat[i + 1])) for i in range(0, len(flat), 2)]


def start(connection: redis.Redis, keys: Keys, worker_name: str,
          claimed: Sequence[tuple[str, str]], job_class: type[Job] = Job,
          serializer: Any = None, channel: scripts.Channel | None = None) -> list[Job]:
    """Mark claimed jobs started and load them (jobs whose ttl ran out are dropped)."""
    if not claimed:
        return []
    reply = scripts.call(channel or connection, "start",
                         *_start_call(keys, worker_name, claimed, guarded=False))
    return _started(connection, keys, claimed, reply, job_class, serializer)


@dataclass
class Claim:
    """What :func:`claim_and_start` did: the ids it claimed, the jobs it started (loaded),
    the ids the queues hold next (candidates for the next claim), and ``retry_in``: the
    seconds until the nearest limit timer (jobs held back by a limit may start then), or
    None: the longest an idle worker should wait before it claims again."""

    claimed: list[tuple[str, str]]
    jobs: list[Job]
    peeked: list[tuple[str, str]]
    retry_in: float | None = None


def claim_and_start(connection: redis.Redis, keys: Keys, queue_names: Sequence[str],
                    worker_name: str, count: int, candidates: Sequence[tuple[str, str]] = (),
                    peek: int = 0, job_class: type[Job] = Job, serializer: Any = None,
                    channel: scripts.Channel | None = None) -> Claim:
    """:func:`claim`, then :func:`start` what was claimed, in one round trip when it can.

    ``candidates`` [(queue, id)] are the jobs this claim is expected to take: the
    ids a wake token named, or those the previous claim peeked at. Their start goes
    in the claim's round trip and acts only on those the claim took; any other
    claimed job is started in a second round trip. ``peek`` asks for the next ids
    the queues hold, the candidates of the next claim.
    """
    batch = scripts.ScriptBatch()
    batch.add("claim", *_claim_call(keys, queue_names, worker_name, count, peek))
    candidates = list(candidates)
    if candidates:
        batch.add("start", *_start_call(keys, worker_name, candidates, guarded=True))
    replies = batch.execute(channel or connection)
    reply = _claim_past_expired(connection, keys, queue_names, worker_name, count, peek,
                                channel, replies[0])
    claimed = _claimed(queue_names, reply[0])
    peeked = _claimed(queue_names, reply[1])
    # false: not taken by this claim; 0: taken, but its hash is gone (dropped); else started
    started = replies[1] if candidates else []
    acted = [(c, r) for c, r in zip(candidates, started) if r is not None]
    jobs = _started(connection, keys, [c for c, _ in acted], [r for _, r in acted],
                    job_class, serializer)
    done = {c for c, _ in acted}
    rest = [c for c in claimed if c not in done]
    retry_in = reply[3] / 1000 if len(reply) > 3 and reply[3] >= 0 else None
    return Claim(claimed, jobs + start(connection, keys, worker_name, rest, job_class,
                                       serializer, channel), peeked, retry_in)


def _start_call(keys: Keys, worker_name: str, claimed: Sequence[tuple[str, str]],
                guarded: bool) -> tuple[list, list]:
    script_keys = [keys.worker_jobs(worker_name)]
    for queue_name, job_id in claimed:
        script_keys += [keys.job(job_id), keys.registry("started", queue_name)]
    return script_keys, [repr(now()), worker_name, "1" if guarded else "",
                         *(job_id for _, job_id in claimed)]


def _started(connection: redis.Redis, keys: Keys, claimed: Sequence[tuple[str, str]],
             reply: list, job_class: type[Job], serializer: Any) -> list[Job]:
    jobs = []
    serializer = resolve_serializer(serializer)  # once, not per job
    for (queue_name, job_id), flat in zip(claimed, reply):
        if not flat:
            logger.warning("job %s taken from queue %s no longer exists (its ttl ran out or it "
                           "was deleted): skipped", job_id, queue_name)
            continue
        if not isinstance(flat, list):  # start.lua answered its status: it must not run
            logger.warning("job %s taken from queue %s is %s, no longer queued (canceled "
                           "before it started?): skipped", job_id, queue_name, as_str(flat))
            continue
        job = job_class.from_resolved(job_id, connection, serializer, keys)
        jobs.append(_load_started(job, dict(zip(flat[::2], flat[1::2])), queue_name))
    return jobs


def _load_started(job: Job, mapping: dict, queue_name: str) -> Job:
    """Load a started job; a broken hash gives a job whose run fails with the reason.

    ``job.load_error`` (read by :func:`geventq.execution.execute`) says what is wrong.
    """
    error = None
    try:
        job.load_mapping(mapping)
    except Exception as exc:  # corrupt fields: the job must still end, as failed
        error = f"{type(exc).__name__}: {exc}"
    present = mapping.keys()
    missing = [f for f in _REQUIRED_FIELDS if f.encode() not in present and f not in present]
    if missing:
        error = f"its hash has no {', '.join(repr(f) for f in missing)} field" + \
            ("s" if len(missing) > 1 else "")
    if not job.origin:
        job.origin = queue_name  # the queue it was claimed from is where it ends
    if error:
        job.load_error = f"job {job.id} cannot be loaded: {error}"
    return job


