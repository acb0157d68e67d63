"""The Lua scripts behind every job state transition.

Each ``lua/<name>.lua`` is loaded once per process; ``_common.lua`` (and
``_limits.lua``, see geventq.limits; ``_args.lua``) is prepended to the scripts that use its helpers.
Calls go out as EVALSHA (one round trip), and are re-sent after a SCRIPT LOAD when
Redis answers NOSCRIPT (a restarted or flushed server). ``ScriptBatch`` sends many calls in one pipeline without
redis-py's extra SCRIPT EXISTS round trip. Both go through :func:`send`, a lean
request/reply exchange on a pooled connection.
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

import redis
import redis.sentinel
from redis.exceptions import ConnectionError, NoScriptError, ResponseError

_hiredis_pack: Callable[[tuple], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # the hiredis extra is not installed
    _hiredis_pack = None

_USES_LIVE = {"enqueue_batch"}  # _live.lua alone (every _USES_COMMON script gets it too)
_USES_COMMON = {"enqueue", "end", "end_batch", "requeue_started", "requeue", "cancel",
                "schedule_due", "periodic", "start_inline", "fail_started"}
# the scripts that take or give back limit slots (geventq.limits) get _limits.lua
_USES_LIMITS = {"claim", "end", "end_batch", "requeue_started", "cancel", "fail_started"}
# the scripts that check number arguments with whole() and finite() get _args.lua
_USES_ARGS = {"enqueue", "enqueue_batch", "periodic"}
_SOURCES: dict[str, tuple[str, str]] = {}


def source(name: str) -> tuple[str, str]:
    """(sha1, source text) of script ``name``."""
    return _source(name)


def _source(name: str) -> tuple[str, str]:
    """(sha1, source) of a script, read from the package on first use."""
    cached = _SOURCES.get(name)
    if cached is None:
        lua = resources.files(__package__).joinpath("lua")
        text = lua.joinpath(f"{name}.lua").read_text()
        if name in _USES_ARGS:
            text = lua.joinpath("_args.lua").read_text() + "\n" + text
        if name in _USES_LIMITS:
            text = lua.joinpath("_limits.lua").read_text() + "\n" + text
        if name in _USES_COMMON:
            text = lua.joinpath("_common.lua").read_text() + "\n" + text
        if name in _USES_COMMON or name in _USES_LIVE:
            text = lua.joinpath("_live.lua").read_text() + "\n" + text
        cached = (hashlib.sha1(text.encode()).hexdigest(), text)
        _SOURCES[name] = cached
    return cached


def call(client: redis.Redis | Channel, name: str, keys: list, args: list) -> Any:
    """Run one script in one round trip (two after a Redis restart)."""
    sha, text = _source(name)
    command = ("EVALSHA", sha, len(keys), *keys, *args)
    reply = send(client, [command])[0]
    if isinstance(reply, NoScriptError):
        send(client, [("SCRIPT", "LOAD", text)])
        reply = send(client, [command])[0]
    if isinstance(reply, Exception):
        raise reply
    return reply


class Channel:
    """One connection of a client's pool, kept by one greenlet or thread for its calls.

    A busy worker's claim loop and finisher each use one: taking a connection from
    the pool costs a readiness check per call (a whole hub turn under gevent),
    more than the round trip itself. A connection that breaks is dropped and
    reconnects on the next call. ``close()`` gives it back to the pool.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._conn: Any = None

    def connection(self) -> Any:
        if self._conn is None:
            self._conn = self.client.connection_pool.get_connection()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self.client.connection_pool.release(conn)


def send(client: redis.Redis | Channel, commands: Iterable[tuple]) -> list[Any]:
    """Send commands in one write on one connection and read every reply.

    This is the hot path of every job, so it skips what redis-py wraps around
    each command (automatic retries, metrics, events), which costs more CPU
    than the round trip itself. Error replies come back as exception objects;
    a broken or interrupted exchange raises, and its connection is dropped so
    no reply is left unread on it. Replies are raw (no response callbacks).

    ``commands`` that is not a list (a generator) is streamed: each command is
    written as soon as it is made, so Redis runs the first while the next are
    being made, and the replies are read at the end (still one round trip).
    """
    if isinstance(client, Channel):
        return _exchange(client.connection(), commands)
    pool = client.connection_pool
    lease = _lease(pool) if type(pool) in _LEASABLE else None
    if lease is not None and lease.lock.acquire(blocking=False):
        try:
            return _exchange(lease.ready_connection(), commands)
        finally:
            lease.lock.release()
    conn = pool.get_connection()  # another thread or greenlet holds the lease
    try:
        return _exchange(conn, commands)
    finally:
        pool.release(conn)


class _Lease:
    """One connection of a pool, kept out of it for the calls of whoever finds it free.

    Taking a connection from a redis-py pool and giving it back costs a quarter
    of a single enqueue's client CPU (locks, observability hooks, a readiness
    poll). A caller that finds the lease taken (another thread or greenlet is
    in a call) uses the pool as before, so the lease never makes anyone wait.
    """

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self.lock = threading.Lock()
        self.pid = os.getpid()
        # taken for good: the pool counts it as in use, and its disconnect() (a
        # client's close(), a Sentinel failover) closes it like the others
        self.connection = pool.get_connection()

    def ready_connection(self) -> Any:
        """The leased connection, reconnected first if the server closed it or left
        data on it (as the pool checks before it hands a connection out)."""
        conn = self.connection
        try:
            if conn.can_read():
                conn.disconnect()
        except (ConnectionError, OSError):
            conn.disconnect()  # closed by the server (restart, CLIENT KILL, timeout)
        return conn


# A BlockingConnectionPool caps its connections: a leased one would be missing from the
# cap for good. Subclasses may do the same, so only the pools known to be unbounded lease.
_LEASABLE = (redis.ConnectionPool, redis.sentinel.SentinelConnectionPool)
_LEASES: weakref.WeakKeyDictionary[redis.ConnectionPool, _Lease] = weakref.WeakKeyDictionary()
_LEASES_LOCK = threading.Lock()


def _lease(pool: redis.ConnectionPool) -> _Lease:
    lease = _LEASES.get(pool)
    if lease is None or lease.pid != os.getpid():  # none yet, or the parent's over a fork
        with _LEASES_LOCK:
            lease = _LEASES.get(pool)
            if lease is None or lease.pid != os.getpid():
                lease = _LEASES[pool] = _Lease(pool)
    return lease


def _exchange(conn: Any, commands: Iterable[tuple]) -> list[Any]:
    try:
        if isinstance(commands, list):
            conn.send_packed_command(_pack(conn, commands), check_health=False)
            sent = len(commands)
        else:
            sent = 0
            for command in commands:
                conn.send_packed_command(_pack(conn, [command]), check_health=False)
                sent += 1
        replies = []
        for _ in range(sent):
            try:
                replies.append(conn.read_response())
            except ResponseError as exc:  # an error reply: the connection is still in step
                replies.append(exc)
        return replies
    except BaseException:  # lost connection, timeout, or a greenlet killed mid-exchange
        conn.disconnect()
        raise


def _pack(conn: Any, commands: list[tuple]) -> Any:
    """The wire form of commands: hiredis's packer straight away when redis-py would use
    it too (UTF-8), rather than redis-py's per-argument pass before it."""
    encoder = conn.encoder
    if _hiredis_pack is not None and encoder.encoding in ("utf-8", "utf8") \
            and encoder.encoding_errors == "strict":
        try:
            return [b"".join([_hiredis_pack(command) for command in commands])]
        except TypeError:  # an argument type only redis-py converts
            pass
    return conn.pack_commands(commands)


class ScriptBatch:
    """Many script calls (and plain commands) sent in one pipeline.

    Each script call stays atomic on its own; the batch only saves round trips.
    """

    def __init__(self) -> None:
        self._calls: list[tuple[str | None, tuple]] = []

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, name: str, keys: list, args: list) -> None:
        """Queue a call of script ``name``."""
        self._calls.append((name, ("EVALSHA", _source(name)[0], len(keys), *keys, *args)))

    def command(self, *args: Any) -> None:
        """Queue a plain Redis command (its reply comes back raw)."""
        self._calls.append((None, args))

    def execute(self, client: redis.Redis | Channel) -> list[Any]:
        """Send every call; return their replies in order (errors raise)."""
        if not self._calls:
            return []
        replies = send(client, [command for _, command in self._calls])
        # a script call's NOSCRIPT reply: load the script and send the call again (a plain
        # command has no script to load; its error reply raises below like any other)
        missing = [i for i, r in enumerate(replies)
                   if isinstance(r, NoScriptError) and self._calls[i][0] is not None]
        if missing:
            names = {name for i in missing if (name := self._calls[i][0]) is not None}
            send(client, [("SCRIPT", "LOAD", _source(name)[1]) for name in names])
            for i, reply in zip(missing, send(client, [self._calls[i][1] for i in missing])):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies
