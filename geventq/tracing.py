"""OpenTelemetry trace context through the queue (the ``geventq[otel]`` extra).

Imported only when tracing is in use: by :meth:`geventq.job.Job.create` when the
application has imported ``opentelemetry.trace`` (it traces), and by
:func:`geventq.execution.execute` for a job that carries a trace context. A job
built inside an active span stores that span's context (W3C ``traceparent``, and
``tracestate`` when there is one, as JSON) in its hash field ``trace``; the worker
runs the job inside a span that is a child of it, with the job's id, queue,
function and outcome as attributes. Job code that makes spans of its own makes
them children of the job's span.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from opentelemetry import propagate, trace

if TYPE_CHECKING:
    from .endings import Ending
    from .job import Job

FIELD = "trace"  # the job hash field holding the carrier
TRACER_NAME = "geventq"
logger = logging.getLogger("geventq.worker")


def inject(job: Job) -> None:
    """Store the active span's context in the new job (nothing outside a span)."""
    # Most enqueues of a traced app happen outside a span (scripts, cron): asking the
    # current span first skips the propagators' work for them (~4% of an enqueue's CPU).
    if not trace.get_current_span().get_span_context().is_valid:
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if carrier:
        job.extra[FIELD] = json.dumps(carrier, separators=(",", ":"), sort_keys=True)


def run_traced(job: Job, run: Callable[[], Ending]) -> Ending:
    """``run()`` (the job's execution) inside a span that is a child of the job's stored
    context; the span gets the ending's outcome. A stored context that does not parse
    (anyone may write to Redis) gives a span with no parent, never an error."""
    try:
        carrier = json.loads(job.extra.get(FIELD) or "{}")
        if not isinstance(carrier, dict):
            raise ValueError("not an object")
        parent = propagate.extract({str(k): str(v) for k, v in carrier.items()})
    except ValueError as exc:
        logger.warning("job %s: its trace context cannot be read (%s): traced without one",
                       job.id, exc)
        parent = None
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(f"geventq job {job.func_name}", context=parent,
                                      kind=trace.SpanKind.CONSUMER,
                                      record_exception=False, set_status_on_exception=False
                                      ) as span:
        span.set_attribute("geventq.job.id", job.id)
        span.set_attribute("geventq.queue", job.origin or "")
        span.set_attribute("geventq.function", job.func_name or "")
        ending = run()
        span.set_attribute("geventq.outcome", ending.outcome)
        if ending.outcome != "finished":
            span.set_status(trace.Status(trace.StatusCode.ERROR, ending.outcome))
        return ending
