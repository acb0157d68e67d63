"""The dashboard's JSON API (``/api/...``): what the pages show, and their actions.

Every POST takes a JSON body (``Content-Type: application/json``); see
:mod:`.security` for why that is what stops a cross-site request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, request

from ..stats import take_snapshot
from ..utils import now
from . import actions
from .config import DashboardConfig, current_config
from .jobs import read_job
from .listing import SOURCES, JobList
from .overview import overview_dict, read_overview
from .web import blueprint, check_job_id, error, page_arguments, unknown_queue

MAX_IDS = 10_000  # ids one requeue request may name


@blueprint.get("/api/queues")
def api_queues() -> Response:
    """``[{"name", "queued", ..., "paused", "oldest_job_age"}, ...]``"""
    config = current_config()
    snapshot = take_snapshot(config.connection, config.keys)
    return jsonify([queue.as_dict() for queue in snapshot.queues])


@blueprint.get("/api/overview")
def api_overview() -> Response:
    """Queues (with their rates), workers, pools and the suspend flag: what the overview
    page polls."""
    return jsonify(overview_dict(*read_overview(current_config())))


@blueprint.get("/api/queues/<name>/<source>")
def api_jobs(name: str, source: str) -> Response:
    """One page of a queue's jobs (``queued``) or of a registry: ``?page=&page_size=&search=``."""
    config = current_config()
    if source not in SOURCES:
        return error(f"no registry {source!r}: one of {', '.join(SOURCES)}", 404)
    if (missing := unknown_queue(config, name)) is not None:
        return missing
    number, size, search = page_arguments(config)
    listing = JobList(config.connection, config.keys, name, source, now())
    page = listing.search(search, number, size, config.search_limit) if search \
        else listing.page(number, size)
    return jsonify(page.as_dict())


@blueprint.get("/api/jobs/<job_id>")
def api_job(job_id: str) -> Response:
    config = current_config()
    job = None if check_job_id(job_id) else read_job(config.connection, config.keys,
                                                     config.loader, job_id)
    if job is None:
        return error(f"no job with id {job_id!r}", 404)
    return jsonify(job.as_dict())


def _body() -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


@blueprint.post("/api/queues/<name>/failed/requeue")
def api_requeue_failed(name: str) -> Response:
    """``{"ids": [...]}``, ``{"search": "..."}`` or ``{}`` (all) -> ``{"requeued": n}``."""
    config = current_config()
    if (missing := unknown_queue(config, name)) is not None:
        return missing
    body = _body()
    if body is None:
        return error('the body must be a JSON object: {"ids": [...]} or {} for all', 400)
    ids, search = body.get("ids"), body.get("search", "")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        return error('"ids" must be a list of job id strings', 400)
    if ids is not None and len(ids) > MAX_IDS:
        return error(f'"ids" names {len(ids)} jobs: at most {MAX_IDS} per request', 400)
    if not isinstance(search, str):
        return error('"search" must be a string', 400)
    count = actions.requeue_failed(config, name, ids=ids, search=search.strip())
    return jsonify({"requeued": count})


def _job_action(job_id: str, action: Callable[[DashboardConfig, str], None],
                outcome: dict[str, Any]) -> Response:
    if _body() is None:
        return error("the body must be a JSON object ({} will do)", 400)
    if check_job_id(job_id):
        return error(f"no job with id {job_id!r}", 404)
    try:
        action(current_config(), job_id)
    except actions.ActionError as exc:
        return error(str(exc), exc.status)
    return jsonify({"id": job_id, **outcome})


@blueprint.post("/api/jobs/<job_id>/requeue")
def api_requeue_job(job_id: str) -> Response:
    return _job_action(job_id, actions.requeue_job, {"status": "queued"})


@blueprint.post("/api/jobs/<job_id>/delete")
def api_delete_job(job_id: str) -> Response:
    return _job_action(job_id, actions.delete_job, {"deleted": True})


@blueprint.post("/api/jobs/<job_id>/stop")
def api_stop_job(job_id: str) -> Response:
    return _job_action(job_id, actions.stop_job, {"stop_sent": True})


def _pause(name: str, paused: bool) -> Response:
    config = current_config()
    if _body() is None:
        return error("the body must be a JSON object ({} will do)", 400)
    if (missing := unknown_queue(config, name)) is not None:
        return missing
    try:
        actions.set_paused(config, name, paused)
    except actions.ActionError as exc:
        return error(str(exc), exc.status)
    return jsonify({"name": name, "paused": paused})


@blueprint.post("/api/queues/<name>/pause")
def api_pause_queue(name: str) -> Response:
    return _pause(name, True)


@blueprint.post("/api/queues/<name>/unpause")
def api_unpause_queue(name: str) -> Response:
    return _pause(name, False)
