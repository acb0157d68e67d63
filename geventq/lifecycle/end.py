"""End started jobs (``end_batch.lua`` for most, ``end.lua`` for jobs with dependents or
``retry=``): ending a job releases its dependents in the same step, so a dependent is
enqueued exactly once even when its parents end together on two workers."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis

from .. import endings as endings_
from .. import scripts
from ..endings import Ending
from ..keys import Keys
from ..metrics.counting import count_call
from ..releasing import child_args, child_keys, with_queues
from ..retry import next_delay
from ..utils import as_str, now

logger = logging.getLogger("geventq.worker")


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
                                     [e for e in pending if endings_.ends_in_batch(e)], repr(now()))
        for script_keys, args, _ in calls:
            batch.add("end_batch", script_keys, args)
        pending = [e for e in pending if not endings_.ends_in_batch(e)]
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
    queue_name = endings_.queue_of(job)
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
        args += [repr(0.0 if ending.retry_now else next_delay(job.extra)), queue_name]
    script_keys.append(keys.events(job.id))  # last, always (end.lua reads KEYS[#KEYS])
    return script_keys, args


def _with_dependents(connection: redis.Redis, keys: Keys,
                     stale: list[tuple[Ending, list[str]]]) -> list[Ending]:
    """Give each ending the dependents Redis reported, with their queues."""
    if not stale:
        return []
    found = with_queues(connection, keys, [(ids, endings_.queue_of(e.job)) for e, ids in stale])
    for (ending, _), children in zip(stale, found):
        ending.dependents = children
    return [ending for ending, _ in stale]


