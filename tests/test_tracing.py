"""Trace context (OpenTelemetry, the geventq[otel] extra): the span of a Flask request that
enqueued a job is the parent of the span the worker runs the job in.

Uses the SDK's in-memory exporter, and a worker in this process (the exporter is here).
"""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")

from flask import Flask  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from geventq import Job, Queue, SimpleWorker  # noqa: E402

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans():
    """The finished spans of this test (one tracer provider for the whole process: the
    global one can be set once)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def _app(queue: Queue) -> Flask:
    app = Flask(__name__)
    tracer = trace.get_tracer("test-app")

    @app.post("/reports/<int:n>")
    def enqueue(n: int):
        # what opentelemetry-instrumentation-flask does around every request
        with tracer.start_as_current_span("POST /reports", kind=trace.SpanKind.SERVER):
            job = queue.enqueue("tests.jobs.add" if n else "tests.jobs.fail", n, 1)
        return {"id": job.id}

    return app


def test_the_request_span_is_the_parent_of_the_job_span(connection, spans):
    q = Queue("traced", connection=connection)
    client = _app(q).test_client()
    ok_id = client.post("/reports/41").get_json()["id"]
    failed_id = client.post("/reports/0").get_json()["id"]
    assert b"traceparent" in connection.hget(q.keys.job(ok_id), "trace")
    SimpleWorker([q], connection=connection).work(burst=True)
    assert Job.fetch(ok_id, connection=connection).result == 42

    by_name = {}
    for span in spans.get_finished_spans():
        by_name.setdefault(span.name, []).append(span)
    requests = by_name["POST /reports"]
    [ok] = by_name["geventq job tests.jobs.add"]
    [failed] = by_name["geventq job tests.jobs.fail"]
    for job_span, request, job_id, outcome in ((ok, requests[0], ok_id, "finished"),
                                               (failed, requests[1], failed_id, "failed")):
        assert job_span.parent is not None
        assert job_span.parent.span_id == request.context.span_id
        assert job_span.context.trace_id == request.context.trace_id
        assert job_span.kind == trace.SpanKind.CONSUMER
        assert dict(job_span.attributes) == {
            "geventq.job.id": job_id, "geventq.queue": "traced",
            "geventq.function": job_span.name.removeprefix("geventq job "),
            "geventq.outcome": outcome}
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert ok.status.status_code == trace.StatusCode.UNSET


def test_outside_a_span_a_job_carries_no_context_and_runs_untraced(connection, spans):
    q = Queue("untraced", connection=connection)
    job = q.enqueue("tests.jobs.add", 1, 2)
    assert connection.hget(job.key, "trace") is None
    SimpleWorker([q], connection=connection).work(burst=True)
    assert job.result == 3 and spans.get_finished_spans() == ()


def test_a_garbage_trace_context_gives_a_span_without_a_parent(connection, spans):
    q = Queue("garbage", connection=connection)
    job = q.enqueue("tests.jobs.add", 1, 2)
    connection.hset(job.key, "trace", "not json")
    SimpleWorker([q], connection=connection).work(burst=True)
    assert job.result == 3
    [span] = spans.get_finished_spans()
    assert span.parent is None and span.attributes["geventq.outcome"] == "finished"
