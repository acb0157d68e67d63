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
    """Whether these settings make a hub-free ``ForkWorker``: the class is ``ForkWorker``,
    or the mode is ``fork`` and the class the default (``GeventWorker``, by any name)."""
    if worker_class is None:
        worker_class = "geventq.GeventWorker"
    if not isinstance(worker_class, str):
        return False
    if worker_class in FORK_CLASSES:
        return True
    return mode == "fork" and worker_class in DEFAULT_CLASSES
