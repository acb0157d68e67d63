"""Recovering the in-flight jobs of a worker that died without cleaning up.

A worker killed by a signal (SIGKILL for a lapsed heartbeat, the OOM killer...)
or crashing with an unexpected exit code leaves its claimed jobs behind. The
launcher runs ``geventq recover --worker NAME`` for it: a short subprocess, so
the launcher itself never talks to Redis. It is reaped by the main loop like a
worker and killed if it overstays its deadline, so it never blocks the loop.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .children import Spawned, SpawnFunc, describe_exit

log = logging.getLogger("geventq.pool")

RECOVER_TIMEOUT = 30.0


@dataclass
class Recovery:
    """One running recovery."""

    name: str
    process: Spawned
    deadline: float


class Recoveries:
    """The recoveries under way, keyed by pid."""

    def __init__(
        self,
        argv: Callable[[str], list[str]] | None,
        spawn: SpawnFunc,
        kill: Callable[[int, int], None],
        env: Mapping[str, str],
        timeout: float = RECOVER_TIMEOUT,
    ) -> None:
        self.argv, self._spawn, self._kill, self.env = argv, spawn, kill, env
        self.timeout = timeout
        self.running: dict[int, Recovery] = {}

    def __bool__(self) -> bool:
        return bool(self.running)

    def start(self, name: str, now: float) -> None:
        """Start the recovery of worker ``name``'s jobs (if a command is set)."""
        if self.argv is None:
            return
        try:
            process = self._spawn(self.argv(name), self.env, False)
        except OSError as exc:
            log.error("cannot start the recovery of %s's jobs: %s", name, exc)
            return
        self.running[process.pid] = Recovery(name, process, now + self.timeout)
        log.info("recovering the in-flight jobs of %s (pid %d)", name, process.pid)

    def reaped(self, pid: int, status: int) -> bool:
        """Handle an exit if ``pid`` is a recovery; True if it was one."""
        recovery = self.running.pop(pid, None)
        if recovery is None:
            return False
        recovery.process.reaped(status)
        _, words = describe_exit(status)
        level = logging.INFO if status == 0 else logging.ERROR
        log.log(level, "recovery of %s's jobs %s", recovery.name, words)
        return True

    def check(self, now: float) -> None:
        """SIGKILL recoveries past their deadline."""
        for pid, recovery in self.running.items():
            if now >= recovery.deadline:
                log.error("recovery of %s's jobs timed out after %gs; killing it",
                          recovery.name, self.timeout)
                recovery.deadline = float("inf")
                with contextlib.suppress(ProcessLookupError):
                    self._kill(pid, signal.SIGKILL)

    def deadlines(self) -> list[float]:
        """When each running recovery is due."""
        return [r.deadline for r in self.running.values()]
