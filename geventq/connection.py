"""The client a Queue, Job, registry or Worker works with: resolving it, describing
where it points, cloning it, and what the pulse needs to reach its server.

Making a client from a URL or from settings is :mod:`geventq.redis_clients`;
``get_connection`` and ``connection_from_settings`` are importable from here too.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import RedisCluster

from .cluster import (
    clone_slot_client,
    describe_cluster,
    describe_slot_client,
    rebind,
    slot_client,
    slot_route,
)
from .keys import Keys, resolve_keys
from .redis_clients import connection_from_settings, get_connection

__all__ = ["clone_connection", "connection_from_settings", "describe_connection",
           "get_connection", "is_cluster", "is_cluster_node", "pulse_endpoint",
           "resolve_connection", "resolve_connection_and_keys"]


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
    from redis.sentinel import Sentinel, SentinelConnectionPool

    if not isinstance(pool, SentinelConnectionPool):
        new_pool = type(pool)(connection_class=pool.connection_class, **kwargs)
        return redis.Redis(connection_pool=new_pool)
    sentinel = pool.sentinel_manager
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
    elif (route := slot_route(connection)) is not None:
        # a cluster slot client's pool has no address of its own: the pulse gets the nodes,
        # the slot's primary first, and follows MOVED replies to wherever the slot went
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
