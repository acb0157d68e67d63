"""Is a worker healthy? Heartbeat age, stop deadlines and memory.

Only decisions live here; the arbiter acts on them (SIGKILL or warm stop).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from . import memory
from .children import Child, HeartbeatDir
from .settings import PoolSettings


class Health:
    """Judges workers; ``rss`` is injectable so tests need no real processes."""

    MEMORY_INTERVAL = 1.0  # psutil reads /proc: once a second is plenty

    def __init__(self, rss: Callable[[int], int | None] = memory.rss) -> None:
        self._rss = rss
        self.next_memory_check = 0.0

    @staticmethod
    def why_kill(child: Child, settings: PoolSettings, now: float) -> str | None:
        """Why ``child`` must be SIGKILLed now, or None if it may live.

        The heartbeat is the file's mtime as seen changing on the launcher's
        own monotonic clock, so a wall-clock jump never kills a worker. Before
        the first touch the worker gets ``boot_timeout`` to start.
        """
        mtime, size = HeartbeatDir.stat(child.heartbeat) or (None, 0)
        child.observe_beat(mtime, now, size)
        if child.beating and now - child.last_beat > settings.worker_timeout:
            return (f"no heartbeat for {now - child.last_beat:.1f}s "
                    f"(WORKER_TIMEOUT={settings.worker_timeout:g})")
        if not child.beating and now - child.started > settings.boot_timeout:
            return f"no heartbeat within {settings.boot_timeout:g}s of starting"
        if child.stop_deadline is not None and now >= child.stop_deadline:
            return f"still running {settings.stop_timeout:g}s after SIGTERM"
        return None

    def over_memory(
        self, children: Iterable[Child], limit: int | None, now: float
    ) -> list[tuple[Child, str]]:
        """Workers (not already stopping) whose RSS passed ``limit``, with why."""
        if not limit or now < self.next_memory_check:
            return []
        self.next_memory_check = now + self.MEMORY_INTERVAL
        fat = []
        for child in children:
            if child.role == "retiring" or child.killed:
                continue
            size = self._rss(child.pid)
            if size is not None and size > limit:
                fat.append((child, f"RSS {memory.format_size(size)} over MAX_MEMORY "
                                   f"{memory.format_size(limit)}"))
        return fat
