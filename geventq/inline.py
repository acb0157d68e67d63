"""``Queue(is_async=False)``: run a job right away in the calling process, like Celery's
ALWAYS_EAGER, and store its outcome as a worker would."""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING

from .callbacks import run_failure_callback, run_success_callback
from .defaults import DEFAULT_RESULT_TTL
from .endings import storable_text
from .exceptions import NoSuchJobError
from .job import Job
from .utils import now

if TYPE_CHECKING:
    from .queue import Queue


def run_inline(queue: Queue, job: Job) -> Job:
    """is_async=False: run now, in this process, and store the outcome."""
    missing = [d for d in job.dependency_ids if not queue.connection.exists(queue.keys.job(d))]
    if missing:
        raise NoSuchJobError(f"job {job.id} depends on job {missing[0]!r}, which does not "
                             "exist; nothing was enqueued")
    stamp = now()
    mapping = job.to_mapping(stamp)
    mapping["enqueued_at"] = mapping["started_at"] = repr(stamp)
    try:
        result = job.perform()
    except Exception:
        status, ttl, registry = "failed", job.failure_ttl, queue.failed_job_registry
        job.exc_info = mapping["exc_info"] = storable_text(traceback.format_exc())
        run_failure_callback(job, sys.exc_info())
    else:
        status, registry = "finished", queue.finished_job_registry
        ttl = DEFAULT_RESULT_TTL if job.result_ttl is None else job.result_ttl
        job._raw_result = mapping["result"] = job._dump("result", result)
        job._result = result
        run_success_callback(job, result)
    ended = now()
    mapping.update(status=status, ended_at=repr(ended))
    pipe = queue.connection.pipeline(transaction=True)
    pipe.delete(job.key)
    pipe.hset(job.key, mapping={k: v for k, v in mapping.items() if v is not None})
    if ttl == 0:
        pipe.delete(job.key)
    elif ttl == -1:
        pipe.zadd(registry.key, {job.id: "+inf"})
    else:
        pipe.expire(job.key, ttl)
        pipe.zadd(registry.key, {job.id: ended + ttl})
    pipe.execute()
    if ttl != 0:
        job.refresh()
    job._status = status
    return job
