"""Small helpers with no geventq dependencies."""

from __future__ import annotations

import importlib
import logging
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
    """A stored epoch timestamp (bytes, str or float) as an aware UTC datetime."""
    if value in (None, b"", ""):
        return None
    return datetime.fromtimestamp(float(value), tz=timezone.utc)


def as_str(value: Any) -> Any:
    """Decode bytes from Redis; pass anything else through."""
    return value.decode() if isinstance(value, bytes) else value


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


# Every password this process was given (settings, URLs), in every spelling a message may
# show: redact_url hides each wherever it appears. Shorter ones are hidden only where a URL
# shows them: replacing every "abc" would garble every message.
_SECRETS: list[str] = []
_MIN_SECRET = 4
# scheme://user: then the password: anything (spaces too) up to the last '@' of the line that
# a host follows, never into the next URL. A later "x@host" on the same line is hidden too.
_URL_CREDENTIALS = re.compile(
    r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?:(?!\w+://).)*@"
    r"(?=[\w.\-\[\]]+(?::\d+)?(?:[/?#\s,;)'\"]|$))")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#\s]*")


def redact_url(text: str | None) -> str | None:
    """``text`` with every password hidden: the one function every message goes through.

    Hides each password remembered by :func:`remember_secret` (raw, decoded and
    percent-encoded), the password of every URL (``redis://user:pa/ss@host`` ->
    ``redis://user:***@host``: up to the last ``@`` of the URL, whatever it holds)
    and ``?password=`` query values. User names are kept.
    """
    if not text:
        return text
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    return _QUERY_PASSWORD.sub(r"\1***", text)


def remember_secret(secret: Any) -> None:
    """Hide ``secret`` (a password) in every later :func:`redact_url`."""
    if not secret or not isinstance(secret, str):
        return
    from urllib.parse import quote, quote_plus, unquote

    plain = unquote(secret)
    forms = {secret, plain, quote(plain, safe=""), quote(plain), quote_plus(plain), repr(plain)[1:-1]}
    known = set(_SECRETS) | {form for form in forms if len(form) >= _MIN_SECRET}
    _SECRETS[:] = sorted(known, key=len, reverse=True)  # a longer form first: no half-hidden one


def url_password(url: Any) -> str | None:
    """The password of a URL as written, read leniently (it may hold ``/ # ? @ :``):
    between the first ``:`` after ``scheme://`` and the last ``@``."""
    if not isinstance(url, str) or "://" not in url:
        return None
    rest = url.split("://", 1)[1]
    userinfo, at, _ = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1] or None


def remember_settings_secrets(settings: Any) -> None:
    """Remember every password that settings (and ``$REDIS_URL``/``$GEVENTQ_URL``) hold."""
    import os

    urls = [settings.get("REDIS_URL"), os.environ.get("REDIS_URL"), os.environ.get("GEVENTQ_URL")]
    for url in urls:
        remember_secret(url_password(url))
    for key in ("REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD"):
        remember_secret(settings.get(key))
    sentinel_kwargs = settings.get("REDIS_SENTINEL_KWARGS")
    if isinstance(sentinel_kwargs, dict):
        remember_secret(sentinel_kwargs.get("password"))


class RedactingFormatter(logging.Formatter):
    """A log formatter whose every line (message, traceback) goes through ``redact_url``."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_url(super().format(record)) or ""


def backoff_delay(attempt: int, base: float = 0.1, cap: float = 30.0) -> float:
    """Exponential back-off with jitter for the ``attempt``-th retry (1-based)."""
    return min(cap, base * 2 ** min(attempt, 16)) * random.uniform(0.5, 1.0)
