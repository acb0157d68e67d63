"""The geventq web dashboard (needs Flask: ``pip install 'geventq[dashboard]'``).

``create_app(connection=None, auth=None)`` returns the dashboard as a Flask app
(served by ``geventq dashboard``); ``blueprint`` mounts it inside your own app,
which then brings its own auth (configure it with ``init_dashboard(app, ...)``).
See docs/dashboard.md.
"""

from __future__ import annotations

from . import api, pages  # noqa: F401  (each attaches its routes to the blueprint)
from .app import create_app
from .config import init_dashboard
from .web import blueprint

__all__ = ["blueprint", "create_app", "init_dashboard"]
