"""Writing built jobs to Redis: the enqueue hot path of :class:`~geventq.queue.Queue`.

A job with no dependencies and no schedule (a "batchable" job, nearly every job)
is written by ``enqueue_batch.lua``, which takes a whole batch of them in one
call: one hash write per job and one push for the batch. Any other job goes
through ``enqueue.lua``, one call per job. Either way each job is written
atomically, and the calls of many jobs share one round trip.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import scripts
from .exceptions import DuplicateJobError, NoSuchJobError
from .job import Job
from .job_fields import own_fields, shared_fields
from .limits import definition_commands
from .status import LIVE_STATUSES
from .utils import as_str, to_datetime

if TYPE_CHECKING:
    from .queue import Queue

BATCH = 1000  # plain jobs per enqueue_batch call (the script unpacks 2 keys per job)


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while many jobs are built or written.

    Each collection would traverse every job built so far, again and again:
    that was ~40% of the cost of building a job in a batch of thousands.
    Nothing is lost: collection resumes (if it was on) when the batch is done.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def batchable(job: Job) -> bool:
    """True when ``enqueue_batch.lua`` can write the job (no dependencies, no schedule,
    not unique)."""
    return not job.dependency_ids and job.scheduled_at is None and "unique" not in job.extra


def single_call(queue: Queue, job: Job, stamp: float) -> tuple[list, list]:
    """KEYS and ARGV of the ``enqueue.lua`` call that writes ``job`` to ``queue``."""
    k, name = queue.keys, queue.name
    deps = job.dependency_ids
    keys = [job.key, queue.key, k.queues, k.wake(name), k.registry("deferred", name),
            k.pending(job.id), k.expiring(name), k.registry("scheduled", name)]
    for dep in deps:
        keys.append(k.job(dep))
        keys.append(k.dependents(dep))
    args = [job.id, name, repr(stamp), "1" if job.at_front else "0", job.ttl or -1,
            len(deps), "1" if job.allow_dependency_failure else "0",
            "" if job.scheduled_at is None else repr(job.scheduled_at.timestamp()), *deps]
    unique = job.extra.get("unique")
    if unique is not None:  # last: enqueue.lua finds it by the number of keys (geventq.unique)
        keys.append(k.unique(name, unique))
    for field, value in job.to_mapping(stamp).items():
        if value is not None:
            args.append(field)
            args.append(value)
    return keys, args


def check_batch_references(queue: Queue, jobs: list[Job], given: list[Job]) -> None:
    """Before a batch writes anything: its dependencies exist, the ids in ``given`` (chosen
    by the caller) are free, no id is there twice."""
    own = {job.id for job in jobs}
    deps = sorted({d for job in jobs for d in job.dependency_ids} - own)
    if len(own) != len(jobs):
        raise DuplicateJobError("enqueue_many got the same job_id twice")
    if not deps and not given:
        return
    pipe = queue.connection.pipeline(transaction=False)
    for dep in deps:
        pipe.exists(queue.keys.job(dep))
    for job in given:
        pipe.hget(job.key, "status")
    replies = pipe.execute()
    for dep, exists in zip(deps, replies):
        if not exists:
            raise NoSuchJobError(f"a job depends on job {dep!r}, which does not exist; "
                                 "nothing was enqueued")
    for job, status in zip(given, replies[len(deps):]):
        if as_str(status) in LIVE_STATUSES:
            raise DuplicateJobError(f"job id {job.id!r} is taken by a job that is "
                                    f"{as_str(status)}; nothing was enqueued")


def check_single_reply(job: Job, reply: list) -> None:
    """Raise when ``enqueue.lua`` refused the job (nothing was written); else record the
    status it was given (queued, deferred or scheduled)."""
    outcome = as_str(reply[0])
    if outcome == "duplicate":
        raise DuplicateJobError(f"job id {job.id!r} is taken by a job that is "
                                f"{as_str(reply[1])}")
    if outcome == "missing":
        raise NoSuchJobError(f"job {job.id} depends on job {as_str(reply[1])!r}, which "
                             "does not exist; nothing was enqueued")
    if outcome == "exists":  # unique: the waiting job of its identity stands for it
        job.id = as_str(reply[1])
        job.key = job.keys.job(job.id)
        job.refresh()
        return
    check_invalid_reply(reply)
    job.record_status(outcome)


def batch_call(queue: Queue, jobs: Sequence[Job], stamp: float,
               checked: bool) -> tuple[list, list]:
    """KEYS and ARGV of one ``enqueue_batch.lua`` call for plain jobs with the same
    :func:`~geventq.job_fields.shared_fields`; ``checked``: look their ids up first."""
    k, name, head = queue.keys, queue.name, jobs[0]
    pairs = shared_fields(head)
    shared = [v for i in range(0, len(pairs), 2) if pairs[i + 1] is not None
              for v in pairs[i:i + 2]]
    keys = [queue.key, k.queues, k.wake(name), k.expiring(name), k.scratch]
    args: list[Any] = [name, repr(stamp), head.ttl or "", "1" if checked else "",
                       "1" if head.at_front else "", len(shared), *shared]
    pending = k.pending
    for job in jobs:
        keys.append(job.key)
        if checked:
            keys.append(pending(job.id))
        own = own_fields(job)
        args += (job.id, job.serialize_data(), len(own))
        if own:
            args += own
        job.mark_id_sent()
    return keys, args


def check_batch_reply(reply: list) -> None:
    """Raise when ``enqueue_batch.lua`` refused its batch (nothing of it was written)."""
    outcome = as_str(reply[0])
    if outcome == "duplicate":
        raise DuplicateJobError(f"job id {as_str(reply[1])!r} is taken by a job that is "
                                f"{as_str(reply[2])}")
    check_invalid_reply(reply)


def check_invalid_reply(reply: list) -> None:
    """Raise ValueError when an enqueue script refused an argument (it wrote nothing).

    The values are checked before they are sent, so this means a caller built
    the script's arguments by hand, or a bug: either way, nothing was written.
    """
    if as_str(reply[0]) == "invalid":
        raise ValueError(f"enqueue refused by Redis, nothing written: bad {as_str(reply[1])} "
                         f"{as_str(reply[2])!r}")


def write_one(queue: Queue, job: Job, stamp: float) -> None:
    """Write one job in one round trip."""
    if "limit" in job.extra:  # its limit's definition goes first, in the same round trip
        write_many(queue, [job], stamp)
        return
    if batchable(job):
        check_batch_reply(scripts.call(queue.connection, "enqueue_batch",
                                       *batch_call(queue, [job], stamp, not job.generated_id)))
        job.record_status("queued")
        job.created_at = to_datetime(stamp)
    else:
        reply = scripts.call(queue.connection, "enqueue", *single_call(queue, job, stamp))
        check_single_reply(job, reply)


def _segments(jobs: Sequence[Job]) -> list[tuple[Any, list[Job]]]:
    """Runs of alike plain jobs (at most BATCH each) and other jobs alone, in order:
    [(what the run's jobs share, or None for a job alone, jobs)]."""
    segments: list[tuple[Any, list[Job]]] = []
    for job in jobs:
        if not batchable(job):
            segments.append((None, [job]))
            continue
        alike = (shared_fields(job), not job.generated_id)
        if segments and segments[-1][0] == alike and len(segments[-1][1]) < BATCH:
            segments[-1][1].append(job)
        else:
            segments.append((alike, [job]))
    return segments


def write_many(queue: Queue, jobs: Sequence[Job], stamp: float) -> None:
    """Write jobs in their order: runs of alike plain jobs in batches, others one by one.

    One round trip: the calls are streamed (Redis runs each batch while the next
    is being packed) after a SCRIPT LOAD of each script they use, so that no
    call can meet NOSCRIPT and be retried out of order. Ids the caller chose
    are looked up; generated ones are not (they are random).
    """
    created = to_datetime(stamp)
    segments = _segments(jobs)
    names = sorted({"enqueue" if alike is None else "enqueue_batch" for alike, _ in segments})

    definitions = definition_commands(queue.keys, (job.extra for job in jobs))

    def commands() -> Iterator[tuple]:
        for name in names:
            yield ("SCRIPT", "LOAD", scripts.source(name)[1])
        yield from definitions  # the latest definition of each limit key (geventq.limits)
        for alike, group in segments:
            if alike is None:
                name, (keys, args) = "enqueue", single_call(queue, group[0], stamp)
            else:
                name, (keys, args) = "enqueue_batch", batch_call(queue, group, stamp, alike[1])
            yield ("EVALSHA", scripts.source(name)[0], len(keys), *keys, *args)

    replies = scripts.send(queue.connection, commands())
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    for (alike, group), reply in zip(segments, replies[len(names) + len(definitions):]):
        if alike is None:
            check_single_reply(group[0], reply)
            continue
        check_batch_reply(reply)
        for job in group:
            job.record_status("queued")
            job.created_at = created
