"""``depends_on``: which jobs a job waits for (``Dependency`` is re-exported by geventq.job)."""

from __future__ import annotations

from typing import Any

from .job_actions import JobActions
from .names import check_job_id


class Dependency:
    """Several dependencies at once, optionally satisfied by failed jobs too."""

    def __init__(self, jobs: Any, allow_failure: bool = False):
        jobs = jobs if isinstance(jobs, (list, tuple)) else [jobs]
        if not jobs:
            raise ValueError("Dependency(jobs=...) needs at least one job or job id")
        self.jobs = list(jobs)
        self.allow_failure = bool(allow_failure)


def dependency_ids(depends_on: Any, prefix: str | None = None) -> tuple[list[str], bool]:
    """Normalise ``depends_on`` to (job ids, allow_failure).

    A Job of a key prefix other than ``prefix`` is refused (ValueError): a job
    waits only for jobs of its own prefix (on a cluster, another prefix may live
    on another shard, out of reach of the atomic release).
    """
    if depends_on is None:
        return [], False
    allow_failure = False
    if isinstance(depends_on, Dependency):
        allow_failure = depends_on.allow_failure
        items = depends_on.jobs
    elif isinstance(depends_on, (list, tuple)):
        items = list(depends_on)
    else:
        items = [depends_on]
    ids = []
    for item in items:
        if isinstance(item, JobActions):
            if prefix is not None and item.keys.prefix != prefix:
                raise ValueError(f"job {item.id} is under key prefix {item.keys.prefix!r}, not "
                                 f"{prefix!r}: a job can depend only on jobs of its own prefix")
            item = item.id
        elif not isinstance(item, str):
            raise ValueError(f"depends_on takes Jobs or job ids, got {item!r}")
        ids.append(check_job_id(item, "depends_on"))
    return ids, allow_failure
