"""How the worker loop batches its Redis work: the tuning constants, in one place.

A busy worker claims and writes endings in bunches: each claim or write costs
round trips whatever its size. Claims take at most ``CLAIM_MAX`` jobs, so that
the first of a bunch start while the next are claimed; while jobs run, fewer
than ``BUNCH`` free slots (or endings) wait up to ``GATHER`` seconds for more.
An idle worker never waits.
"""

from __future__ import annotations

BUNCH = 10  # free slots (or endings) worth a round trip without waiting for more
GATHER = 0.001  # seconds a busy worker waits for more free slots or endings, once
CLAIM_MAX = 50  # jobs one claim takes at most (the peek of the next claim, too)
IDLE_BLOCK = 1.0  # seconds an idle worker blocks on the queues' wake tokens per call
SUSPEND_CHECK = 1.0  # seconds between looks at the suspend flag
EARLY_STOP_MEMORY = 30.0  # seconds a stop for a job not (yet) running here is remembered
EARLY_STOP_MAX = 10_000  # stops remembered at most (the oldest go first)
GIVE_BACK_ATTEMPTS = 5  # tries to put an interrupted job back before leaving it to recovery
