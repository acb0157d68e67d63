"""The arbiter's effects on the outside world, bundled so tests can fake them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import memory
from .children import SpawnFunc, spawn_process


@dataclass
class System:
    """Spawning, reaping, signalling, the clock and RSS.

    ``clock`` is monotonic: heartbeat ages, back-off and deadlines never jump
    with the wall clock. Unit tests pass fakes and drive ``Arbiter.step()``.
    """

    spawn: SpawnFunc = spawn_process
    waitpid: Callable[[int, int], tuple[int, int]] = os.waitpid
    kill: Callable[[int, int], None] = os.kill
    clock: Callable[[], float] = time.monotonic
    rss: Callable[[int], int | None] = memory.rss
