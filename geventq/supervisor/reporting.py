"""What the launcher tells the outside: log line, process title, sd_notify."""

from __future__ import annotations

import logging

from .display import set_title
from .notify import Notifier

log = logging.getLogger("geventq.pool")


class Reporter:
    """Publishes the pool's status when it changes; sends READY and WATCHDOG."""

    def __init__(self, notifier: Notifier, pool_name: str) -> None:
        self.notifier = notifier
        self.pool_name = pool_name
        self.last_status = ""
        self.ready_sent = False
        self.next_watchdog = 0.0

    def update(self, now: float, status: str, all_up: bool, stopping: bool, healthy: bool) -> None:
        """Publish ``status`` if new; READY=1 the first time every worker is up."""
        if status != self.last_status:
            self.last_status = status
            log.info("pool %s: %s", self.pool_name, status)
            set_title(f"geventq pool {self.pool_name}: {status}")
            if self.ready_sent:
                self.notifier.status(status)
        if not self.ready_sent and all_up and not stopping:
            self.ready_sent = True
            self.notifier.ready(status)
        interval = self.notifier.watchdog_interval
        # The ping proves the loop runs; it stops once the pool is failing so
        # that a wedged shutdown is caught by systemd too.
        if interval and healthy and now >= self.next_watchdog:
            self.notifier.watchdog()
            self.next_watchdog = now + interval

    def next_due(self) -> float | None:
        """When the next watchdog ping is due, if the watchdog is on."""
        return self.next_watchdog if self.notifier.watchdog_interval else None

    def reloaded(self) -> None:
        """READY=1 again: a reload is over."""
        self.notifier.ready(self.last_status or None)
