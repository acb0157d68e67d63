"""Turning what Redis holds into text a page can show, without trusting it.

A job's arguments, result and meta are serialized data that anyone who can
write to Redis may have crafted. The dashboard never unpickles them with the
real ``pickle.loads``: :class:`SafeLoader` uses an unpickler that builds only a
few harmless standard types and stands an inert :class:`Opaque` placeholder in
for every other class, so no code named by the data runs (and nothing is
imported). JSON is loaded as JSON; a custom serializer (a dotted path in the
settings) is the user's own code and is trusted like it is in the worker.

Everything shown is a bounded ``repr``: long strings, deep nesting and long
texts are cut, and data over :data:`MAX_LOAD_BYTES` is not loaded at all.
"""

from __future__ import annotations

import io
import pickle
import reprlib
from datetime import datetime, timezone
from typing import Any

from ..serializers import resolve_serializer

MAX_LOAD_BYTES = 1 << 20  # serialized data larger than this is described, not loaded
REPR_LIMIT = 2000  # characters of one repr (arguments, result, meta)
TEXT_LIMIT = 64 * 1024  # characters of one traceback

# (module, name) the restricted unpickler may really build: plain values whose
# construction runs no user code and allocates no more than the data describes
SAFE_CLASSES = frozenset({
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
    ("builtins", "range"), ("builtins", "slice"),
    ("datetime", "date"), ("datetime", "time"), ("datetime", "datetime"),
    ("datetime", "timedelta"), ("datetime", "timezone"),
    ("decimal", "Decimal"), ("uuid", "UUID"),
    ("collections", "OrderedDict"),
})


class Opaque:
    """Stands in for an object of a class the dashboard does not build.

    Whatever the pickle does with it (call it, set its state, append to it) is
    accepted and ignored; it shows as ``<module.Name object>``.
    """

    path = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{self.path} object>"


class Unreadable:
    """What could not be loaded, and why (shown instead of the value)."""

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self) -> str:
        return f"<{self.reason}>"


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in SAFE_CLASSES:
            return super().find_class(module, name)
        return type(name[:100] or "Opaque", (Opaque,), {"path": f"{module}.{name}"[:200]})

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not loaded")


class SafeLoader:
    """Loads serialized job data for display: never raises, never runs the data's code.

    ``serializer`` is the setting the workers use: None/"pickle" (restricted
    unpickling), "json", or a dotted path / object with ``loads``.
    """

    name = "dashboard"

    def __init__(self, serializer: Any = None):
        if serializer is None or serializer == "pickle":
            self._loads = _restricted_loads
        else:
            self._loads = resolve_serializer(serializer).loads

    def loads(self, data: Any) -> Any:
        if isinstance(data, Unreadable):
            return data
        if not isinstance(data, (bytes, bytearray)):
            return Unreadable("no data")
        if len(data) > MAX_LOAD_BYTES:
            return Unreadable(f"{len(data):,} bytes: too large to show")
        try:
            return self._loads(bytes(data))
        except RecursionError:
            return Unreadable("nested too deeply to show")
        except Exception as exc:  # garbage of any kind: say so, show the rest of the page
            return Unreadable(f"unreadable: {type(exc).__name__}")

    def dumps(self, obj: Any) -> bytes:
        raise TypeError("the dashboard only reads job data")


def _restricted_loads(data: bytes) -> Any:
    return _RestrictedUnpickler(io.BytesIO(data)).load()


_REPR = reprlib.Repr()
_REPR.maxlevel = 4
_REPR.maxstring = 300
_REPR.maxother = 300
_REPR.maxlong = 100
for _attr in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque", "maxarray"):
    setattr(_REPR, _attr, 30)


def preview(value: Any, limit: int = REPR_LIMIT) -> str:
    """A bounded repr of a loaded value."""
    try:
        text = _REPR.repr(value)
    except Exception as exc:  # a repr that fails (a safe type holding odd state)
        text = f"<repr failed: {type(exc).__name__}>"
    return clip(text, limit)


def call_arguments(loaded: Any) -> tuple[str, str]:
    """(args, kwargs) reprs of a job's loaded ``data``: ``[instance, args, kwargs]``."""
    if isinstance(loaded, Unreadable):
        return repr(loaded), repr(loaded)
    if not isinstance(loaded, (list, tuple)) or len(loaded) != 3:
        return "<not a geventq job's arguments>", ""
    _, args, kwargs = loaded
    return preview(tuple(args) if isinstance(args, list) else args), preview(kwargs)


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to about ``limit`` characters, keeping its start and its end."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… {len(text) - 2 * half:,} characters not shown …\n{text[-half:]}"


def last_line(text: str | None, limit: int = 200) -> str:
    """The last non-empty line of a traceback (the exception), cut to ``limit``."""
    if not text:
        return ""
    for line in reversed(text[-8192:].splitlines()):
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[:limit - 1] + "…"
    return ""


def iso_time(stamp: float | None) -> str | None:
    """An epoch timestamp as ISO 8601 UTC (None stays None)."""
    if stamp is None:
        return None
    try:
        return datetime.fromtimestamp(stamp, tz=timezone.utc).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return None


def show_time(stamp: float | None) -> str:
    """An epoch timestamp for a table cell: ``2024-05-01 12:00:03 UTC``."""
    text = iso_time(stamp)
    return "" if text is None else text[:19].replace("T", " ") + " UTC"


def show_duration(seconds: float | None) -> str:
    """``3d 4h``, ``5m 12s``, ``1.25 s``: two units at most."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"
    whole = int(seconds)
    parts = [(whole // 86400, "d"), (whole % 86400 // 3600, "h"), (whole % 3600 // 60, "m"),
             (whole % 60, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n]
    return " ".join(shown[:2])


def show_rate(per_minute: float | None) -> str:
    """Jobs per minute: ``0``, ``2.5``, ``1,240``; an em dash while not measured yet."""
    if per_minute is None:
        return "\u2014"
    if per_minute < 10:
        return f"{per_minute:.1f}".removesuffix(".0")
    return f"{round(per_minute):,}"
