"""Which functions a worker may run: ``JOB_MODULES`` / ``--job-module`` / ``job_modules=``.

A job names its function by a dotted path stored in Redis; whoever can write to
Redis can name any path. ``JobModules`` is the worker's answer to "may I run
this?", asked before a job's function and before its ``on_success`` /
``on_failure`` callback is called. An entry ``myapp.tasks`` allows
``myapp.tasks`` and the modules below it (``myapp.tasks.billing``), never a
sibling that merely starts with the same letters (``myapp.tasks_evil``).

Two checks, because a path is only a string:

1. the path must start with an allowed module at a dot boundary and no part of
   it may be a dunder (``__globals__``, ``__dict__``, ``__class__``...): only
   modules inside the list are ever imported for a job;
2. the object the path leads to must be *defined* in an allowed module (its
   ``__module__``, through a bound method's function, a callable object's
   class and ``__call__``). ``myapp.tasks.os.system`` (``os`` imported by
   ``myapp.tasks``) or an inherited method of a foreign base class is refused.

A job that stores an instance (a bound method or a callable object) is
checked the same way: the method must be defined in an allowed module.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable
from typing import Any

from .exceptions import JobNotAllowed
from .utils import import_attribute

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INSTANCE_CALL = "__call__"  # the func_name of a job whose function is a callable object


class JobModules:
    """The modules whose functions a worker may run; see the module docstring."""

    def __init__(self, modules: Iterable[str]):
        if isinstance(modules, str):
            modules = [modules]
        names = []
        for name in modules:
            if not isinstance(name, str) or not _MODULE_NAME.fullmatch(name.strip()):
                raise ValueError(f"JOB_MODULES: {name!r} is not a module name like "
                                 "'myapp.tasks'")
            names.append(name.strip())
        if not names:
            raise ValueError("JOB_MODULES is empty: list the modules whose functions the "
                             "worker may run, or leave it unset")
        self.modules: tuple[str, ...] = tuple(dict.fromkeys(names))
        self._prefixes = tuple(name + "." for name in self.modules)

    def __repr__(self) -> str:
        return f"JobModules({list(self.modules)!r})"

    def allows_module(self, module: Any) -> bool:
        """True when ``module`` (a module name) is listed or lies below a listed one."""
        return isinstance(module, str) and (module in self.modules
                                            or module.startswith(self._prefixes))

    def check_path(self, path: Any, what: str = "function") -> None:
        """Refuse, before importing anything, a dotted path outside the list."""
        if not isinstance(path, str) or not path.startswith(self._prefixes):
            raise JobNotAllowed(f"{what} {path!r} is not in the job modules this worker may "
                                f"run ({self._listed()})")
        for part in path.split("."):
            if not _ATTRIBUTE.fullmatch(part) or part.startswith("__"):
                raise JobNotAllowed(f"{what} {path!r}: {part!r} is not a plain name (this "
                                    f"worker runs only functions of {self._listed()})")

    def resolve(self, func_name: Any, instance: Any = None,
                what: str = "function") -> Callable:
        """The callable a job names, once both checks have passed; raises ``JobNotAllowed``."""
        if instance is None:
            self.check_path(func_name, what)
            func = import_attribute(func_name)
            shown = func_name
        else:
            if not isinstance(func_name, str) or not _ATTRIBUTE.fullmatch(func_name) or (
                    func_name.startswith("__") and func_name != _INSTANCE_CALL):
                raise JobNotAllowed(f"{what} {func_name!r} of a stored {type(instance).__name__} "
                                    f"is not a plain method name (this worker runs only "
                                    f"functions of {self._listed()})")
            func = getattr(instance, func_name)
            shown = f"{type(instance).__module__}.{type(instance).__qualname__}.{func_name}"
        foreign = [origin for origin in defined_in(func) if not self.allows_module(origin)]
        if foreign:
            where = ", ".join(dict.fromkeys(
                "built-in code" if origin is None else str(origin) for origin in foreign))
            raise JobNotAllowed(f"{what} {shown!r} runs code of {where}, outside the job "
                                f"modules this worker may run ({self._listed()})")
        return func

    def _listed(self) -> str:
        return ", ".join(self.modules)


def defined_in(func: Any) -> list[Any]:
    """The modules whose code runs when ``func`` is called (None for built-in code).

    A function: its ``__module__``. A bound method: its function's, and its
    class's when bound to one (a classmethod). A class: its own, and those of
    the ``__new__``/``__init__`` it has (unless ``object``'s) and of a
    metaclass ``__call__``. A callable object: its class's and its ``__call__``'s.
    """
    if isinstance(func, types.MethodType):
        origins = defined_in(func.__func__)
        if isinstance(func.__self__, type):
            origins.append(func.__self__.__module__)
        return origins
    if isinstance(func, (types.FunctionType, types.BuiltinFunctionType)):
        return [_module_of(func)]
    if isinstance(func, type):
        origins = [func.__module__]
        for name in ("__new__", "__init__"):
            code = getattr(func, name)
            if code is not getattr(object, name):
                origins.append(_code_module(code))
        if type(func).__call__ is not type.__call__:
            origins.append(_code_module(type(func).__call__))
        return origins
    if callable(func):  # an object with __call__: its class, and where __call__ is defined
        return [type(func).__module__, _code_module(type(func).__call__)]
    return [None]


def _code_module(code: Any) -> Any:
    """The module of a Python function; None for built-in code (slot wrappers...)."""
    return code.__module__ if isinstance(code, types.FunctionType) else None


def _module_of(obj: Any) -> Any:
    try:
        return obj.__module__
    except AttributeError:  # slot wrappers and other built-in descriptors
        return None


def job_modules_from(value: Any) -> JobModules | None:
    """``job_modules=`` / ``JOB_MODULES`` as given (None or empty: no allow-list)."""
    if value is None or isinstance(value, JobModules):
        return value
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not value:
        return None
    return JobModules(value)
