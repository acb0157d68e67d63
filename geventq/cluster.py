"""Redis Cluster: a plain ``redis.Redis`` that always talks to the primary of one hash slot.

In cluster mode every key of a prefix carries the prefix's hash tag (``{geventq}:``),
so all of geventq's keys sit in one hash slot, on one primary at a time. geventq
therefore does not route command by command: :func:`slot_client` turns a
``redis.cluster.RedisCluster`` into a ``redis.Redis`` whose connection pool dials
the current primary of that slot, found in the cluster client's topology (slot ->
node). Everything geventq does on a connection — EVALSHA on a pooled connection,
pipelines, MULTI/EXEC, BLPOP on wake tokens, pub/sub — then works unchanged, as
with one standalone Redis (this is how redis-py's Sentinel-managed pool follows a
master).

Following a failover: a connection that cannot be made or breaks marks the topology
stale, and the next connection first reads it again (``CLUSTER SLOTS`` from any
reachable node). A reply ``MOVED`` for the slot (the old primary came back as a
replica, or the slot was moved) does the same and raises :class:`SlotMovedError`,
a ``redis.ConnectionError``: the command never ran, and every caller already
retries connection errors.
"""

from __future__ import annotations

import weakref
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import MovedError, RedisClusterException
from redis.retry import Retry

from .keys import Keys, hash_tag

# keywords of a RedisCluster's nodes that a connection pool of our own sets itself
_POOL_OWN = ("connection_pool", "retry", "host", "port")


class SlotMovedError(redis.ConnectionError):
    """The node no longer serves the slot (``MOVED``): the command did not run; retry it."""


def slot_of(keys: Keys) -> int:
    """The hash slot of every key of ``keys`` (its prefix must carry a hash tag)."""
    tag = hash_tag(keys.prefix)
    if tag is None:
        raise ValueError(f"prefix {keys.prefix!r} has no hash tag: its keys would spread over "
                         f"the cluster's slots (use one such as '{{geventq}}:')")
    return key_slot(tag.encode())


class SlotRoute:
    """Where one hash slot's primary is, from a ``RedisCluster``'s view of the topology.

    It borrows ``cluster`` (held weakly: the caller's client, whose topology it
    keeps fresh); without one, or once that one is gone, it makes its own on first
    use from ``seeds`` (``(host, port)`` pairs) and ``cluster_kwargs``.
    """

    def __init__(self, slot: int, cluster: RedisCluster | None = None,
                 seeds: list[tuple[str, int]] | None = None, cluster_kwargs: dict | None = None):
        self.slot = slot
        self._borrowed = weakref.ref(cluster) if cluster is not None else None
        self._own: RedisCluster | None = None
        self._seeds = seed_nodes(cluster) if cluster is not None else list(seeds or [])
        self._cluster_kwargs = _cluster_kwargs(cluster) if cluster is not None else dict(cluster_kwargs or {})
        if not self._seeds:
            raise ValueError("a SlotRoute needs a RedisCluster or seed nodes")
        self._stale = False

    def cluster(self) -> RedisCluster:
        """The cluster client whose topology this route reads (made now if need be)."""
        cluster = self._borrowed() if self._borrowed is not None else None
        if cluster is not None:
            return cluster
        if self._own is None:
            try:
                self._own = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in self._seeds],
                                         **self._cluster_kwargs)
            except RedisClusterException as exc:
                raise as_redis_error(exc) from None
        return self._own

    def primary(self) -> tuple[str, int]:
        """``(host, port)`` of the slot's primary; reads the topology again when stale."""
        cluster = self.cluster()
        try:
            if self._stale:
                cluster.nodes_manager.initialize()
                self._stale = False
            node = cluster.nodes_manager.get_node_from_slot(self.slot)
        except RedisClusterException as exc:  # no node reachable, slot not covered
            raise as_redis_error(exc) from None
        return node.host, int(node.port)

    def known_primary(self) -> str:
        """``host:port`` of the primary as last seen, without asking the cluster (for messages)."""
        cluster = self._borrowed() if self._borrowed is not None else self._own
        nodes = (cluster.nodes_manager.slots_cache.get(self.slot) if cluster is not None else None) or []
        return nodes[0].name if nodes else "?"

    def mark_stale(self) -> None:
        """The primary may have changed: look it up again before the next connection."""
        self._stale = True

    def copy(self) -> SlotRoute:
        """A route to the same slot that will make a cluster client of its own."""
        cluster = self._borrowed() if self._borrowed is not None else self._own
        seeds = seed_nodes(cluster) if cluster is not None else self._seeds
        return SlotRoute(self.slot, seeds=seeds, cluster_kwargs=self._cluster_kwargs)

    def seeds(self) -> list[tuple[str, int]]:
        """The nodes this route knows of (for messages)."""
        return list(self._seeds)


def seed_nodes(cluster: RedisCluster) -> list[tuple[str, int]]:
    """``(host, port)`` of every node a cluster client knows, from its cache (no I/O)."""
    return sorted((node.host, int(node.port)) for node in cluster.get_nodes())


def _cluster_kwargs(cluster: RedisCluster) -> dict[str, Any]:
    """The keywords that make another ``RedisCluster`` like ``cluster`` (credentials, TLS...)."""
    kwargs = dict(cluster.nodes_manager.connection_kwargs)
    for name in ("redis_connect_func", "oss_cluster_maint_notifications_handler"):
        kwargs.pop(name, None)
    return kwargs


def as_redis_error(exc: RedisClusterException) -> redis.RedisError:
    """redis-py's cluster errors are not ``RedisError``s: give callers one they retry."""
    cause = exc.__cause__
    if isinstance(cause, redis.AuthenticationError):
        return cause
    return redis.ConnectionError(f"Redis Cluster: {exc}")


_CONNECTION_CLASSES: dict[type, type] = {}


def _slot_connection_class(base: type) -> type:
    """``base`` (Connection or SSLConnection) dialling the primary its pool's route names."""
    cached = _CONNECTION_CLASSES.get(base)
    if cached is not None:
        return cached

    class SlotConnection(base):
        def __init__(self, *, route: SlotRoute, **kwargs: Any) -> None:
            self.route = route
            super().__init__(**kwargs)

        def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> Any:
            # every (re)connection looks the primary up; no blind re-dial of a dead address
            if self._sock is None:
                self.host, self.port = self.route.primary()
            try:
                return super().connect_check_health(check_health=check_health, retry_socket_connect=False)
            except (redis.ConnectionError, redis.TimeoutError):
                self.route.mark_stale()
                raise

        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().read_response(*args, **kwargs)
            except MovedError as exc:
                if exc.slot_id != self.route.slot:
                    raise redis.ResponseError(
                        f"a key of hash slot {exc.slot_id} sent to the client of slot "
                        f"{self.route.slot}: this client serves only keys of its prefix") from None
                self.route.mark_stale()
                self.disconnect()
                raise SlotMovedError(f"hash slot {exc.slot_id} moved to {exc.host}:{exc.port}; "
                                     f"reconnecting to its primary") from None
            except (redis.ConnectionError, redis.TimeoutError):
                self.route.mark_stale()
                raise

    SlotConnection.__name__ = SlotConnection.__qualname__ = f"Slot{base.__name__}"
    _CONNECTION_CLASSES[base] = SlotConnection
    return SlotConnection


class SlotConnectionPool(redis.ConnectionPool):
    """A connection pool whose connections go to the current primary of ``route.slot``."""

    def __init__(self, route: SlotRoute, connection_class: type = redis.Connection,
                 **connection_kwargs: Any) -> None:
        self.route = route
        self.base_connection_class = connection_class
        connection_kwargs.setdefault("retry", default_retry())
        super().__init__(connection_class=_slot_connection_class(connection_class), route=route,
                         **connection_kwargs)


def default_retry() -> Retry:
    """A plain client's retries (redis-py 6+): ~10 attempts over ~5 s, enough to ride a
    dropped connection; each attempt looks the primary up again."""
    return Retry(ExponentialBackoff(cap=1.0, base=0.01), 10)


# cluster client -> {slot: slot client}; an entry goes with its cluster client (a slot client
# only borrows it, and makes its own if it outlives it)
_CLIENTS: weakref.WeakKeyDictionary[RedisCluster, dict[int, redis.Redis]] = weakref.WeakKeyDictionary()


def slot_client(cluster: RedisCluster, keys: Keys) -> redis.Redis:
    """The ``redis.Redis`` of the primary serving ``keys``' slot in ``cluster``.

    One per cluster client and slot, shared (like a connection pool): every Queue,
    Job and Worker of a prefix on one ``RedisCluster`` uses the same one.
    """
    slot = slot_of(keys)
    clients = _CLIENTS.setdefault(cluster, {})
    client = clients.get(slot)
    if client is None:
        client = clients[slot] = _client(SlotRoute(slot, cluster), _cluster_kwargs(cluster))
    return client


def slot_route(connection: redis.Redis) -> SlotRoute | None:
    """The route of a client made by :func:`slot_client`, else None."""
    pool = connection.connection_pool
    return pool.route if isinstance(pool, SlotConnectionPool) else None


def rebind(connection: redis.Redis, keys: Keys) -> redis.Redis:
    """A slot client for ``keys`` on the same cluster as the slot client ``connection``."""
    route = slot_route(connection)
    if route is None:
        raise TypeError("not a cluster slot client")
    if slot_of(keys) == route.slot:
        return connection
    return slot_client(route.cluster(), keys)


def clone_slot_client(connection: redis.Redis) -> redis.Redis:
    """A slot client to the same slot with a pool and a cluster client of its own."""
    pool = connection.connection_pool
    if not isinstance(pool, SlotConnectionPool):
        raise TypeError("not a cluster slot client")
    kwargs = dict(pool.connection_kwargs)
    kwargs.pop("route", None)
    new_pool = SlotConnectionPool(pool.route.copy(), connection_class=pool.base_connection_class,
                                  **kwargs)
    return redis.Redis(connection_pool=new_pool)


def _client(route: SlotRoute, kwargs: dict[str, Any]) -> redis.Redis:
    kwargs = {k: v for k, v in kwargs.items() if k not in _POOL_OWN}
    connection_class = kwargs.pop("connection_class", redis.Connection)
    return redis.Redis(connection_pool=SlotConnectionPool(route, connection_class=connection_class,
                                                          **kwargs))


def describe_slot_client(connection: redis.Redis) -> str:
    """``slot 1234 on 10.0.0.1:6379 (cluster via 10.0.0.1:6379,...)``, never a password."""
    pool = connection.connection_pool
    assert isinstance(pool, SlotConnectionPool), "a slot client's pool routes to its slot"
    route = pool.route
    user = pool.connection_kwargs.get("username")
    tls = " (TLS)" if issubclass(pool.base_connection_class, redis.SSLConnection) else ""
    seeds = ",".join(f"{h}:{p}" for h, p in route.seeds()[:3])
    more = ",..." if len(route.seeds()) > 3 else ""
    return (f"{user + '@' if user else ''}cluster slot {route.slot} on {route.known_primary()}"
            f" (nodes {seeds}{more}){tls}")


def describe_cluster(cluster: RedisCluster) -> str:
    """``cluster via 10.0.0.1:6379,...`` for a RedisCluster, never a password."""
    user = cluster.nodes_manager.connection_kwargs.get("username")
    nodes = seed_nodes(cluster)
    seeds = ",".join(f"{h}:{p}" for h, p in nodes[:3])
    more = ",..." if len(nodes) > 3 else ""
    return f"{user + '@' if user else ''}cluster nodes {seeds}{more}"
