"""Which worker a mode makes, and which queues it forks.

``is_hub_free`` is the one rule both ``geventq worker`` (before it decides whether to
monkey-patch, :mod:`geventq.cli.mode`) and the bootstrap (once the settings file has
run, :mod:`geventq.worker.bootstrap`) apply; ``fork_settings`` validates the fork
options of both workers. Nothing here imports gevent or redis."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from .. import setting_rules

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


def fork_settings(mode: str | None, fork_queues: Iterable[str] | None,
                  fork_concurrency: int | None, queue_names: list[str]) -> tuple[str, list[str], int]:
    """Validate the fork options: (mode, fork queue names in priority order, concurrency)."""
    mode = setting_rules.mode(mode or "gevent", "mode")
    if isinstance(fork_queues, str):
        fork_queues = setting_rules.queue_names(fork_queues, "fork_queues")
    wanted = [getattr(q, "name", q) for q in (fork_queues or ())]
    unknown = [q for q in wanted if q not in queue_names]
    if unknown:
        raise ValueError(f"fork queue(s) {', '.join(map(repr, unknown))} not among the worker's "
                         f"queues ({' '.join(queue_names)}): list them as queues too")
    names = list(queue_names) if mode == "fork" else [q for q in queue_names if q in wanted]
    if fork_concurrency is None:
        fork_concurrency = os.cpu_count() or 1
    fork_concurrency = setting_rules.fork_concurrency(fork_concurrency, "fork_concurrency")
    return mode, names, fork_concurrency
