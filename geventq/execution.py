"""Running one job and deciding how it ended; shared by every kind of worker.

A worker supplies the death penalty (how a timeout is enforced: a
``gevent.Timeout``, SIGALRM, or a killed child process); the rest — current
job, result serialization, traceback, exception handlers, the ``Ending`` —
is the same everywhere.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager as ContextManager
from typing import Any

from .allowlist import JobModules
from .callbacks import run_failure_callback, run_success_callback
from .context import reset_current_job, set_current_job
from .endings import Ending
from .exceptions import (
    DeserializationError,
    JobNotAllowed,
    RateLimited,
    ShutdownRequested,
    StopRequested,
)
from .job import Job

logger = logging.getLogger("geventq.worker")

# handler(job, exc_type, exc_value, traceback) -> False stops the chain
ExceptionHandler = Callable[[Job, type, BaseException, Any], Any]
DeathPenalty = Callable[[Job], ContextManager]


def time_limit(timeout: Any) -> float | None:
    """Seconds a run may take, or None for no limit: a timeout that is not above 0
    (``-1``, ``0``, None) means no limit. Every worker reads a job's timeout through this."""
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
        return timeout
    return None


def no_death_penalty(job: Job) -> ContextManager:
    """For workers that enforce timeouts elsewhere (or not at all)."""
    return contextlib.nullcontext()


def execute(job: Job, death_penalty: DeathPenalty = no_death_penalty,
            exception_handlers: Sequence[ExceptionHandler] = (),
            default_result_ttl: int | None = None, *,
            stop_region: DeathPenalty = no_death_penalty,
            job_modules: JobModules | None = None) -> Ending:
    """Run ``job`` and return how it ended (see :func:`_execute`).

    A job enqueued inside an OpenTelemetry span runs inside a child span of it
    (:mod:`geventq.tracing`, imported only for such a job).
    """
    def run() -> Ending:
        return _execute(job, death_penalty, exception_handlers, default_result_ttl,
                        stop_region=stop_region, job_modules=job_modules)

    if "trace" in job.extra:
        try:
            from .tracing import run_traced
        except ImportError:  # enqueued by a traced app; this worker has no geventq[otel]
            return run()
        return run_traced(job, run)
    return run()


def _execute(job: Job, death_penalty: DeathPenalty = no_death_penalty,
             exception_handlers: Sequence[ExceptionHandler] = (),
             default_result_ttl: int | None = None, *,
             stop_region: DeathPenalty = no_death_penalty,
             job_modules: JobModules | None = None) -> Ending:
    """Run ``job`` and return how it ended.

    ``stop_region(job)`` wraps the call of the function alone: the stretch in which
    a ``StopRequested`` may be raised (the job then ends ``stopped``); exception
    handlers and callbacks run outside it. ``job_modules``: the worker's allow-list;
    a function or callback outside it fails the job (``JobNotAllowed``) and nothing of
    it runs. ``ShutdownRequested`` propagates: the caller puts the job back on its queue.
    """
    started = time.monotonic()
    token = set_current_job(job)
    try:
        try:
            func, args, kwargs = load_call(job, job_modules)
            with stop_region(job), death_penalty(job):
                result = func(*args, **kwargs)
        finally:
            reset_current_job(token)
        payload = serialize_result(job, result)
    except ShutdownRequested:
        raise
    except StopRequested:
        return _timed(Ending(job, "stopped", "stopped: geventq stop was requested"), started)
    except RateLimited as exc:  # not a failure: end.lua schedules it again (geventq.limits)
        return _timed(Ending(job, "rate_limited", repr(exc.retry_after)), started)
    except BaseException:  # a timeout, sys.exit() in a job: each fails the job
        exc_info = sys.exc_info()
        text = "".join(traceback.format_exception(*exc_info))
        run_exception_handlers(job, exc_info, exception_handlers)
        ending = _timed(Ending(job, "failed", text), started)
        # logged if it fails; the outcome stands
        run_failure_callback(job, exc_info, death_penalty, job_modules)
        return ending
    ending = Ending(job, "finished", payload)
    if default_result_ttl is not None:
        ending.default_result_ttl = default_result_ttl
    _timed(ending, started)
    run_success_callback(job, result, death_penalty, job_modules)
    return ending


def load_call(job: Job, job_modules: JobModules | None = None) -> tuple[Callable, tuple, dict]:
    """The function and arguments of a stored job; raises naming what cannot be loaded.

    With ``job_modules``, a dotted path outside the list is refused before the
    arguments are decoded, and the resolved function must be defined in a listed
    module (``JobNotAllowed``).
    """
    load_error = job.load_error  # set by lifecycle.start for a broken hash
    if load_error:
        raise DeserializationError(load_error)
    if job_modules is not None and "." in str(job.func_name):
        job_modules.check_path(job.func_name)
    args, kwargs = job.args, job.kwargs  # DeserializationError names the job and serializer
    try:
        func = job.func if job_modules is None else job_modules.resolve(job.func_name,
                                                                          job.instance)
    except JobNotAllowed:
        raise
    except Exception as exc:
        raise ImportError(f"cannot import the function {job.func_name!r} of job {job.id}: "
                          f"{type(exc).__name__}: {exc}") from exc
    return func, args, kwargs


def serialize_result(job: Job, result: Any) -> bytes:
    """The stored form of a return value; a value that cannot be stored fails the job."""
    try:
        return job.serializer.dumps(result)
    except Exception as exc:
        raise TypeError(f"the return value of {job.func_name} cannot be serialized with "
                        f"{job.serializer.name}: {type(exc).__name__}: {exc}") from exc


def run_exception_handlers(job: Job, exc_info: tuple, handlers: Sequence[ExceptionHandler]) -> None:
    """Run handlers in order until one returns False; a raising handler is logged."""
    for handler in handlers:
        try:
            if handler(job, *exc_info) is False:
                break
        except Exception:
            logger.exception("exception handler %r failed on job %s", handler, job.id)


def _timed(ending: Ending, started: float) -> Ending:
    """The ending with its run's duration (``extra["duration"]``). It is not logged here:
    the worker logs one line per ended job once the ending is written (``geventq.joblog``)."""
    ending.extra["duration"] = f"{time.monotonic() - started:.6f}"
    return ending
