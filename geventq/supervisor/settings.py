"""The launcher's own settings, read from the same settings file as the workers.

Everything else in the settings file is the workers' business: the launcher
passes ``-c`` on to each child, which reads the file itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import defaults
from ..exceptions import ConfigError
from ..setting_rules import check_settings
from .memory import parse_size

# A new worker has this long to touch its heartbeat file the first time:
# starting includes importing gevent, the user's code and connecting to Redis.
DEFAULT_WORKER_BOOT_TIMEOUT = 30.0
# Slack on top of SHUTDOWN_GRACE for a warm-stopped worker to requeue and exit
# before the launcher uses SIGKILL.
STOP_MARGIN = 5.0


def default_workers() -> int:
    """One worker per CPU: a gevent worker uses one core at most."""
    return os.cpu_count() or 1


@dataclass(frozen=True)
class PoolSettings:
    """What the launcher needs to know; built by :meth:`from_settings`."""

    workers: int = 1
    worker_timeout: float = float(defaults.DEFAULT_WORKER_TIMEOUT)
    boot_timeout: float = DEFAULT_WORKER_BOOT_TIMEOUT
    max_memory: int | None = None
    shutdown_grace: float = float(defaults.DEFAULT_SHUTDOWN_GRACE)
    burst: bool = False

    @property
    def stop_timeout(self) -> float:
        """How long a warm-stopped worker may take before SIGKILL."""
        return self.shutdown_grace + STOP_MARGIN

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], workers: int | None = None
    ) -> PoolSettings:
        """Validate the pool keys of a resolved settings dict.

        ``workers`` (from ``-N``) beats ``WORKERS`` from the file, which beats
        one per CPU. Raises :class:`ConfigError` naming the bad key.
        """
        # every worker key too: a bad one stops the pool at once, not each worker it starts
        checked = check_settings({**settings, "WORKERS": workers if workers is not None
                                  else settings.get("WORKERS")})
        count = checked.get("WORKERS")
        try:
            max_memory = parse_size(settings.get("MAX_MEMORY"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return cls(
            workers=default_workers() if count is None else count,
            worker_timeout=_or(checked.get("WORKER_TIMEOUT"), defaults.DEFAULT_WORKER_TIMEOUT),
            boot_timeout=_or(checked.get("WORKER_BOOT_TIMEOUT"), DEFAULT_WORKER_BOOT_TIMEOUT),
            max_memory=max_memory,
            shutdown_grace=_or(checked.get("SHUTDOWN_GRACE"), defaults.DEFAULT_SHUTDOWN_GRACE),
            burst=bool(checked.get("BURST", False)),
        )


def _or(value: Any, default: float) -> float:
    """A checked setting, or its default when it is not set."""
    return float(default if value is None else value)
