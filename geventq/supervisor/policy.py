"""When to restart a worker that died: back-off, and when to give up."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RestartPolicy:
    """Exponential back-off for workers that die again and again right after start.

    A worker that ran for at least ``start_window`` seconds proves the setup
    works, so its exit resets the count; a clean exit (code 0) also resets it.
    ``max_failures`` failures in a row, each within the window, mean the setup
    is broken (bad code, Redis unreachable...): the pool gives up rather than
    spin the CPU.
    """

    start_window: float = 10.0
    max_failures: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    failures: int = 0

    def record(self, lifetime: float, failed: bool) -> float:
        """Note one exit; return how long to wait before the next start."""
        if not failed or lifetime >= self.start_window:
            self.failures = 0
            return 0.0
        self.failures += 1
        if self.failures == 1:
            return 0.0  # one crash is not a pattern: replace it at once
        return min(self.base_delay * 2 ** (self.failures - 2), self.max_delay)

    @property
    def gave_up(self) -> bool:
        """True after ``max_failures`` quick failures in a row."""
        return self.failures >= self.max_failures
