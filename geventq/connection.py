"""Getting a Redis connection."""

from __future__ import annotations

import os

import redis

from .defaults import DEFAULT_REDIS_URL
from .utils import redact_url


def get_connection(url: str | None = None, **kwargs) -> redis.Redis:
    """Return a ``redis.Redis`` for ``url``, else ``$REDIS_URL``, else localhost.

    Accepts ``redis://``, ``rediss://`` (TLS), ``unix://`` and user/password
    in the URL. A malformed URL raises ``ValueError`` with the password hidden.
    """
    url = url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    try:
        return redis.Redis.from_url(url, **kwargs)
    except ValueError as exc:
        raise ValueError(f"bad Redis URL {redact_url(url)!r}: {_redact(str(exc), url)}") from None


def resolve_connection(connection: redis.Redis | None) -> redis.Redis:
    """The given connection, or one from the environment; refuse decoded clients."""
    if connection is None:
        return get_connection()
    if not isinstance(connection, redis.Redis):
        raise TypeError(f"connection must be a redis.Redis instance, got {type(connection).__name__}")
    if connection.get_connection_kwargs().get("decode_responses"):
        raise ValueError(
            "geventq stores binary data: pass a redis.Redis made without decode_responses=True"
        )
    return connection


def _redact(text: str, url: str) -> str:
    safe = redact_url(url) or ""
    return text.replace(url, safe)
