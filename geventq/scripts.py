"""The Lua scripts behind every job state transition.

Each ``lua/<name>.lua`` is loaded once per process; ``_common.lua`` is prepended
to the scripts that use its helpers. Calls go out as EVALSHA (one round trip),
and are re-sent after a SCRIPT LOAD when Redis answers NOSCRIPT (a restarted or
flushed server). ``ScriptBatch`` sends many calls in one pipeline without
redis-py's extra SCRIPT EXISTS round trip.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

import redis
from redis.exceptions import NoScriptError

_USES_COMMON = {"enqueue", "end", "requeue_started", "requeue", "cancel", "schedule_due", "periodic"}
_SOURCES: dict[str, tuple[str, str]] = {}


def _source(name: str) -> tuple[str, str]:
    """(sha1, source) of a script, read from the package on first use."""
    cached = _SOURCES.get(name)
    if cached is None:
        lua = resources.files(__package__).joinpath("lua")
        text = lua.joinpath(f"{name}.lua").read_text()
        if name in _USES_COMMON:
            text = lua.joinpath("_common.lua").read_text() + "\n" + text
        cached = (hashlib.sha1(text.encode()).hexdigest(), text)
        _SOURCES[name] = cached
    return cached


def call(client: redis.Redis, name: str, keys: list, args: list) -> Any:
    """Run one script in one round trip (two after a Redis restart)."""
    sha, text = _source(name)
    try:
        return client.execute_command("EVALSHA", sha, len(keys), *keys, *args)
    except NoScriptError:
        client.execute_command("SCRIPT", "LOAD", text)
        return client.execute_command("EVALSHA", sha, len(keys), *keys, *args)


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
        self._calls.append((name, (len(keys), *keys, *args)))

    def command(self, *args: Any) -> None:
        """Queue a plain Redis command."""
        self._calls.append((None, args))

    def execute(self, client: redis.Redis) -> list[Any]:
        """Send every call; return their replies in order (errors raise)."""
        if not self._calls:
            return []
        replies = self._send(client, range(len(self._calls)))
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            for name in {self._calls[i][0] for i in missing}:
                client.execute_command("SCRIPT", "LOAD", _source(name)[1])
            for i, reply in zip(missing, self._send(client, missing)):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _send(self, client: redis.Redis, indexes) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for i in indexes:
            name, args = self._calls[i]
            if name is None:
                pipe.execute_command(*args)
            else:
                pipe.execute_command("EVALSHA", _source(name)[0], *args)
        return pipe.execute(raise_on_error=False)
