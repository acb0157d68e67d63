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


def connection_from_settings(settings: dict) -> redis.Redis:
    """A connection from config keys: REDIS_URL, else REDIS_HOST/PORT/DB/PASSWORD."""
    url = settings.get("REDIS_URL")
    if url or not settings.get("REDIS_HOST"):
        return get_connection(url)
    return redis.Redis(host=settings["REDIS_HOST"], port=int(settings.get("REDIS_PORT") or 6379),
                       db=int(settings.get("REDIS_DB") or 0),
                       username=settings.get("REDIS_USERNAME"),
                       password=settings.get("REDIS_PASSWORD"))


def describe_connection(connection: redis.Redis) -> str:
    """Where a client points, without its password: for logs and error messages."""
    kwargs = connection.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


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


def clone_connection(connection: redis.Redis) -> redis.Redis:
    """A client to the same server with a pool of its own (for another thread or process)."""
    pool = connection.connection_pool
    new_pool = type(pool)(connection_class=pool.connection_class, **pool.connection_kwargs)
    return redis.Redis(connection_pool=new_pool)
