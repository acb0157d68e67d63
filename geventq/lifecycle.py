"""Every state transition a worker makes, each one atomic in Redis.

Workers differ only in how they run a job; they all claim, start, end and
requeue jobs through these functions. Each transition is one Lua script, and
the batch forms send the transitions of many jobs in one round trip.

A claim moves ids from queues into started registries and the worker's
in-flight set in one step; ``start`` then marks them started and loads them.
Ending a job releases its dependents in the same step, so a dependent is
enqueued exactly once even when its parents end together on two workers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from . import endings as endings_
from . import scripts
from .defaults import DEFAULT_FAILURE_TTL, DEFAULT_MAX_ABANDONED_REQUEUES
from .endings import Ending, ascii_text
from .job import Job
from .keys import Keys
from .metrics.counting import count_call
from .redis_errors import describe, is_transient
from .releasing import child_args, child_keys, with_queues
from .retry import next_delay
from .serializers import resolve_serializer
from .utils import as_str, now

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
    script_keys += [keys.worker_jobs(worker_name), keys.paused]  # paused: geventq.flow
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
    and the ids the queues hold next (candidates for the next claim)."""

    claimed: list[tuple[str, str]]
    jobs: list[Job]
    peeked: list[tuple[str, str]]


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
    return Claim(claimed, jobs + start(connection, keys, worker_name, rest, job_class,
                                       serializer, channel), peeked)


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
        job = job_class._new(job_id, connection, serializer, keys)
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


def end_jobs(connection: redis.Redis, keys: Keys, worker_name: str,
             endings: Sequence[Ending], extra_commands: Sequence[tuple] = (),
             channel: scripts.Channel | None = None) -> None:
    """End many started jobs in one round trip (more only for jobs with dependents).

    ``extra_commands`` (e.g. the worker's counters) ride along in the same pipeline.
    """
    pending = list(endings)
    metered = count_call(keys, pending)  # the job metrics ride in the first round trip
    while pending:
        batch = scripts.ScriptBatch()
        # plain endings (no dependents, no retry: nearly all) go many per script call
        calls = endings_.batch_calls(keys, worker_name,
                                     [e for e in pending if endings_.is_plain(e)], repr(now()))
        for script_keys, args, _ in calls:
            batch.add("end_batch", script_keys, args)
        pending = [e for e in pending if not endings_.is_plain(e)]
        for ending in pending:
            batch.add("end", *_end_call(keys, worker_name, ending))
        for command in extra_commands:
            batch.command(*command)
        if metered:
            batch.add("metrics_count", *metered)
        extra_commands, metered = (), None
        replies = batch.execute(channel or connection)
        stale = []
        for (_, _, group), reply in zip(calls, replies):
            stale += endings_.skipped(group, reply)  # found dependents: end.lua ends them
        for ending, reply in zip(pending, replies[len(calls):]):
            if isinstance(reply, list) and as_str(reply[0]) == "dependents":
                stale.append((ending, [as_str(i) for i in reply[1]]))
        pending = _with_dependents(connection, keys, stale)


def end_job(connection: redis.Redis, keys: Keys, worker_name: str, ending: Ending) -> None:
    """End one started job."""
    end_jobs(connection, keys, worker_name, [ending])


def _end_call(keys: Keys, worker_name: str, ending: Ending) -> tuple[list, list]:
    job = ending.job
    queue_name = job.origin
    target = "finished" if ending.outcome == "finished" else "failed"
    script_keys = [job.key, keys.registry("started", queue_name), keys.worker_jobs(worker_name),
                   keys.registry(target, queue_name), keys.dependents(job.id), keys.queues,
                   keys.waiters(job.id), keys.done(job.id)]
    args = [job.id, repr(now()), ending.outcome, ending.ttl,
            "result" if ending.outcome == "finished" else "exc_info", ending.payload,
            len(ending.dependents), len(ending.extra)]
    script_keys += child_keys(keys, ending.dependents)
    args += child_args(ending.dependents)
    for name, value in ending.extra.items():
        args += [name, value]
    if ending.may_retry:
        # end.lua decides, in the same step, between another try and the failed registry
        script_keys += [keys.queue(queue_name), keys.wake(queue_name),
                        keys.registry("scheduled", queue_name)]
        args += [repr(next_delay(job.extra)), queue_name]
    script_keys.append(keys.events(job.id))  # last, always (end.lua reads KEYS[#KEYS])
    return script_keys, args


def _with_dependents(connection: redis.Redis, keys: Keys,
                     stale: list[tuple[Ending, list[str]]]) -> list[Ending]:
    """Give each ending the dependents Redis reported, with their queues."""
    if not stale:
        return []
    found = with_queues(connection, keys, [(ids, e.job.origin) for e, ids in stale])
    for (ending, _), children in zip(stale, found):
        ending.dependents = children
    return [ending for ending, _ in stale]


def requeue_started(connection: redis.Redis, keys: Keys, owner: str, job_id: str,
                    queue_name: str, reason: str,
                    max_requeues: int = DEFAULT_MAX_ABANDONED_REQUEUES,
                    failure_ttl: int = DEFAULT_FAILURE_TTL) -> str:
    """Put a started job of worker ``owner`` back at the head of its queue.

    After ``max_requeues`` such returns the job is failed with ``reason``
    instead. Returns 'queued', 'failed', or why nothing was done ('gone',
    'missing', 'not-started'). Safe to race: only one caller acts.
    """
    children: list[tuple[str, str]] = []
    while True:
        reply = scripts.call(connection, "requeue_started", [
            keys.job(job_id), keys.registry("started", queue_name), keys.worker_jobs(owner),
            keys.queue(queue_name), keys.wake(queue_name), keys.queues,
            keys.registry("failed", queue_name), keys.waiters(job_id), keys.done(job_id),
            keys.dependents(job_id), *child_keys(keys, children),
        ], [job_id, queue_name, repr(now()), max_requeues, failure_ttl, reason, len(children),
            *child_args(children)])
        if as_str(reply[0]) != "dependents":
            return as_str(reply[0])
        # it fails, and has dependents: those that allow failure are released with it
        children = with_queues(connection, keys, [([as_str(i) for i in reply[1]], queue_name)])[0]


def give_back(connection: redis.Redis, keys: Keys, owner: str, job_id: str, queue_name: str,
              reason: str, max_requeues: int = DEFAULT_MAX_ABANDONED_REQUEUES,
              failure_ttl: int = DEFAULT_FAILURE_TTL) -> str:
    """:func:`requeue_started`; a job that cannot be put back for a reason retrying cannot
    fix (its hash holds what no script accepts) is failed with that reason instead.

    Returns what ``requeue_started`` returns, or 'failed'. Transient errors raise.
    """
    try:
        return requeue_started(connection, keys, owner, job_id, queue_name, reason,
                               max_requeues, failure_ttl)
    except Exception as exc:
        if is_transient(exc):
            raise
        why = f"geventq could not put job {job_id} back on its queue ({reason}): {describe(exc)}"
        logger.error("%s; failing it instead", why)
        fail_started(connection, keys, owner, job_id, queue_name, why)
        return "failed"


def fail_started(connection: redis.Redis, keys: Keys, owner: str, job_id: str,
                 queue_name: str, reason: str) -> None:
    """The last resort for a started job that no script can end: take it out of its
    worker's hands and mark it failed with ``reason``, in one MULTI whose commands each
    act even if another fails (a key of the wrong type). Its dependents are not released
    and ``Job.wait()`` callers see the failure within a second. Transient errors raise.
    """
    reason = ascii_text(reason)
    stamp = now()
    pipe = connection.pipeline(transaction=True)
    pipe.srem(keys.worker_jobs(owner), job_id)
    pipe.zrem(keys.registry("started", queue_name), job_id)
    pipe.hset(keys.job(job_id), mapping={"status": "failed", "ended_at": repr(stamp),
                                         "exc_info": reason})
    pipe.expire(keys.job(job_id), DEFAULT_FAILURE_TTL)
    pipe.zadd(keys.registry("failed", queue_name), {job_id: stamp + DEFAULT_FAILURE_TTL})
    for result in pipe.execute(raise_on_error=False):
        if isinstance(result, Exception) and is_transient(result):
            raise result


def recover_worker(connection: redis.Redis, keys: Keys, worker_name: str,
                   max_requeues: int = DEFAULT_MAX_ABANDONED_REQUEUES) -> dict[str, str]:
    """Put the in-flight jobs of a dead worker back (or fail them); forget the worker.

    Returns {job id: outcome}. Any number of recoverers may race: each job is
    acted on by exactly one of them.
    """
    ids = [as_str(i) for i in connection.smembers(keys.worker_jobs(worker_name))]
    pipe = connection.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(keys.job(job_id), "origin")
    outcomes = {}
    for job_id, origin in zip(ids, pipe.execute(raise_on_error=False)):
        origin = "" if isinstance(origin, Exception) else as_str(origin) or ""
        outcomes[job_id] = give_back(
            connection, keys, worker_name, job_id, origin, max_requeues=max_requeues,
            reason=f"abandoned: worker {worker_name} died while running the job, and the job "
                   f"had already been requeued {max_requeues} time(s)")
    pipe = connection.pipeline(transaction=True)
    pipe.delete(keys.worker(worker_name))
    pipe.srem(keys.workers, worker_name)
    recovered = sum(1 for outcome in outcomes.values() if outcome in ("queued", "failed"))
    if recovered:  # geventq_recovered_jobs_total
        pipe.hincrby(keys.metrics_totals, "recovered_jobs", recovered)
    pipe.execute()
    return outcomes


def dead_workers(connection: redis.Redis, keys: Keys) -> list[str]:
    """Registered workers whose heartbeat key has lapsed."""
    names = [as_str(n) for n in connection.smembers(keys.workers)]
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.exists(keys.worker(name))
    return [name for name, alive in zip(names, pipe.execute()) if not alive]


def recover_dead_workers(connection: redis.Redis, keys: Keys,
                         max_requeues: int = DEFAULT_MAX_ABANDONED_REQUEUES) -> dict[str, str]:
    """Recover the jobs of every worker whose heartbeat lapsed."""
    outcomes: dict[str, str] = {}
    for name in dead_workers(connection, keys):
        outcomes.update(recover_worker(connection, keys, name, max_requeues))
    return outcomes
