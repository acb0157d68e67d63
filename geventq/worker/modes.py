"""Which worker class a mode makes: the one rule both ``geventq worker`` (before it
decides whether to monkey-patch, :mod:`geventq.cli.mode`) and the bootstrap (once the
settings file has run, :mod:`geventq.worker.bootstrap`) apply. Standard library only."""

from __future__ import annotations

from typing import Any

DEFAULT_CLASSES = frozenset({"GeventWorker", "geventq.GeventWorker",
                             "geventq.green.worker.GeventWorker"})
FORK_CLASSES = frozenset({"ForkWorker", "geventq.ForkWorker",
                          "geventq.worker.forkworker.ForkWorker"})


def is_hub_free(mode: Any, worker_class: Any) -> bool:
    """Whether these settings make a worker without gevent: the class is ``ForkWorker``,
    or the mode is ``fork`` (with any class: the default becomes ``ForkWorker``, and a
    class that needs gevent is refused once imported, see :func:`needs_gevent`)."""
    if worker_class is None:
        worker_class = "geventq.GeventWorker"
    if not isinstance(worker_class, str):
        return False
    return worker_class in FORK_CLASSES or mode == "fork"


def needs_gevent(worker_class: type) -> bool:
    """Whether ``worker_class`` is a ``GeventWorker`` (told without importing gevent)."""
    return any(f"{k.__module__}.{k.__qualname__}" == "geventq.green.worker.GeventWorker"
               for k in worker_class.__mro__)
