"""Success and failure callbacks: ``on_success=`` and ``on_failure=``.

A callback is stored as the dotted path of a module-level function (never a
pickled function), so the worker imports it like the job's own function:
``success_callback`` / ``failure_callback`` and their ``*_timeout`` fields in
the job hash. The worker runs it in the job's greenlet right after the job,
before the outcome is written, under the worker's death penalty with the
callback's timeout. A callback that raises or times out is logged; it never
changes the job's outcome.

- ``on_success(job, connection, result)``
- ``on_failure(job, connection, exc_type, exc_value, traceback)`` — after every
  failed try, including tries that will be retried (as in python-rq).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from typing import Any

from .allowlist import JobModules
from .callables import check_importable_from_worker, describe_callable
from .utils import import_attribute, parse_timeout, storable_text

logger = logging.getLogger("geventq.worker")

DEFAULT_CALLBACK_TIMEOUT = 60  # seconds
# the worker's death penalty: a context manager enforcing ``.timeout`` of what it is given
DeathPenalty = Callable[[Any], ContextManager]


class Callback:
    """A callback with its own timeout: ``Callback(func, timeout=30)``.

    ``func`` is a module-level function or its dotted path (``'pkg.mod.func'``);
    lambdas, nested functions, bound methods and callable objects are refused
    because a worker could not import them. ``timeout`` takes the same forms
    as ``job_timeout`` (``30``, ``'5m'``, ``-1`` for no limit); default 60 s.
    """

    def __init__(self, func: Callable | str, timeout: Any = None):
        self.func_name = callback_name(func)
        self.timeout = parse_timeout(timeout, name="Callback timeout") or DEFAULT_CALLBACK_TIMEOUT

    def __repr__(self) -> str:
        return f"Callback({self.func_name!r}, timeout={self.timeout})"

    @property
    def func(self) -> Callable:
        """The callable (imports it)."""
        return import_attribute(self.func_name)


def callback_name(func: Any, option: str = "callback") -> str:
    """The dotted path of a callback; raises ValueError naming what a worker cannot import."""
    try:
        name, instance = describe_callable(func)
        storable_text(name, "the dotted path")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{option}: {exc}") from None
    if instance is not None:
        raise ValueError(f"{option}: {func!r} is a bound method or callable object; a callback "
                         "must be a module-level function (or its dotted path)")
    try:
        check_importable_from_worker(name, None)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None
    return name


def callback_fields(on_success: Any, on_failure: Any) -> dict[str, str]:
    """Job hash fields for ``on_success=`` / ``on_failure=`` (None: not set)."""
    fields: dict[str, str] = {}
    for kind, value in (("success", on_success), ("failure", on_failure)):
        if value is None:
            continue
        callback = value if isinstance(value, Callback) else Callback(
            callback_name(value, option=f"on_{kind}"))
        fields[f"{kind}_callback"] = callback.func_name
        fields[f"{kind}_callback_timeout"] = str(callback.timeout)
    return fields


class _CallbackDeadline:
    """What the worker's death penalty reads (``id``, ``func_name``, ``timeout``), for a callback."""

    __slots__ = ("id", "func_name", "timeout")

    def __init__(self, job_id: str, func_name: str, timeout: int):
        self.id, self.func_name, self.timeout = job_id, func_name, timeout


def run_success_callback(job: Any, result: Any, death_penalty: DeathPenalty | None = None,
                         job_modules: JobModules | None = None) -> None:
    """Run the job's ``on_success`` callback, if it has one (and ``job_modules`` allows it)."""
    if "success_callback" in job.extra:
        _run(job, "success", (result,), death_penalty, job_modules)


def run_failure_callback(job: Any, exc_info: tuple, death_penalty: DeathPenalty | None = None,
                         job_modules: JobModules | None = None) -> None:
    """Run the job's ``on_failure`` callback, if it has one (and ``job_modules`` allows it)."""
    if "failure_callback" in job.extra:
        _run(job, "failure", tuple(exc_info), death_penalty, job_modules)


def _run(job: Any, kind: str, args: tuple, death_penalty: DeathPenalty | None,
         job_modules: JobModules | None) -> None:
    name = job.extra[f"{kind}_callback"]
    try:
        timeout = int(job.extra.get(f"{kind}_callback_timeout") or DEFAULT_CALLBACK_TIMEOUT)
        func = import_attribute(name) if job_modules is None else \
            job_modules.resolve(name, what=f"on_{kind} callback")
        deadline = _CallbackDeadline(job.id, f"{name} (on_{kind} callback)", timeout)
        with death_penalty(deadline) if death_penalty else contextlib.nullcontext():
            func(job, job.connection, *args)
    except BaseException as exc:  # a timeout or a cold shutdown too: the job's outcome stands
        logger.error("on_%s callback %s of job %s failed: %s: %s", kind, name, job.id,
                     type(exc).__name__, exc, exc_info=True)
