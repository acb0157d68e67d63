"""Getting a Redis connection: a URL, host/port settings, TLS, ACL users, Sentinel or Cluster."""

from __future__ import annotations

import os
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from .cluster import (
    as_redis_error,
    clone_slot_client,
    describe_cluster,
    describe_slot_client,
    rebind,
    slot_client,
    slot_route,
)
from .defaults import DEFAULT_REDIS_URL
from .exceptions import ConfigError
from .keys import Keys, resolve_keys
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


def describe_connection(connection: Any) -> str:
    """Where a client points, without its password: for logs and error messages."""
    if is_cluster(connection):
        return describe_slot_client(connection) if isinstance(connection, redis.Redis) \
            else describe_cluster(connection)
    pool = connection.connection_pool
    kwargs = pool.connection_kwargs
    user = f"{kwargs['username']}@" if kwargs.get("username") else ""
    if "path" in kwargs:
        return f"unix://{user}{kwargs['path']}"
    tls = " (TLS)" if issubclass(pool.connection_class, redis.SSLConnection) else ""
    sentinel = getattr(pool, "sentinel_manager", None)
    if sentinel is not None:
        nodes = ",".join("{host}:{port}".format_map(s.connection_pool.connection_kwargs)
                         for s in sentinel.sentinels)
        return f"master {user}{pool.service_name}/{kwargs.get('db', 0)} via sentinels {nodes}{tls}"
    return f"{user}{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/" \
           f"{kwargs.get('db', 0)}{tls}"


def is_cluster(connection: Any) -> bool:
    """True for a ``redis.cluster.RedisCluster`` and for the slot clients made from one."""
    if isinstance(connection, RedisCluster):
        return True
    if isinstance(connection, redis.Redis):
        return slot_route(connection) is not None
    return False


def is_cluster_node(connection: redis.Redis) -> bool:
    """True when the server of a plain client runs in cluster mode (it needs a cluster client)."""
    try:
        return bool(connection.info("cluster").get("cluster_enabled"))
    except redis.ResponseError:  # INFO refused to this ACL user: cannot tell
        return False


def resolve_connection(connection: Any = None, keys: Keys | None = None) -> redis.Redis:
    """The given connection, or one from the environment; refuse decoded clients.

    A ``redis.cluster.RedisCluster`` (or a slot client of another prefix) becomes
    the ``redis.Redis`` of the primary serving the slot of ``keys`` (default: the
    cluster default prefix), shared by everything that uses that prefix.
    """
    if connection is None:
        return get_connection()
    if not isinstance(connection, redis.Redis) and not is_cluster(connection):
        raise TypeError(f"connection must be a redis.Redis or a redis.cluster.RedisCluster, "
                        f"got {type(connection).__name__}")
    if connection.get_connection_kwargs().get("decode_responses"):
        raise ValueError(
            "geventq stores binary data: pass a client made without decode_responses=True"
        )
    if is_cluster(connection):
        keys = resolve_keys(keys, cluster=True)
        return rebind(connection, keys) if isinstance(connection, redis.Redis) \
            else slot_client(connection, keys)
    return connection


def resolve_connection_and_keys(connection: Any = None, keys: Keys | None = None,
                                prefix: str | None = None) -> tuple[redis.Redis, Keys]:
    """The client and key space a Queue, Job, registry or Worker works with.

    Keys: ``keys``, else ``prefix``, ``$GEVENTQ_PREFIX`` or the default
    (``geventq:``; ``{geventq}:`` on a cluster, where a prefix without a hash tag
    is refused with ValueError). The client: :func:`resolve_connection`.
    """
    keys = resolve_keys(keys, prefix, cluster=is_cluster(connection))
    return resolve_connection(connection, keys), keys



def clone_connection(connection: redis.Redis) -> redis.Redis:
    """A client to the same server with a pool of its own (for another thread or process).

    A Sentinel client gets its own Sentinel clients too, and a cluster slot client
    its own cluster client, so it follows a failover without sharing a socket or a
    lock with the original.
    """
    if is_cluster(connection):
        return clone_slot_client(connection)
    pool = connection.connection_pool
    kwargs = dict(pool.connection_kwargs)
    sentinel = getattr(pool, "sentinel_manager", None)
    if sentinel is None:
        new_pool = type(pool)(connection_class=pool.connection_class, **kwargs)
        return redis.Redis(connection_pool=new_pool)
    from redis.sentinel import Sentinel

    kwargs.pop("connection_pool", None)  # the old pool's proxy; the new pool makes its own
    addresses = [(s.connection_pool.connection_kwargs["host"],
                  s.connection_pool.connection_kwargs["port"]) for s in sentinel.sentinels]
    manager = Sentinel(addresses, min_other_sentinels=sentinel.min_other_sentinels,
                       sentinel_kwargs=sentinel.sentinel_kwargs,
                       force_master_ip=getattr(sentinel, "_force_master_ip", None),
                       **sentinel.connection_kwargs)
    new_pool = type(pool)(pool.service_name, manager, is_master=pool.is_master,
                          check_connection=pool.check_connection,
                          connection_class=pool.connection_class, **kwargs)
    return redis.Redis(connection_pool=new_pool)


# redis-py's TLS keywords -> the pulse's (geventq/pulse.py: tls_context)
_PULSE_TLS = {"ssl_ca_certs": "ca_certs", "ssl_ca_path": "ca_path", "ssl_certfile": "certfile",
              "ssl_keyfile": "keyfile", "ssl_password": "password", "ssl_ciphers": "ciphers"}


def pulse_endpoint(connection: redis.Redis) -> dict[str, Any]:
    """How the pulse process reaches the Redis of ``connection``, as plain JSON values.

    The pulse (``geventq/pulse.py``) speaks RESP itself; this reads what it
    needs from redis-py's pool: address (TCP, unix socket, the Sentinels and the
    service name, or a cluster's nodes, the primary of the client's slot first),
    credentials, database, timeouts and TLS options. Raises ``ValueError``
    naming what it cannot pass on (the worker then beats from a
    thread instead).
    """
    from redis.sentinel import SentinelConnectionPool

    pool = connection.connection_pool
    kwargs = pool.connection_kwargs
    endpoint = _link_options(kwargs, pool.connection_class)
    if isinstance(pool, SentinelConnectionPool):
        sentinels = pool.sentinel_manager.sentinels
        first = sentinels[0].connection_pool
        endpoint["sentinel"] = {
            "service": pool.service_name,
            "addresses": [[s.connection_pool.connection_kwargs["host"],
                           int(s.connection_pool.connection_kwargs["port"])] for s in sentinels],
            **_link_options(first.connection_kwargs, first.connection_class)}
    elif slot_route(connection) is not None:
        # a cluster slot client's pool has no address of its own: the pulse gets the nodes,
        # the slot's primary first, and follows MOVED replies to wherever the slot went
        route = slot_route(connection)
        nodes = route.seeds()
        try:
            nodes = [route.primary(), *nodes]
        except redis.RedisError:  # no topology now: any node will redirect the pulse
            pass
        endpoint["cluster"] = [[host, int(port)] for host, port in dict.fromkeys(nodes)]
    elif issubclass(pool.connection_class, redis.UnixDomainSocketConnection):
        endpoint["address"] = {"path": kwargs["path"]}
    else:
        endpoint["address"] = {"host": kwargs.get("host", "localhost"),
                               "port": int(kwargs.get("port", 6379))}
    return endpoint


def _link_options(kwargs: dict[str, Any], connection_class: type) -> dict[str, Any]:
    """Credentials, database, timeouts and TLS of one redis-py connection class + keywords."""
    if not issubclass(connection_class, (redis.Connection, redis.UnixDomainSocketConnection)):
        raise ValueError(f"the connection class {connection_class.__name__} is not one "
                         "geventq's pulse can imitate")
    if kwargs.get("redis_connect_func") is not None:
        raise ValueError("a custom redis_connect_func cannot be imitated")
    provider = kwargs.get("credential_provider")
    if provider is None and (kwargs.get("username") or kwargs.get("password")):
        provider = redis.UsernamePasswordCredentialProvider(kwargs.get("username"),
                                                            kwargs.get("password"))
    options: dict[str, Any] = {
        "auth": list(provider.get_credentials()) if provider is not None else None,
        "db": int(kwargs.get("db") or 0),
        "socket_timeout": kwargs.get("socket_timeout"),
        "connect_timeout": kwargs.get("socket_connect_timeout"),
        "tls": None,
    }
    if issubclass(connection_class, redis.SSLConnection):
        if kwargs.get("ssl_validate_ocsp") or kwargs.get("ssl_validate_ocsp_stapled"):
            raise ValueError("OCSP validation cannot be imitated")
        if isinstance(kwargs.get("ssl_ca_data"), bytes):
            raise ValueError("DER ssl_ca_data cannot be passed on")
        reqs = kwargs.get("ssl_cert_reqs", "required")
        if not isinstance(reqs, str):  # an ssl.VerifyMode
            reqs = {0: "none", 1: "optional", 2: "required"}[int(reqs)]
        version = kwargs.get("ssl_min_version")
        tls = {"cert_reqs": reqs.lower(), "check_hostname": kwargs.get("ssl_check_hostname", True),
               "ca_data": kwargs.get("ssl_ca_data"),
               "min_version": version.name if version is not None else None,
               "include_flags": sum(int(f) for f in kwargs.get("ssl_include_verify_flags") or ()),
               "exclude_flags": sum(int(f) for f in kwargs.get("ssl_exclude_verify_flags") or ())}
        tls.update({name: kwargs.get(key) for key, name in _PULSE_TLS.items()})
        options["tls"] = tls
    return options
