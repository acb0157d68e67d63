"""Turning a callable into something a worker can import, and back."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import FunctionType
from typing import Any

from .utils import import_attribute

# module-level function -> its dotted path: described once, not at every enqueue
_FUNCTION_NAMES: dict[FunctionType, str] = {}


def describe_callable_cached(func: Any) -> tuple[str, Any]:
    """:func:`describe_callable` with a cache for plain functions (the common case)."""
    if type(func) is not FunctionType:
        return describe_callable(func)
    name = _FUNCTION_NAMES.get(func)
    if name is None:
        name, _ = describe_callable(func)  # raises for lambdas and nested functions
        if len(_FUNCTION_NAMES) < 4096:
            _FUNCTION_NAMES[func] = name
    return name, None


def describe_callable(func: Any) -> tuple[str, Any]:
    """Return ``(func_name, instance)`` for a job's function.

    ``func_name`` is a dotted path a worker can import (``pkg.mod.func``), or,
    for a bound method or a callable object, the attribute name to look up on
    ``instance``. Raises ``TypeError``/``ValueError`` naming what is wrong.
    """
    if isinstance(func, str):
        if "." not in func or func.startswith(".") or func.endswith("."):
            raise ValueError(f"a job function given as a string must be a dotted path "
                             f"like 'pkg.module.func', got {func!r}")
        return func, None
    if not callable(func):
        raise TypeError(f"a job function must be callable or a dotted path, got {func!r}")
    if inspect.ismethod(func) and not inspect.isclass(func.__self__):
        return func.__name__, func.__self__
    if inspect.isfunction(func) or inspect.isbuiltin(func) or inspect.isclass(func) \
            or inspect.ismethod(func):
        module = getattr(func, "__module__", None) or "builtins"
        qualname = func.__qualname__
        if "<lambda>" in qualname:
            raise ValueError("a lambda cannot be enqueued: a worker cannot import it; "
                             "define the function at module level")
        if "<locals>" in qualname:
            raise ValueError(f"{qualname} is defined inside another function: a worker "
                             "cannot import it; define it at module level")
        if inspect.ismethod(func) and isinstance(func.__self__, type):
            # classmethod (a method bound to an instance returned above): owner class is importable
            qualname = f"{func.__self__.__qualname__}.{func.__name__}"
            module = func.__self__.__module__
        return f"{module}.{qualname}", None
    # a callable object (instance with __call__)
    return "__call__", func


def check_importable_from_worker(func_name: str, instance: Any) -> None:
    """Refuse functions a separate worker process could never import."""
    if instance is None and func_name.startswith("__main__."):
        raise ValueError(f"{func_name[9:]} is defined in __main__: a worker cannot import it; "
                         "move it into a module")


def resolve_callable(func_name: str, instance: Any) -> Callable:
    """The callable a worker runs for a stored job."""
    if instance is not None:
        return getattr(instance, func_name)
    return import_attribute(func_name)
