"""Small helpers with no geventq dependencies."""

from __future__ import annotations

import importlib
import random
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d+)([smhd]?)$")


def parse_timeout(value: Any, *, name: str = "job_timeout") -> int | None:
    """Turn a job timeout into whole seconds; ``-1`` means no limit.

    Accepts an int, a numeric string (``'2'``) or a string with a unit
    (``'5s'``, ``'3m'``, ``'1h'``, ``'1d'``). ``None`` passes through (use the
    default). Anything else raises ``ValueError`` naming the value.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be seconds or a string like '5m', got {value!r}")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    elif isinstance(value, str):
        match = _DURATION.match(value.strip())
        if not match:
            raise ValueError(
                f"{name} must be whole seconds or a number with a unit s/m/h/d "
                f"(e.g. '30', '5m', '1h'), got {value!r}"
            )
        seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"{name} must be seconds or a string like '5m', got {value!r}")
    if seconds == -1:
        return -1
    if seconds <= 0:
        raise ValueError(f"{name} must be positive or -1 (no limit), got {value!r}")
    return seconds


def parse_ttl(value: Any, *, name: str, allow_zero: bool = True) -> int | None:
    """Validate a TTL option: whole seconds, ``-1`` = forever, ``None`` = default."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            raise ValueError(f"{name} must be whole seconds (-1 for forever), got {value!r}")
    if value == -1 or value > 0 or (value == 0 and allow_zero):
        return value
    raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} or -1, got {value!r}")


def now() -> float:
    """Seconds since the epoch (the clock every stored timestamp uses)."""
    return time.time()


def to_datetime(value: Any) -> datetime | None:
    """A stored epoch timestamp (bytes, str or float) as an aware UTC datetime.

    None when there is none, and when the value is not a timestamp: what is read
    from Redis may have been written by anyone.
    """
    if value in (None, b"", ""):
        return None
    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def as_str(value: Any) -> Any:
    """Decode bytes from Redis; pass anything else through."""
    return value.decode() if isinstance(value, bytes) else value


def printable(value: Any) -> str:
    """A value read from Redis as text safe to print: bytes that are not UTF-8 replaced,
    control characters (which could drive a terminal) escaped."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def text_ids(raw_ids: Any) -> list[str]:
    """Ids (of jobs, workers) read from Redis as text, leaving out any that is not UTF-8:
    geventq never writes one, and no job or worker of geventq can have it."""
    ids = []
    for raw in raw_ids:
        try:
            ids.append(as_str(raw))
        except UnicodeDecodeError:
            continue
    return ids


# path -> (module name, attribute names): where a path was found to split, so that a
# worker finds each job's function in sys.modules without going through the import system
_SPLITS: dict[str, tuple[str, list[str]]] = {}


def import_attribute(path: str) -> Any:
    """Import ``'pkg.module.attr'`` (attr may be dotted, e.g. ``Class.method``)."""
    if not isinstance(path, str) or "." not in path:
        raise ValueError(f"expected a dotted path like 'pkg.module.func', got {path!r}")
    known = _SPLITS.get(path)
    if known is not None:
        obj = sys.modules.get(known[0])
        if obj is not None:  # attributes are read anew: a patched function is seen
            for attr in known[1]:
                obj = getattr(obj, attr)
            return obj
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        if len(_SPLITS) < 4096:
            _SPLITS[path] = (module_name, parts[split:])
        return obj
    raise ImportError(f"cannot import {path!r}: no importable module in it")


def redact_url(url: str | None) -> str | None:
    """Strip a password from a URL (``redis://user:secret@h`` -> ``redis://user:***@h``)."""
    if not url:
        return url
    # up to the last '@' of the netloc: a password may itself contain '@'
    url = re.sub(r"(//[^:/@\s]*:)[^/\s]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url)


def backoff_delay(attempt: int, base: float = 0.1, cap: float = 30.0) -> float:
    """Exponential back-off with jitter for the ``attempt``-th retry (1-based)."""
    return min(cap, base * 2 ** min(attempt, 16)) * random.uniform(0.5, 1.0)
