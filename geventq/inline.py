"""``Queue(is_async=False)``: run a job right away in the calling process, like Celery's
ALWAYS_EAGER, and store its outcome as a worker would.

The job goes through the same transitions as a worker's: ``start_inline.lua`` writes it
started (one step) before it runs, and :func:`geventq.lifecycle.end_job` ends it with ``end.lua``, so
``retry=``, dependents, ``Job.wait()`` and the events stream behave as with a worker.
A try that fails with retries left runs again at once, in this process (a retry's delay
is not waited for: nothing else would run the job).
"""

from __future__ import annotations

import os
import socket
import sys
import traceback
from typing import TYPE_CHECKING

from . import lifecycle, scripts
from .callbacks import run_failure_callback, run_success_callback
from .endings import Ending
from .exceptions import DuplicateJobError, NoSuchJobError
from .job import Job
from .utils import as_str, now

if TYPE_CHECKING:
    from .queue import Queue


def runner_name() -> str:
    """The name an inline run holds its job under (as a worker holds its jobs)."""
    return f"inline.{socket.gethostname()}.{os.getpid()}"


def run_inline(queue: Queue, job: Job) -> Job:
    """is_async=False: run now, in this process, and store the outcome."""
    missing = [d for d in job.dependency_ids if not queue.connection.exists(queue.keys.job(d))]
    if missing:
        raise NoSuchJobError(f"job {job.id} depends on job {missing[0]!r}, which does not "
                             "exist; nothing was enqueued")
    runner = runner_name()
    mode = "new"
    while True:
        stamp = now()
        fields = [] if mode == "again" else [
            item for pair in job.to_mapping(stamp).items() if pair[1] is not None for item in pair]
        reply = scripts.call(queue.connection, "start_inline", [
            job.key, queue.keys.registry("started", queue.name),
            queue.keys.worker_jobs(runner), queue.key,
        ], [job.id, repr(stamp), runner, mode, *fields])
        if as_str(reply[0]) == "duplicate":
            raise DuplicateJobError(f"job id {job.id!r} is taken by a job that is "
                                    f"{as_str(reply[1])}; it did not run")
        if as_str(reply[0]) != "started":  # a worker took the retry off the queue
            return job
        ending = _perform(job)
        ending.retry_now = True
        lifecycle.end_job(queue.connection, queue.keys, runner, ending)
        if as_str(queue.connection.hget(job.key, "status")) != "queued":
            break
        mode = "again"
    if queue.connection.exists(job.key):
        job.refresh()
    else:
        job.record_status(ending.outcome)
    return job


def _perform(job: Job) -> Ending:
    """Run the job once; how it ends (its callbacks have run)."""
    try:
        result = job.perform()
    except Exception:
        ending = Ending(job, "failed", traceback.format_exc())
        job.exc_info = ending.payload if isinstance(ending.payload, str) else None
        run_failure_callback(job, sys.exc_info())
        return ending
    ending = Ending(job, "finished", job.serialize_result(result))
    run_success_callback(job, result)
    return ending
