"""The dashboard's HTML pages and the form POSTs behind their buttons."""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse  # what flask.redirect returns

from ..stats import QUEUE_STATES, take_snapshot
from ..utils import now
from . import actions
from .config import PAGE_SIZES, DashboardConfig, current_config
from .jobs import read_job
from .listing import SOURCES, JobList
from .overview import read_overview
from .web import blueprint, check_job_id, check_queue_name, error, page_arguments, unknown_queue

REGISTRIES = tuple(s for s in SOURCES if s != "queued")
# what a redirect after an action says (fixed texts: nothing from the request is echoed)
DONE = {"requeued": "Job requeued.", "deleted": "Job deleted.",
        "stopped": "Stop sent: the worker running the job stops it.",
        "paused": "Queue paused.", "unpaused": "Queue unpaused."}


def _notice() -> str:
    done = request.args.get("done", "")
    if done in DONE:
        return DONE[done]
    count = request.args.get("requeued", "")
    return f"{int(count):,} job(s) requeued." if count.isdigit() and len(count) < 10 else ""


@blueprint.get("/")
def overview() -> str:
    snapshot, rates = read_overview(current_config())
    return render_template("geventq_dashboard/overview.html", snapshot=snapshot, rates=rates,
                           states=QUEUE_STATES)


def _list_page(name: str, source: str) -> Response | str:
    config = current_config()
    if (missing := unknown_queue(config, name)) is not None:
        return missing
    number, size, search = page_arguments(config)
    listing = JobList(config.connection, config.keys, name, source, now())
    if search:
        page = listing.search(search, number, size, config.search_limit)
    else:
        page = listing.page(number, size)
    stats = take_snapshot(config.connection, config.keys, [name])
    template = "queue.html" if source == "queued" else "registry.html"
    return render_template(f"geventq_dashboard/{template}", queue=stats.queues[0],
                           workers=stats.workers, page=page, registries=REGISTRIES,
                           page_sizes=PAGE_SIZES, search_limit=config.search_limit,
                           notice=_notice())


@blueprint.get("/queues/<name>")
def queue_page(name: str) -> Response | str:
    return _list_page(name, "queued")


@blueprint.get("/queues/<name>/<registry>")
def registry_page(name: str, registry: str) -> Response | str:
    if registry not in REGISTRIES:
        return error(f"no registry {registry!r}: one of {', '.join(REGISTRIES)}", 404)
    return _list_page(name, registry)


@blueprint.get("/jobs/<job_id>")
def job_page(job_id: str) -> Response | str:
    config = current_config()
    job = None if check_job_id(job_id) else read_job(config.connection, config.keys,
                                                     config.loader, job_id)
    if job is None:
        return error(f"no job with id {job_id!r}", 404)
    return render_template("geventq_dashboard/job.html", job=job, notice=_notice())


# -- buttons (form POSTs; guard_posts has checked the CSRF token) ----------------------

def _job_action(job_id: str, action: Callable[[DashboardConfig, str], None], done: str) -> BaseResponse:
    if check_job_id(job_id):
        return error(f"no job with id {job_id!r}", 404)
    try:
        action(current_config(), job_id)
    except actions.ActionError as exc:
        return error(str(exc), exc.status)
    return redirect(url_for(".job_page", job_id=job_id, done=done), 303)


@blueprint.post("/jobs/<job_id>/requeue")
def requeue_job(job_id: str) -> BaseResponse:
    return _job_action(job_id, actions.requeue_job, "requeued")


@blueprint.post("/jobs/<job_id>/stop")
def stop_job(job_id: str) -> BaseResponse:
    return _job_action(job_id, actions.stop_job, "stopped")


@blueprint.post("/jobs/<job_id>/delete")
def delete_job(job_id: str) -> BaseResponse:
    origin = request.form.get("origin", "")
    if check_job_id(job_id):
        return error(f"no job with id {job_id!r}", 404)
    try:
        actions.delete_job(current_config(), job_id)
    except actions.ActionError as exc:
        return error(str(exc), exc.status)
    if origin and not check_queue_name(origin):
        return redirect(url_for(".queue_page", name=origin, done="deleted"), 303)
    return redirect(url_for(".overview", done="deleted"), 303)


@blueprint.post("/queues/<name>/failed/requeue")
def requeue_failed(name: str) -> BaseResponse:
    config = current_config()
    if (missing := unknown_queue(config, name)) is not None:
        return missing
    search = request.form.get("search", "").strip()
    count = actions.requeue_failed(config, name, search=search)
    return redirect(url_for(".registry_page", name=name, registry="failed", requeued=count), 303)


def _pause_action(name: str, paused: bool) -> BaseResponse:
    config = current_config()
    if (missing := unknown_queue(config, name)) is not None:
        return missing
    try:
        actions.set_paused(config, name, paused)
    except actions.ActionError as exc:
        return error(str(exc), exc.status)
    return redirect(url_for(".queue_page", name=name, done="paused" if paused else "unpaused"), 303)


@blueprint.post("/queues/<name>/pause")
def pause_queue(name: str) -> BaseResponse:
    return _pause_action(name, True)


@blueprint.post("/queues/<name>/unpause")
def unpause_queue(name: str) -> BaseResponse:
    return _pause_action(name, False)
