"""Every Redis key geventq uses, in one place (see docs/data-model.md).

All keys share one prefix. The prefix may carry a Redis Cluster hash tag
(``{geventq}:``) so that every key lands on one slot (in cluster mode it must);
Lua scripts always get their keys from here through KEYS, never build them.
"""

from __future__ import annotations

import os

from .defaults import CLUSTER_DEFAULT_PREFIX, DEFAULT_PREFIX

REGISTRY_NAMES = ("started", "finished", "failed", "deferred", "canceled", "scheduled")


class Keys:
    """Builds key names under one prefix."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str = DEFAULT_PREFIX):
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"key prefix must be a non-empty string, got {prefix!r}")
        self.prefix = prefix

    # -- queues ---------------------------------------------------------
    @property
    def queues(self) -> str:
        """Set of every queue name that has ever had a job."""
        return self.prefix + "queues"

    def queue(self, name: str) -> str:
        """List of queued job ids, head first."""
        return f"{self.prefix}queue:{name}"

    def wake(self, name: str) -> str:
        """List holding at most one token: 'this queue may have jobs'. Idle workers BLPOP it."""
        return f"{self.prefix}wake:{name}"

    def expiring(self, name: str) -> str:
        """Sorted set of queued job ids with a ``ttl``, scored by the time they expire."""
        return f"{self.prefix}expiring:{name}"

    def emptying(self, name: str) -> str:
        """List of the ids ``Queue.empty()`` moved aside and has not deleted yet."""
        return f"{self.prefix}emptying:{name}"

    @property
    def paused(self) -> str:
        """Set of the names of paused queues: workers claim nothing from them."""
        return self.prefix + "paused"

    def registry(self, kind: str, queue: str) -> str:
        """Sorted set of job ids of one registry of one queue."""
        return f"{self.prefix}{kind}:{queue}"

    # -- jobs -----------------------------------------------------------
    def job(self, job_id: str) -> str:
        """Hash holding one job."""
        return f"{self.prefix}job:{job_id}"

    def dependents(self, job_id: str) -> str:
        """Set of ids of deferred jobs waiting for this job."""
        return f"{self.prefix}dependents:{job_id}"

    def pending(self, job_id: str) -> str:
        """Set of ids of this job's dependencies that have not finished yet."""
        return f"{self.prefix}pending:{job_id}"

    def waiters(self, job_id: str) -> str:
        """Counter of clients blocked in ``Job.wait``; the end of the job notifies them."""
        return f"{self.prefix}waiters:{job_id}"

    def done(self, job_id: str) -> str:
        """List the end of a job pushes one token per waiter onto."""
        return f"{self.prefix}done:{job_id}"

    @property
    def scratch(self) -> str:
        """Hash a script fills and deletes within one call (never seen outside it)."""
        return self.prefix + "scratch"

    def events(self, job_id: str) -> str:
        """Stream of a job's progress events and its end event (see geventq.progress)."""
        return f"{self.prefix}events:{job_id}"

    # -- metrics (see geventq.metrics) -----------------------------------
    @property
    def metrics_functions(self) -> str:
        """Set of the function names that have their own metric label (at most the cap)."""
        return self.prefix + "metrics:functions"

    @property
    def metrics_jobs(self) -> str:
        """Hash: JSON [queue, function, outcome] -> jobs ended that way (only grows)."""
        return self.prefix + "metrics:jobs"

    @property
    def metrics_durations(self) -> str:
        """Hash: JSON [queue, function, bucket bound | "sum" | "count"] -> duration totals."""
        return self.prefix + "metrics:durations"

    @property
    def metrics_totals(self) -> str:
        """Hash of deployment-wide counters (``hub_blocked``, ``recovered_jobs``)."""
        return self.prefix + "metrics:totals"

    # -- workers --------------------------------------------------------
    @property
    def workers(self) -> str:
        """Set of registered worker names."""
        return self.prefix + "workers"

    def worker(self, name: str) -> str:
        """Hash of one worker; it expires when the heartbeat stops."""
        return f"{self.prefix}worker:{name}"

    def worker_jobs(self, name: str) -> str:
        """Set of ids of the jobs a worker has claimed and not yet ended."""
        return f"{self.prefix}worker:{name}:jobs"

    @property
    def suspended(self) -> str:
        """Flag: workers take no new jobs while it exists."""
        return self.prefix + "suspended"

    def stop_channel(self) -> str:
        """Pub/sub channel on which ``geventq stop JOB_ID`` is announced."""
        return self.prefix + "stop-job"

    @property
    def scheduler_lock(self) -> str:
        """Lock held by the one active scheduler."""
        return self.prefix + "scheduler-lock"

    def periodic(self) -> str:
        """Hash: periodic job name -> last enqueued occurrence."""
        return self.prefix + "periodic"

    def periodic_entries(self) -> str:
        """Hash: periodic job name -> JSON description and next run (written by the active scheduler)."""
        return self.prefix + "periodic-entries"

    def parse_worker_key(self, key: str) -> str:
        """Return the worker name of a worker key, or raise ValueError."""
        head = f"{self.prefix}worker:"
        if not key.startswith(head) or key.endswith(":jobs"):
            raise ValueError(f"not a geventq worker key under prefix {self.prefix!r}: {key!r}")
        return key[len(head):]


def hash_tag(prefix: str) -> str | None:
    """The Redis Cluster hash tag every key under ``prefix`` hashes by, or None.

    Redis hashes a key by the text between its first ``{`` and the first ``}``
    after it, when that text is not empty. When both braces are in the prefix,
    every key under it has the same tag, hence the same slot, whatever follows.
    """
    start = prefix.find("{")
    end = prefix.find("}", start + 1) if start >= 0 else -1
    if end <= start + 1:
        return None
    return prefix[start + 1:end]


def check_cluster_prefix(prefix: str) -> None:
    """Raise ValueError, naming a tagged prefix, when ``prefix`` cannot live in one slot."""
    if hash_tag(prefix) is None:
        name = prefix.strip(":{}") or "geventq"
        raise ValueError(
            f"key prefix {prefix!r} has no hash tag: in Redis Cluster mode every key of a "
            f"prefix must share one hash slot; use a prefix such as '{{{name}}}:' (the text "
            f"in braces is the hash tag)")


def resolve_keys(keys: Keys | None = None, prefix: str | None = None, cluster: bool = False) -> Keys:
    """The given key space, else one for ``prefix``, ``$GEVENTQ_PREFIX`` or the default.

    The default is ``geventq:``, or ``{geventq}:`` when ``cluster`` is true; in
    cluster mode a prefix without a hash tag is refused (ValueError).
    """
    if keys is None:
        default = CLUSTER_DEFAULT_PREFIX if cluster else DEFAULT_PREFIX
        keys = Keys(prefix or os.environ.get("GEVENTQ_PREFIX") or default)
    if cluster:
        check_cluster_prefix(keys.prefix)
    return keys
