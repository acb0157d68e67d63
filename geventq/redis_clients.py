"""Making a Redis client: from a URL, or from settings (host/port, TLS files, socket
timeouts, ACL users, Sentinel or Cluster). A bad URL raises ValueError and a bad
setting ConfigError naming it; neither ever shows a password.

Everything else about clients (resolving, describing, cloning them) is
:mod:`geventq.connection`, which re-exports the two entry points here.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from .cluster import as_redis_error
from .defaults import DEFAULT_REDIS_URL
from .exceptions import ConfigError
from .utils import redact_url, remember_secret, remember_settings_secrets, url_password

# settings key -> redis-py keyword, for TLS connections
_SSL_SETTINGS = {"REDIS_SSL_CA_CERTS": "ssl_ca_certs", "REDIS_SSL_CERTFILE": "ssl_certfile",
                 "REDIS_SSL_KEYFILE": "ssl_keyfile"}
_SOCKET_SETTINGS = {"REDIS_SOCKET_TIMEOUT": "socket_timeout",
                    "REDIS_SOCKET_CONNECT_TIMEOUT": "socket_connect_timeout"}


def get_connection(url: str | None = None, cluster: bool = False, **kwargs) -> Any:
    """Return a ``redis.Redis`` for ``url``, else ``$REDIS_URL``, else localhost.

    Accepts ``redis://``, ``rediss://`` (TLS), ``unix://`` and user/password
    in the URL. A malformed URL raises ``ValueError`` with the password hidden
    (from that moment on, every message of the process hides it: ``redact_url``).

    With ``cluster=True``: a ``redis.cluster.RedisCluster`` seeded by ``url``
    (any node of the cluster). It reads the cluster's topology at once, so an
    unreachable cluster raises ``redis.ConnectionError`` here (wrong
    credentials: ``redis.AuthenticationError``).
    """
    url = url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    remember_secret(url_password(url))
    _check_credentials(url)
    if cluster:
        return _cluster_client(url, kwargs)
    try:
        return redis.Redis.from_url(url, **kwargs)
    except ValueError as exc:
        raise ValueError(f"bad Redis URL {redact_url(url)!r}: {redact_url(str(exc))}") from None


def _check_credentials(url: str) -> None:
    """Refuse a password that the URL parser would cut short (an unencoded ``/ ? #``):
    redis-py would then quote the part before it, as a port, in its own error."""
    from urllib.parse import urlsplit

    password = url_password(url)
    if not password:
        return
    try:
        _ = urlsplit(url).port  # ValueError: a character of the password cut the address short
        return
    except ValueError:
        pass
    for char, code in (("/", "%2F"), ("?", "%3F"), ("#", "%23")):
        if char in password:
            raise ValueError(f"bad Redis URL {redact_url(url)!r}: its password holds a {char!r}, "
                             f"which a URL must carry percent-encoded ({code})")


def _cluster_client(url: str, kwargs: dict[str, Any]) -> Any:
    if url.startswith("unix://"):
        raise ValueError(f"bad Redis URL {redact_url(url)!r}: a Redis Cluster is reached over "
                         "TCP (redis:// or rediss://), not a unix socket")
    try:
        return RedisCluster.from_url(url, **kwargs)
    except ValueError as exc:
        raise ValueError(f"bad Redis URL {redact_url(url)!r}: {redact_url(str(exc))}") from None
    except RedisClusterException as exc:
        error = as_redis_error(exc)
        if isinstance(error, redis.AuthenticationError):
            raise error
        reason = str(exc.__cause__ or exc)  # the node's own error, without redis-py's preamble
        raise redis.ConnectionError(f"cannot reach the Redis Cluster at {redact_url(url)}: "
                                    f"{redact_url(reason)}") from None


def connection_from_settings(settings: dict) -> Any:
    """A connection from config keys.

    ``REDIS_SENTINELS`` (with ``REDIS_SENTINEL_MASTER``) wins; else ``REDIS_URL``;
    else ``REDIS_HOST``/``PORT``/``DB``/``USERNAME``/``PASSWORD`` (``REDIS_SSL`` for
    TLS); else ``$REDIS_URL`` or localhost. ``REDIS_SSL_CA_CERTS``/``CERTFILE``/
    ``KEYFILE`` apply to every TLS connection. With ``REDIS_CLUSTER = True`` that
    address is any node of a Redis Cluster and the result a
    ``redis.cluster.RedisCluster`` (see :func:`get_connection`). Raises
    ``ConfigError`` naming the setting that is wrong (never showing a password).
    """
    remember_settings_secrets(settings)
    url = settings.get("REDIS_URL")
    cluster = _bool_setting(settings, "REDIS_CLUSTER")
    if settings.get("REDIS_SENTINELS"):
        if cluster:
            raise ConfigError("REDIS_CLUSTER and REDIS_SENTINELS are both set: a Redis Cluster "
                              "fails over by itself, without Sentinel; keep one")
        return _sentinel_master(settings)
    if cluster and not url and settings.get("REDIS_HOST"):
        if _int_setting(settings, "REDIS_DB", 0) != 0:
            raise ConfigError("REDIS_DB must be 0 (or unset) with REDIS_CLUSTER: a cluster has "
                              "one database")
        url = _url_from_host(settings)
    if cluster:
        url = url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
        tls = url.startswith("rediss://")
        return get_connection(url, cluster=True, **_options(settings, tls, "a rediss:// URL"))
    if url or not settings.get("REDIS_HOST"):
        url = url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
        tls = url.startswith("rediss://")
        return get_connection(url, **_options(settings, tls, "a rediss:// URL"))
    tls = bool(settings.get("REDIS_SSL"))
    return redis.Redis(host=settings["REDIS_HOST"], port=_int_setting(settings, "REDIS_PORT", 6379),
                       db=_int_setting(settings, "REDIS_DB", 0),
                       username=settings.get("REDIS_USERNAME"),
                       password=settings.get("REDIS_PASSWORD"), ssl=tls,
                       **_options(settings, tls, "REDIS_SSL = True"))


def _options(settings: dict, tls: bool, how: str) -> dict[str, Any]:
    """Socket and TLS keywords for redis-py from the settings."""
    options: dict[str, Any] = {}
    for key, name in _SOCKET_SETTINGS.items():
        if settings.get(key) is not None:
            try:
                options[name] = float(settings[key])
            except (TypeError, ValueError):
                raise ConfigError(f"{key} must be seconds, got {settings[key]!r}") from None
    given = {key: settings[key] for key in _SSL_SETTINGS if settings.get(key)}
    if given and not tls:
        raise ConfigError(f"{', '.join(given)} set but the connection does not use TLS: "
                          f"use {how}")
    for key, path in given.items():
        if not os.path.isfile(path):
            raise ConfigError(f"{key}: no such file: {path}")
        options[_SSL_SETTINGS[key]] = path
    if tls and settings.get("REDIS_SSL_CERT_REQS"):
        options["ssl_cert_reqs"] = settings["REDIS_SSL_CERT_REQS"]
    return options


def _url_from_host(settings: dict) -> str:
    """A URL for REDIS_HOST/PORT/USERNAME/PASSWORD/SSL (cluster clients start from a URL)."""
    from urllib.parse import quote

    user, password = settings.get("REDIS_USERNAME"), settings.get("REDIS_PASSWORD")
    auth = ""
    if user or password:
        auth = f"{quote(str(user or ''), safe='')}:{quote(str(password or ''), safe='')}@"
    scheme = "rediss" if settings.get("REDIS_SSL") else "redis"
    return f"{scheme}://{auth}{settings['REDIS_HOST']}:{_int_setting(settings, 'REDIS_PORT', 6379)}"


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _bool_setting(settings: dict, key: str) -> bool:
    value = settings.get(key)
    if value is None or isinstance(value, bool) or value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{key} must be True or False, got {value!r}")


def _int_setting(settings: dict, key: str, default: int) -> int:
    value = settings.get(key)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be an integer, got {value!r}") from None


def _sentinel_master(settings: dict) -> redis.Redis:
    """A client of the master that Sentinel names; it follows a failover by itself."""
    from redis.sentinel import Sentinel

    master = settings.get("REDIS_SENTINEL_MASTER")
    if not master or not isinstance(master, str):
        raise ConfigError("REDIS_SENTINELS is set: REDIS_SENTINEL_MASTER must name the master "
                          "(the name in 'sentinel monitor <name> ...')")
    addresses = []
    for item in settings["REDIS_SENTINELS"]:
        if isinstance(item, str) and ":" in item:
            item = item.rsplit(":", 1)
        try:
            host, port = item
            addresses.append((str(host), int(port)))
        except (TypeError, ValueError):
            raise ConfigError(f"REDIS_SENTINELS takes (host, port) pairs or 'host:port' strings, "
                              f"got {item!r}") from None
    tls = bool(settings.get("REDIS_SSL"))
    options = _options(settings, tls, "REDIS_SSL = True")
    options["connection_class"] = _following_classes()[tls]
    sentinel_kwargs = dict(settings.get("REDIS_SENTINEL_KWARGS") or {})
    for key, name in (("REDIS_SENTINEL_PASSWORD", "password"),
                      ("REDIS_SENTINEL_USERNAME", "username")):
        if settings.get(key):
            sentinel_kwargs.setdefault(name, settings[key])
    for name in ("socket_timeout", "socket_connect_timeout"):
        if name in options:
            sentinel_kwargs.setdefault(name, options[name])
    sentinel = Sentinel(addresses, sentinel_kwargs=sentinel_kwargs,
                        db=_int_setting(settings, "REDIS_DB", 0),
                        username=settings.get("REDIS_USERNAME"),
                        password=settings.get("REDIS_PASSWORD"), **options)
    return sentinel.master_for(master)


_FOLLOWING: dict[bool, type] = {}


def _following_classes() -> dict[bool, type]:
    """Sentinel connection classes (plain, TLS) that reconnect to the *current* master.

    redis-py (8.x) redials a dropped connection through ``connect_check_health()``,
    which skips ``SentinelManagedConnection.connect()`` and its look-up, so after a
    failover it keeps dialling the dead master. These look the master up there too.
    """
    if not _FOLLOWING:
        from redis.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection

        for tls, base in ((False, SentinelManagedConnection), (True, SentinelManagedSSLConnection)):

            class Following(base):  # type: ignore[valid-type,misc]
                def connect_check_health(self, *args: Any, **kwargs: Any) -> Any:
                    if self._sock is None and self.connection_pool.is_master:
                        self.host, self.port = self.connection_pool.get_master_address()
                    return super().connect_check_health(*args, **kwargs)

            Following.__name__ = Following.__qualname__ = f"Following{base.__name__}"
            _FOLLOWING[tls] = Following
    return _FOLLOWING
