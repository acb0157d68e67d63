"""The job options of ``enqueue()``: which keywords they are, and building a checked
:class:`~geventq.job.Job` of a queue from them (nothing is written here: see
:mod:`geventq.enqueueing`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .callables import check_importable_from_worker
from .callbacks import callback_fields
from .defaults import DEFAULT_FAILURE_TTL
from .job import Job
from .limits import check_limit, limit_fields
from .retry import retry_fields
from .unique import unique_fields
from .utils import parse_timeout, parse_ttl

if TYPE_CHECKING:
    from .queue import Queue

# Keywords of enqueue() that are job options, never passed to the function.
JOB_OPTIONS = frozenset({
    "job_timeout", "timeout", "result_ttl", "ttl", "failure_ttl", "depends_on", "job_id",
    "at_front", "description", "meta", "retry", "on_success", "on_failure",
    "limit", "unique", "unique_key",
})

# job class -> the extra keywords for its create(): Job.create's own may skip
# resolving the queue's connection, serializer and keys (they are checked already)
_CREATE_FLAGS: dict[type, dict[str, Any]] = {}


def split_arguments(args: tuple, kwargs: dict) -> tuple[Any, Any, dict]:
    """(f's args, f's kwargs, job options) from the arguments of enqueue()."""
    options = {name: kwargs.pop(name) for name in JOB_OPTIONS & kwargs.keys()}
    if "args" in kwargs or "kwargs" in kwargs:
        if args:
            raise TypeError("give the function's arguments either positionally or as "
                            "args=, not both")
        f_args, f_kwargs = kwargs.pop("args", None), kwargs.pop("kwargs", None)
        if kwargs:
            raise TypeError(f"unknown job option(s) {', '.join(sorted(kwargs))}: with args= "
                            f"or kwargs= every other keyword must be one of "
                            f"{', '.join(sorted(JOB_OPTIONS))}")
        return f_args, f_kwargs, options
    return args, kwargs, options


def check_options(options: Any) -> None:
    """Raise TypeError naming the keywords that are not job options."""
    unknown = set(options) - JOB_OPTIONS
    if unknown:
        raise TypeError(f"unknown job option(s) {', '.join(sorted(unknown))}")


def _create_flags(job_class: type[Job]) -> dict[str, Any]:
    flags = _CREATE_FLAGS.get(job_class)
    if flags is None:
        flags = _CREATE_FLAGS[job_class] = {"_resolved": True} \
            if job_class.create.__func__ is Job.create.__func__ else {}  # type: ignore[attr-defined]
    return flags


def build_job(queue: Queue, func: Any, args: Any, kwargs: Any, options: dict,
              queue_fields: dict[str, str]) -> Job:
    """A checked job of ``queue`` (see :meth:`Queue.build_job`); ``queue_fields``: the
    fields of the queue's own limit, given to a job that names none."""
    resolved = _create_flags(queue.job_class)
    if options.keys() <= JOB_OPTIONS and all(
            v is None or (v is False and k == "at_front") for k, v in options.items()):
        # no option given (nearly every job): the queue's defaults, nothing to parse
        job = queue.job_class.create(
            func, args, kwargs, connection=queue.connection, serializer=queue.serializer,
            keys=queue.keys, origin=queue.name, timeout=queue.default_timeout,
            result_ttl=queue.default_result_ttl, failure_ttl=DEFAULT_FAILURE_TTL, **resolved)
        if queue.is_async:
            check_importable_from_worker(job.func_name or "", job.instance)
        job.extra.update(queue_fields)  # the queue's limit, if any
        job.serialize_data()  # fail now, before anything is written
        return job
    flow = options.pop("limit", None), options.pop("unique", None), options.pop("unique_key", None)
    retry = options.pop("retry", None)
    on_success, on_failure = options.pop("on_success", None), options.pop("on_failure", None)
    timeout, job_timeout = options.pop("timeout", None), options.pop("job_timeout", None)
    if timeout is not None and job_timeout is not None:
        raise TypeError("give job_timeout or timeout, not both")
    check_options(options)
    timeout = parse_timeout(job_timeout if job_timeout is not None else timeout)
    result_ttl = parse_ttl(options.get("result_ttl"), name="result_ttl")
    failure_ttl = parse_ttl(options.get("failure_ttl"), name="failure_ttl", allow_zero=False)
    ttl = parse_ttl(options.get("ttl"), name="ttl", allow_zero=False)
    job = queue.job_class.create(
        func, args, kwargs, connection=queue.connection, serializer=queue.serializer,
        keys=queue.keys, id=options.get("job_id"), origin=queue.name,
        timeout=timeout or queue.default_timeout,
        result_ttl=queue.default_result_ttl if result_ttl is None else result_ttl,
        failure_ttl=failure_ttl or DEFAULT_FAILURE_TTL,
        ttl=None if ttl == -1 else ttl, description=options.get("description"),
        meta=options.get("meta"), depends_on=options.get("depends_on"),
        at_front=bool(options.get("at_front")), **resolved)
    if queue.is_async:
        check_importable_from_worker(job.func_name or "", job.instance)
    # section 7 fields are stored only when given: the plain path stays as cheap
    if retry is not None:
        job.extra.update(retry_fields(retry))
    if on_success is not None or on_failure is not None:
        job.extra.update(callback_fields(on_success, on_failure))
    job.serialize_data()  # fail now, before anything is written
    _add_flow_fields(queue, job, *flow)
    if job.meta:
        job.serialize_meta()  # likewise (enqueue_many streams its writes)
    return job


def _add_flow_fields(queue: Queue, job: Job, limit: Any, unique: Any, unique_key: Any) -> None:
    """Section 8's job fields, stored only when given: the limit (the job's, else the
    queue's) and the unique identity. Bad values raise ValueError."""
    limit = check_limit(limit, queue.is_async) or queue.limit
    if limit is not None:
        job.extra.update(limit_fields(limit))
    if unique is not None or unique_key is not None:
        job.extra.update(unique_fields(job.func_name or "", job.serialize_data(), unique,
                                       unique_key))
