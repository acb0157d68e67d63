"""The dashboard's Flask blueprint and its hooks (security, errors); helpers for its routes.

The routes themselves are in :mod:`.pages` and :mod:`.api`, which attach to ``blueprint``.
"""

from __future__ import annotations

import re

import redis
from flask import Blueprint, Response, jsonify, render_template, request, url_for

from .config import PAGE_SIZES, DashboardConfig, current_config
from .display import show_duration, show_rate, show_time
from .security import add_security_headers, csrf_token, refusal_of_post, set_csrf_cookie

blueprint = Blueprint("geventq_dashboard", __name__, template_folder="templates",
                      static_folder="static", static_url_path="/static")

_QUEUE_NAME = re.compile(r"^[^:\s]{1,200}$")
_JOB_ID = re.compile(r"^[^:\s]{1,200}$")


def is_api_request() -> bool:
    return (request.endpoint or "").startswith(f"{blueprint.name}.api_")


def error(message: str, status: int) -> Response:
    """An error answer: JSON for the API, a page otherwise (the message is escaped)."""
    if is_api_request():
        response = jsonify({"error": message})
    else:
        response = Response(render_template("geventq_dashboard/error.html", message=message,
                                            status=status))
    response.status_code = status
    return response


def check_queue_name(name: str) -> str | None:
    """Why ``name`` cannot be a queue's name (None: it can)."""
    return None if _QUEUE_NAME.match(name) else "not a valid queue name"


def check_job_id(job_id: str) -> str | None:
    return None if _JOB_ID.match(job_id) else "not a valid job id"


def unknown_queue(config: DashboardConfig, name: str) -> Response | None:
    """The 404 answer for a name that is no queue's (not a valid queue name, or never
    had a job); None for a known queue."""
    if check_queue_name(name) or not config.connection.sismember(config.keys.queues, name):
        return error(f"no queue named {name!r}", 404)
    return None


def page_arguments(config: DashboardConfig) -> tuple[int, int, str]:
    """(page number, page size, search text) from the query string, bounded."""
    try:
        number = max(1, min(int(request.args.get("page", 1)), 10**9))
    except ValueError:
        number = 1
    try:
        size = int(request.args.get("page_size", config.page_size))
    except ValueError:
        size = config.page_size
    if size not in PAGE_SIZES and size != config.page_size:
        size = config.page_size
    return number, size, request.args.get("search", "").strip()


@blueprint.before_request
def guard_posts() -> Response | None:
    if request.method != "POST":
        return None
    config = current_config()
    if config.read_only:
        return error("this dashboard is read-only", 403)
    reason = refusal_of_post(api=is_api_request())
    return error(reason, 403) if reason else None


@blueprint.after_request
def finish_response(response: Response) -> Response:
    set_csrf_cookie(response, url_for(".overview"))
    return add_security_headers(response)


@blueprint.errorhandler(redis.RedisError)
def redis_unavailable(exc: redis.RedisError) -> Response:
    config = current_config()
    if isinstance(exc, redis.ResponseError):  # an error reply (a key of the wrong type...)
        reply = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return error(f"Redis at {config.redis_description} answered with an error: {reply}", 502)
    # a connection error's text may hold the URL; the description never holds a password
    return error(f"Redis at {config.redis_description} did not answer: {type(exc).__name__}", 503)


@blueprint.context_processor
def template_helpers() -> dict:
    config = current_config()
    return {"csrf_token": csrf_token, "show_time": show_time, "show_duration": show_duration,
            "show_rate": show_rate, "read_only": config.read_only,
            "redis_description": config.redis_description}
