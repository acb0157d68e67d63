"""How a job ends (:class:`Ending`), and ending many jobs per script call: the hot path
of :func:`geventq.lifecycle.end_jobs`.

Nearly every job ends with no dependents and no retry to decide. Such
"plain" endings go to ``end_batch.lua``, one call per queue for a whole batch
(one hash write per job, one registry update per batch); the rest go to
``end.lua``, one call per job. Both kinds share one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .defaults import DEFAULT_FAILURE_TTL, DEFAULT_RESULT_TTL, MAX_SECONDS
from .job import Job
from .keys import Keys
from .retry import has_retry
from .utils import as_str

_PLAIN_OUTCOMES = frozenset({"finished", "failed", "stopped"})


@dataclass
class Ending:
    """How one started job ends.

    A text payload (the exc_info of a failure) is stored as readable UTF-8 whatever it
    holds: characters UTF-8 cannot encode (lone surrogates, as in undecodable file
    names) are written as backslash escapes.
    """

    job: Job
    outcome: str  # 'finished', 'failed', 'stopped' or 'rate_limited' (RateLimited: back later)
    payload: bytes | str  # the serialized result, or the exc_info text
    extra: dict[str, Any] = field(default_factory=dict)  # more hash fields to write
    dependents: list[tuple[str, str]] = field(default_factory=list)  # (child id, child queue)
    default_result_ttl: int = DEFAULT_RESULT_TTL  # the worker's, for jobs that set none
    # a failure recorded because the job's own ending could not be: no retry, default ttl
    last_resort: bool = False
    # a retry runs again at once, whatever delay retry= asks (Queue(is_async=False))
    retry_now: bool = False

    def __post_init__(self) -> None:
        if self.payload.__class__ is str:
            self.payload = storable_text(self.payload)

    @property
    def ttl(self) -> int:
        """Seconds the ended job is kept (-1: forever; 0: a finished job is deleted).

        Raises ValueError for a value Redis cannot take (the job's hash is not trusted).
        """
        if self.last_resort:
            return DEFAULT_FAILURE_TTL
        if self.outcome == "finished":
            ttl, name = self.job.result_ttl, "result_ttl"
            if ttl is None:
                ttl, name = self.default_result_ttl, "the worker's DEFAULT_RESULT_TTL"
        else:
            ttl, name = self.job.failure_ttl or DEFAULT_FAILURE_TTL, "failure_ttl"
        if ttl.__class__ is not int or not -1 <= ttl <= MAX_SECONDS:
            raise ValueError(f"{name} of job {self.job.id} is {ttl!r}: not a whole number of "
                             f"seconds from -1 to {MAX_SECONDS}")
        return ttl

    @property
    def may_retry(self) -> bool:
        """True when the job fails and was enqueued with ``retry=`` (end.lua decides)."""
        return self.outcome == "failed" and not self.last_resort and has_retry(self.job.extra)


def counts_as_failure(ending: Ending) -> bool:
    """Whether the ending moves a worker's ``failed`` counter (RateLimited does not)."""
    return ending.outcome in ("failed", "stopped")


def storable_text(text: str) -> str:
    """``text`` as Redis can store it: characters UTF-8 cannot encode become backslash escapes."""
    try:
        text.encode()
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()


def ascii_text(text: str, limit: int = 4000) -> str:
    """``text`` in printable ASCII (other characters escaped), cut at ``limit`` characters:
    a reason that cannot itself fail to be stored or logged."""
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[:limit] + "..."


def queue_of(job: Job) -> str:
    """The queue a started job ends in (``lifecycle.start`` sets it on every job it loads)."""
    if job.origin is None:
        raise ValueError(f"job {job.id} has no origin queue: it was not started by geventq")
    return job.origin


def ends_in_batch(ending: Ending) -> bool:
    """True when ``end_batch.lua`` can end the job (no dependents known, no retry)."""
    return not ending.dependents and ending.outcome in _PLAIN_OUTCOMES and not ending.may_retry


def batch_calls(keys: Keys, worker_name: str, endings: Sequence[Ending],
                stamp: str) -> list[tuple[list, list, list[Ending]]]:
    """(KEYS, ARGV, endings) of the ``end_batch.lua`` calls for plain endings, one per queue."""
    by_queue: dict[str, list[Ending]] = {}
    for ending in endings:
        by_queue.setdefault(queue_of(ending.job), []).append(ending)
    in_flight = keys.worker_jobs(worker_name)
    calls = []
    for queue_name, group in by_queue.items():
        registry = keys.registry
        script_keys = [in_flight, registry("started", queue_name),
                       registry("finished", queue_name), registry("failed", queue_name)]
        args: list[Any] = [stamp]
        dependents, waiters, done = keys.dependents, keys.waiters, keys.done
        for ending in group:
            job = ending.job
            job_id = job.id
            script_keys += (job.key, dependents(job_id), waiters(job_id), done(job_id))
            extra = ending.extra
            args += (job_id, ending.outcome, ending.ttl, ending.payload, len(extra))
            for pair in extra.items():
                args += pair
        script_keys += [keys.events(ending.job.id) for ending in group]
        calls.append((script_keys, args, group))
    return calls


def skipped(group: list[Ending], reply: list) -> list[tuple[Ending, list[str]]]:
    """The endings ``end_batch.lua`` left for ``end.lua``, with the dependents it found."""
    return [(group[int(reply[i]) - 1], [as_str(c) for c in reply[i + 1]])
            for i in range(0, len(reply), 2)]
