"""How job arguments, results and meta are stored.

Pickle is the default because it round-trips any Python object. It also means
that whoever can write to your Redis can make a worker run arbitrary code.
If Redis is shared or exposed, use ``JSONSerializer`` (``serializer='json'``):
arguments and results are then limited to JSON types, and decoding never runs
code; with the worker's ``JOB_MODULES`` a writer to Redis can then run only the
listed functions (docs/security.md). A worker decodes with its own configured
serializer only, never with one named by the job.
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Protocol

from .utils import import_attribute


class Serializer(Protocol):
    """What a serializer provides: ``dumps`` to bytes and ``loads`` back."""

    name: str

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class PickleSerializer:
    """Pickle with the highest protocol: fast, any object, trusts Redis."""

    name = "pickle"

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(data: bytes) -> Any:
        return pickle.loads(data)


class JSONSerializer:
    """JSON: only JSON types (tuples come back as lists), never runs code."""

    name = "json"

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    @staticmethod
    def loads(data: bytes) -> Any:
        return json.loads(data)


_BY_NAME: dict[str, Serializer] = {"pickle": PickleSerializer, "json": JSONSerializer}


def resolve_serializer(value: Any = None) -> Serializer:
    """Accept None (pickle), 'pickle', 'json', a dotted path, or an object."""
    if value is None:
        return PickleSerializer
    if isinstance(value, str):
        if value in _BY_NAME:
            return _BY_NAME[value]
        value = import_attribute(value)
    if not (callable(getattr(value, "dumps", None)) and callable(getattr(value, "loads", None))):
        raise ValueError(f"serializer must have dumps() and loads(), got {value!r}")
    return value
