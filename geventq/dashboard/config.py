"""The dashboard's settings for one Flask app: which Redis, which prefix, read-only or not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Flask, current_app

from ..connection import describe_connection, resolve_connection_and_keys
from ..keys import Keys
from .display import SafeLoader
from .rates import QueueRates

EXTENSION = "geventq.dashboard"
DEFAULT_PAGE_SIZE = 50
PAGE_SIZES = (20, 50, 100, 200)
DEFAULT_SEARCH_LIMIT = 1000


@dataclass
class DashboardConfig:
    """What every view of one app works with (``app.extensions["geventq.dashboard"]``)."""

    connection: redis.Redis
    keys: Keys
    loader: SafeLoader
    read_only: bool = False
    page_size: int = DEFAULT_PAGE_SIZE
    search_limit: int = DEFAULT_SEARCH_LIMIT
    rates: QueueRates = field(default_factory=QueueRates)  # this process's counter readings

    @property
    def redis_description(self) -> str:
        """Where the dashboard reads from, never with a password."""
        return describe_connection(self.connection)


def init_dashboard(app: Flask, connection: redis.Redis | None = None, *, prefix: str | None = None,
                   read_only: bool = False, serializer: Any = None,
                   page_size: int = DEFAULT_PAGE_SIZE,
                   search_limit: int = DEFAULT_SEARCH_LIMIT) -> DashboardConfig:
    """Configure the dashboard blueprint for ``app``.

    ``connection`` defaults to ``$REDIS_URL`` (else localhost), ``prefix`` to
    ``$GEVENTQ_PREFIX`` (else ``geventq:``, ``{geventq}:`` on a Redis Cluster, where
    the dashboard reads the shard of the prefix's slot). ``serializer`` is the workers'
    setting (None/"pickle", "json" or a dotted path): how job arguments and
    results are decoded for display (pickle through a restricted unpickler).
    ``search_limit`` is how many of the newest entries a search scans.
    """
    if not isinstance(page_size, int) or not 1 <= page_size <= 1000:
        raise ValueError(f"page_size must be an integer from 1 to 1000, got {page_size!r}")
    if not isinstance(search_limit, int) or not 1 <= search_limit <= 100_000:
        raise ValueError(f"search_limit must be an integer from 1 to 100000, got {search_limit!r}")
    # one call for both: on a cluster the prefix decides which shard's client to use
    client, keys = resolve_connection_and_keys(connection, None, prefix)
    config = DashboardConfig(client, keys, SafeLoader(serializer), bool(read_only), page_size, search_limit)
    app.extensions[EXTENSION] = config
    return config


def current_config() -> DashboardConfig:
    """The current app's settings; an app that mounted the blueprint without
    :func:`init_dashboard` gets the defaults (``$REDIS_URL``)."""
    config = current_app.extensions.get(EXTENSION)
    if config is None:
        config = init_dashboard(current_app)
    return config
