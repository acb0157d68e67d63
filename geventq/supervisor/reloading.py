"""SIGHUP: replace every worker, one at a time, new before old.

For each slot a new ("incoming") worker starts next to the old one; only once
it has touched its heartbeat is the old one warm-stopped. So the pool never has
fewer than N - 1 (in fact N) workers taking jobs during a reload.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .arbiter import Arbiter

log = logging.getLogger("geventq.pool")


class RollingReload:
    """The state of one rolling replacement, driven by the arbiter's loop."""

    def __init__(self, arbiter: Arbiter) -> None:
        self.arbiter = arbiter
        self.pending: list[tuple[int, int]] = []  # (slot, generation to replace)
        self.active = False
        self.total = 0

    def start(self, now: float) -> None:
        """Plan the replacement of every running worker."""
        arb = self.arbiter
        for child in list(arb.children.values()):
            if child.role == "incoming":  # started for an older reload: its settings are stale
                arb.retire(child, now, "superseded by a newer reload")
        self.pending = sorted((c.slot, c.generation) for c in arb.children.values()
                              if c.role == "active")
        self.total = len(self.pending)
        self.active = True
        log.info("reloading: replacing %d workers one at a time", self.total)

    def advance(self, now: float) -> None:
        """Start the next new worker, or swap it in once it beats."""
        if not self.active:
            return
        arb = self.arbiter
        while self.pending:
            slot, generation = self.pending[0]
            old = arb.find(slot, "active")
            if old is None or old.generation != generation or slot >= arb.target:
                self.pending.pop(0)  # died or removed meanwhile: already replaced
                continue
            new = arb.find(slot, "incoming")
            if new is None:
                if now >= arb.spawn_after:
                    arb.spawn(slot, "incoming", now)
                return
            if not new.ready:
                return
            new.role = "active"
            arb.retire(old, now, f"replaced by {new.name} (reload)")
            self.pending.pop(0)
        self.finish()

    def abort(self, reason: str) -> None:
        """A new worker could not start: keep the old ones, end the reload."""
        log.error("reload aborted, the current workers keep running: %s", reason)
        arb = self.arbiter
        for child in list(arb.children.values()):
            if child.role == "incoming":
                arb.retire(child, arb.clock(), "reload aborted")
        self.pending = []
        self.finish()

    def cancel(self) -> None:
        """The pool is stopping: forget the plan."""
        self.pending = []
        self.active = False

    def finish(self) -> None:
        """Tell systemd the reload is over (``READY=1``)."""
        if self.active:
            self.active = False
            log.info("reload done")
            self.arbiter.reporter.reloaded()

    def status(self) -> str:
        """A suffix for STATUS and the log while a reload runs."""
        if not self.active:
            return ""
        return f", reloading ({self.total - len(self.pending)}/{self.total} replaced)"
