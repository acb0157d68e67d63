"""A small Flask app that enqueues jobs from a view and shows their status and result.

Run it (with a worker next to it):

    REDIS_URL=redis://localhost:6379/0 flask --app examples.flask_app.app run
    REDIS_URL=redis://localhost:6379/0 geventq worker

The patterns it shows:

- one Redis connection pool per application, created once in ``create_app``
  and shared by every request (a ``redis.Redis`` client is thread-safe);
- jobs enqueued by dotted path, so the web process never imports the job code
  or its dependencies: only the worker does;
- ``is_async=False`` in the application's own tests: the job runs during the
  request, no worker needed (``create_app(is_async=False)``);
- a live progress bar for a long job (``/reports``): the page listens to
  ``/jobs/<id>/events``, server-sent events fed by ``job.events()``, which
  blocks in Redis until the job reports progress or ends (no polling).
"""

from __future__ import annotations

import json
import os
import re

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from redis import ConnectionPool, Redis

from geventq import Job, Queue
from geventq.exceptions import NoSuchJobError

# The job, by dotted path: only the worker imports examples.count_words (and requests).
COUNT_WORDS = "examples.count_words.count_words_at_url"
BUILD_REPORT = "examples.long_report.build_report"
EVENTS_TIMEOUT = 600  # seconds an event stream stays open for a job that does not end
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_URL = re.compile(r"^https?://[^\s]+$")


def create_app(redis_url: str | None = None, is_async: bool = True, queue_name: str = "default") -> Flask:
    """Build the app; ``redis_url`` defaults to ``$REDIS_URL``, else localhost."""
    app = Flask(__name__)
    url = redis_url or os.environ.get("REDIS_URL") or "redis://localhost:6379/0"
    # Created once per app: every request borrows a connection from this pool.
    pool = ConnectionPool.from_url(url)
    connection = Redis(connection_pool=pool)
    app.extensions["geventq"] = Queue(queue_name, connection=connection, is_async=is_async)

    @app.get("/")
    def index():
        return render_template("index.html")

    @app.post("/jobs")
    def enqueue():
        url = (request.form.get("url") or "").strip()
        if not _URL.match(url):
            return render_template("index.html", error=f"not an http(s) URL: {url!r}", url=url), 400
        job = queue().enqueue(COUNT_WORDS, url, job_timeout="30s", result_ttl=3600,
                              description=f"count the words at {url}")
        return redirect(url_for("show_job", job_id=job.id), code=303)

    @app.get("/jobs/<job_id>")
    def show_job(job_id: str):
        job = load_job(job_id)
        return render_template("job.html", job=job, status=str(job.get_status()))

    @app.get("/api/jobs/<job_id>")
    def job_json(job_id: str):
        job = load_job(job_id)
        error = (job.exc_info or "").strip().splitlines()
        return jsonify(id=job.id, status=str(job.get_status()), result=job.result,
                       error=error[-1] if error else None, description=job.description)

    @app.post("/reports")
    def enqueue_report():
        parts = request.form.get("parts", "10")
        if not parts.isdigit() or not 1 <= int(parts) <= 100:
            return render_template("index.html", error=f"parts must be 1 to 100, got {parts!r}"), 400
        job = queue().enqueue(BUILD_REPORT, int(parts), job_timeout="10m", result_ttl=3600,
                              description=f"a report of {parts} parts")
        return redirect(url_for("show_report", job_id=job.id), code=303)

    @app.get("/reports/<job_id>")
    def show_report(job_id: str):
        return render_template("report.html", job=load_job(job_id))

    @app.get("/jobs/<job_id>/events")
    def job_events(job_id: str):
        """Server-sent events: the job's progress, then its end (then the stream closes)."""
        job = load_job(job_id)

        def stream():
            try:
                for event in job.events(timeout=EVENTS_TIMEOUT):
                    at = event["at"].isoformat() if event["at"] else None
                    yield f"data: {json.dumps({**event, 'at': at})}\n\n"
            except TimeoutError:
                yield 'data: {"event": "timeout"}\n\n'

        return Response(stream_with_context(stream()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


def queue() -> Queue:
    """The app's one Queue (and so its one connection pool)."""
    return current_app.extensions["geventq"]


def load_job(job_id: str) -> Job:
    """The job of this queue, or a 404 (unknown, expired, or not an id at all)."""
    if not _JOB_ID.match(job_id):
        abort(404)
    q = queue()
    try:
        return Job.fetch(job_id, connection=q.connection, keys=q.keys)
    except NoSuchJobError:
        abort(404)
