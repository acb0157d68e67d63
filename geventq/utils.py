"""Small helpers that depend on nothing of geventq but its defaults."""

from __future__ import annotations

import importlib
import logging
import math
import operator
import random
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any, overload

from .defaults import MAX_SECONDS

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d{1,12})([smhd]?)$")
_WHOLE = re.compile(r"^-?\d{1,12}$")

# MAX_SECONDS (from defaults) bounds every TTL, timeout and interval, so each one is a
# valid EXPIRE argument and ``now + value`` stays an exact score in a sorted set.
# The largest count an option takes (retries, jobs, requeues).
MAX_COUNT = 2**31 - 1


def whole_number(value: Any, *, name: str, expected: str) -> int:
    """``value`` as an int: an int, a whole float (``5.0``), anything with ``__index__``
    or a string of digits (``'5'``, ``'-1'``). Anything else (bool, NaN, inf, ``1.5``,
    ``'abc'``) raises ``ValueError`` naming the value and ``expected``."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        return int(value)
    elif isinstance(value, float):
        if value.is_integer():
            return int(value)
    elif isinstance(value, str):
        if _WHOLE.match(value.strip()):
            return int(value)
    else:
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise ValueError(f"{name} must be {expected}, got {value!r}")


def parse_timeout(value: Any, *, name: str = "job_timeout") -> int | None:
    """Turn a job timeout into whole seconds; ``-1`` means no limit.

    Accepts an int (or a whole float), a numeric string (``'2'``) or a string
    with a unit (``'5s'``, ``'3m'``, ``'1h'``, ``'1d'``), from 1 s to
    :data:`MAX_SECONDS`. ``None`` passes through (use the default). Anything
    else raises ``ValueError`` naming the value.
    """
    if value is None:
        return None
    expected = (f"whole seconds from 1 to {MAX_SECONDS} or -1 (no limit), or a number "
                f"with a unit s/m/h/d (e.g. '30', '5m', '1h')")
    if isinstance(value, str) and value.strip() != "-1":
        match = _DURATION.match(value.strip())
        if not match:
            raise ValueError(f"{name} must be {expected}, got {value!r}")
        seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        seconds = whole_number(value, name=name, expected=expected)
    if seconds == -1 or 0 < seconds <= MAX_SECONDS:
        return seconds
    raise ValueError(f"{name} must be {expected}, got {value!r}")


def parse_ttl(value: Any, *, name: str, allow_zero: bool = True) -> int | None:
    """Validate a TTL option: whole seconds up to :data:`MAX_SECONDS`, ``-1`` = forever,
    ``None`` = the default. Anything else raises ``ValueError`` naming the value."""
    if value is None:
        return None
    lowest = 0 if allow_zero else 1
    expected = f"whole seconds from {lowest} to {MAX_SECONDS}, or -1 (forever)"
    seconds = whole_number(value, name=name, expected=expected)
    if seconds == -1 or lowest <= seconds <= MAX_SECONDS:
        return seconds
    raise ValueError(f"{name} must be {expected}, got {value!r}")


def parse_seconds(value: Any, *, name: str, minimum: float = 0.0,
                  maximum: float = MAX_SECONDS, above_minimum: bool = False) -> float:
    """A finite number of seconds (int or float, not bool) from ``minimum`` to ``maximum``
    (strictly above ``minimum`` with ``above_minimum``); else ``ValueError`` naming it."""
    low = f"above {_plain(minimum)}" if above_minimum else f"from {_plain(minimum)}"
    expected = f"seconds {low} to {_plain(maximum)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    if not (math.isfinite(value) and minimum <= value <= maximum) \
            or (above_minimum and value == minimum):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return float(value)


def _plain(number: float) -> str:
    """2147483647.0 -> '2147483647', 0.1 -> '0.1' (for messages)."""
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def parse_count(value: Any, *, name: str, minimum: int = 0, maximum: int = MAX_COUNT) -> int:
    """A whole number from ``minimum`` to ``maximum`` (an int, or a whole float); else
    ``ValueError`` naming the value."""
    expected = f"a whole number from {minimum} to {maximum}"
    if isinstance(value, str):  # a count is never text: '3' in a settings file is a mistake
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    number = whole_number(value, name=name, expected=expected)
    if minimum <= number <= maximum:
        return number
    raise ValueError(f"{name} must be {expected}, got {value!r}")


def storable_text(value: Any, what: str) -> str:
    """Return ``value`` if it is a string Redis can be sent (UTF-8); else raise
    ``ValueError`` naming it (a lone surrogate, as in ``'\\udcff'``, cannot be)."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {value!r}")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError(f"{what} cannot be stored: it is not valid Unicode text (it "
                             f"holds a lone surrogate), got {value!r}") from None
    return value


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


def as_text(value: Any) -> str:
    """A value read from Redis as text: bytes decoded as UTF-8 (what is not UTF-8
    replaced), anything else ``str()``."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def printable(value: Any) -> str:
    """A value read from Redis as text safe to print: bytes that are not UTF-8 replaced,
    control characters (which could drive a terminal) escaped."""
    text = as_text(value)
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


@overload
def redact_url(text: str) -> str: ...


@overload
def redact_url(text: None) -> None: ...


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
    if "://" in text:  # (the searches cost more than these checks: most lines hold neither)
        text = _URL_CREDENTIALS.sub(r"\1***@", text)
    if "password=" in text:
        text = _QUERY_PASSWORD.sub(r"\1***", text)
    return text


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
