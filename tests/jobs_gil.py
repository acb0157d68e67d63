"""A job that holds the GIL: one long C call, during which no other thread of its process runs."""

from __future__ import annotations

import time

from geventq import get_current_job

EXECUTIONS = "test:gil:executions"  # hash: job id -> how many times it ran


def hold_gil(seconds: float) -> float:
    """Hold the GIL for at least ``seconds`` in one C call; return how long that call held it.

    ``3 ** k`` is one call into CPython's big-integer code, which never releases
    the GIL. ``k`` is calibrated on a small power (the cost grows as k ** ~1.55);
    a call that ends too soon (a noisy machine) is followed by a longer one.
    """
    job = get_current_job()
    job.connection.hincrby(EXECUTIONS, job.id, 1)
    exponent, held = 300_000, 0.0
    while True:
        began = time.perf_counter()
        _ = 3 ** exponent
        held = max(time.perf_counter() - began, 1e-4)
        if held >= seconds:
            return held
        exponent = int(exponent * (seconds * 1.05 / held) ** (1 / 1.55))
