"""``geventq worker``."""

from __future__ import annotations

import os
import sys
from typing import Any

from . import main
from .options import worker_options


@main.command("worker")
@worker_options
def worker(config: str | None, **values: Any) -> None:
    """Start a worker on QUEUES (default: default), in priority order."""
    from .mode import hub_free_from_start

    # A worker that runs every job in a fork child needs no gevent (geventq.ForkWorker);
    # any other patches first thing, before redis, ssl or any user module is imported.
    hub = not hub_free_from_start(config, values)
    if hub:
        from ..green.patch import patch

        patch()
    # Like `rq worker`: job modules in the current directory are importable.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    from ..worker.bootstrap import run_worker
    from .options import resolve_settings

    sys.exit(run_worker(lambda: resolve_settings(config, values), hub=hub))
