"""The Redis server's size limit on one value, read once per connection.

Redis refuses any single argument (a *bulk string*) longer than its
``proto-max-bulk-len`` setting (512 MB by default; an operator may lower it to
1 MB). The refusal is not a normal error reply: the server answers
``Protocol error: invalid bulk length`` and closes the connection, which a
client sees as a *transient* connection error. A worker that sent such a value
would retry it forever, holding back every ending of the same batch.

So every value a worker writes as one argument is measured first
(:func:`too_large`): :mod:`geventq.recording` fails the job whose result does
not fit, with a reason naming both sizes, and writes the others.

The limit is read with ``CONFIG GET`` once per client object and cached. Where
``CONFIG`` is refused (renamed, an ACL, a managed Redis), the default of 512 MB
is assumed and cached; a transient error is not cached (asked again next time).
"""

from __future__ import annotations

import weakref
from typing import Any

import redis

from .redis_errors import is_transient
from .utils import as_text

DEFAULT_MAX_BULK_LEN = 512 * 1024 * 1024  # Redis' default proto-max-bulk-len
SETTING = "proto-max-bulk-len"

_limits: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def max_bulk_len(connection: Any) -> int:
    """The server's ``proto-max-bulk-len`` in bytes (cached per client object).

    Never raises: a reply that is missing or not a positive number gives the default.
    """
    try:
        return _limits[connection]
    except (KeyError, TypeError):
        pass
    try:
        reply = connection.config_get(SETTING)
    except redis.RedisError as exc:
        if is_transient(exc) and not isinstance(exc, redis.ResponseError):
            return DEFAULT_MAX_BULK_LEN  # ask again next time
        reply = {}
    limit = parse_limit(reply)
    try:
        _limits[connection] = limit
    except TypeError:  # a client object that cannot be weakly referenced: not cached
        pass
    return limit


def parse_limit(reply: Any) -> int:
    """The limit from a ``CONFIG GET`` reply (untrusted: anything odd gives the default).

    A Redis Cluster client answers with one reply per node: the smallest limit counts.
    """
    values = []
    if isinstance(reply, dict):
        for key, value in reply.items():
            if isinstance(value, dict):  # RedisCluster: {node: {setting: value}}
                values += [parse_limit(value)]
            elif as_text(key) == SETTING:
                values.append(_number(value))
    good = [v for v in values if v > 0]
    return min(good) if good else DEFAULT_MAX_BULK_LEN


def size_of(value: Any) -> int:
    """Bytes ``value`` takes as one argument on the wire (str as UTF-8, numbers as text)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8", "backslashreplace"))
    return len(str(value))


def too_large(connection: Any, value: Any) -> int | None:
    """The server's limit when ``value`` is larger than it (the write would be refused),
    else None."""
    if not isinstance(value, (str, bytes, bytearray, memoryview)):
        return None  # numbers: a few bytes
    limit = max_bulk_len(connection)
    if isinstance(value, str) and len(value) * 4 <= limit:  # UTF-8: at most 4 bytes a character
        return None
    return limit if size_of(value) > limit else None


def _number(value: Any) -> int:
    try:
        return int(as_text(value))
    except ValueError:
        return 0
