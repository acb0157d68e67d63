"""``create_app()``: the dashboard as a Flask app of its own, with basic auth."""

from __future__ import annotations

import os
from typing import Any

import redis
from flask import Flask

from .config import DEFAULT_PAGE_SIZE, DEFAULT_SEARCH_LIMIT, init_dashboard
from .security import AUTH_ENV, basic_auth_guard, parse_credentials
from .web import blueprint


def create_app(connection: redis.Redis | None = None, auth: str | tuple[str, str] | None = None, *,
               prefix: str | None = None, read_only: bool = False, serializer: Any = None,
               page_size: int = DEFAULT_PAGE_SIZE,
               search_limit: int = DEFAULT_SEARCH_LIMIT) -> Flask:
    """The dashboard as a WSGI app.

    ``auth`` is ``"USER:PASSWORD"`` (or a pair): every request must carry those
    credentials (HTTP basic auth), else it gets 401. Not given: ``$GEVENTQ_DASHBOARD_AUTH``
    if set, else no auth (``geventq dashboard`` then binds loopback only).
    The other arguments are those of :func:`~geventq.dashboard.init_dashboard`.
    """
    credentials = parse_credentials(auth if auth is not None else os.environ.get(AUTH_ENV))
    app = Flask(__name__, static_folder=None)
    init_dashboard(app, connection, prefix=prefix, read_only=read_only, serializer=serializer,
                   page_size=page_size, search_limit=search_limit)
    if credentials is not None:
        app.before_request(basic_auth_guard(credentials))
    app.register_blueprint(blueprint)
    return app
