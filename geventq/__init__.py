"""geventq: a Redis-backed job queue with the python-rq API and a gevent worker.

Names are imported lazily so that ``import geventq`` (and the ``geventq``
command) loads neither gevent nor redis until they are used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .version import VERSION

__version__ = VERSION

_EXPORTS = {
    "Queue": "geventq.queue",
    "Job": "geventq.job",
    "JobStatus": "geventq.job",
    "Dependency": "geventq.job",
    "get_current_job": "geventq.context",
    "get_connection": "geventq.connection",
    "job": "geventq.decorators",
    "Retry": "geventq.retry",
    "Limit": "geventq.limits",
    "RateLimited": "geventq.exceptions",
    "Callback": "geventq.callbacks",
    "Worker": "geventq.worker.base",
    "SimpleWorker": "geventq.worker.simple",
    "GeventWorker": "geventq.green.worker",
    "ForkWorker": "geventq.worker.forkworker",
}

__all__ = sorted(_EXPORTS) + ["VERSION"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'geventq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
