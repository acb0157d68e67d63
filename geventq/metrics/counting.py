"""The job counters and duration histograms workers keep in Redis.

Each batch of endings adds one ``metrics_count.lua`` call to the pipeline that
writes the endings (:func:`geventq.lifecycle.end_jobs`): no round trip of its
own. Per (queue, function) the call adds the jobs per outcome, the duration
sum and count, and one to the histogram bucket each duration falls in (buckets
are stored per bound, not cumulative; the exporter adds them up).

The outcome of a failure is decided here from what the worker knows: a job
whose exception is ``JobTimeoutException`` counts as ``timed_out``; a failed job
enqueued with ``retry=`` and retries left counts as ``retried`` (``end.lua``
takes the same decision from the same field, read when its try started).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import DeserializationError

if TYPE_CHECKING:
    from ..endings import Ending
    from ..keys import Keys

# upper bounds (seconds) of the duration histogram's buckets; +Inf is implied
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
           1800.0)
OUTCOMES = ("finished", "failed", "timed_out", "stopped", "retried", "rate_limited")
DEFAULT_MAX_FUNCTIONS = 200
OTHER = "other"  # the function label of every function past the cap


def enabled() -> bool:
    """Whether workers count job metrics: ``$GEVENTQ_METRICS`` = ``0`` turns it off."""
    return os.environ.get("GEVENTQ_METRICS", "1").strip().lower() not in ("0", "false", "no", "off")


def max_functions() -> int:
    """The cap on function labels: ``$GEVENTQ_METRICS_MAX_FUNCTIONS``, else 200."""
    raw = os.environ.get("GEVENTQ_METRICS_MAX_FUNCTIONS", "")
    if not raw:
        return DEFAULT_MAX_FUNCTIONS
    if not raw.isdigit():
        raise ValueError(f"GEVENTQ_METRICS_MAX_FUNCTIONS must be a whole number >= 0, got {raw!r}")
    return int(raw)


def bucket_label(seconds: float) -> str:
    """The stored bound of the bucket ``seconds`` falls in (``+Inf`` past the last)."""
    for bound in BUCKETS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


def outcome_of(ending: Ending) -> str:
    """The ``outcome`` label of one ending."""
    if ending.outcome != "failed":
        return ending.outcome
    payload = ending.payload
    text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
    lines = text.strip().splitlines()
    if lines and "JobTimeoutException" in lines[-1]:
        return "timed_out"
    if ending.may_retry and _retries_left(ending) > 0:
        return "retried"
    return "failed"


def _retries_left(ending: Ending) -> int:
    """The job's ``retries_left`` (0 when a hostile writer left garbage: the ending itself
    then reports that, in end.lua's caller; counting must not get there first)."""
    try:
        return ending.job.retries_left or 0
    except (ValueError, DeserializationError):
        return 0


def count_call(keys: Keys, endings: Sequence[Ending],
               cap: int | None = None) -> tuple[list, list] | None:
    """(KEYS, ARGV) of the ``metrics_count.lua`` call for ``endings``, or None (nothing
    to count, or counting is off)."""
    if not endings or not enabled():
        return None
    groups: dict[tuple[str, str], dict[tuple[str, str], Any]] = {}
    for ending in endings:
        job = ending.job
        group = groups.setdefault((job.origin or "", job.func_name or "?"), {})
        field = ("j", outcome_of(ending))
        group[field] = group.get(field, 0) + 1
        try:
            seconds = max(0.0, float(ending.extra.get("duration", "")))
        except ValueError:  # no duration (the job never ran): counted, not timed
            continue
        for field, value in ((("d", bucket_label(seconds)), 1), (("d", "count"), 1),
                             (("d", "sum"), seconds)):
            group[field] = group.get(field, 0) + value
    args: list[Any] = [max_functions() if cap is None else cap]
    for (queue, func), fields in groups.items():
        args += [queue, func, len(fields)]
        for (kind, name), value in fields.items():
            args += [kind, name, f"{value:.6f}" if isinstance(value, float) else value]
    return [keys.metrics_functions, keys.metrics_jobs, keys.metrics_durations], args


def outcome_call(keys: Keys, queue: str, function: str, outcome: str, count: int = 1,
                 cap: int | None = None) -> tuple[list, list]:
    """(KEYS, ARGV) of a ``metrics_count.lua`` call adding ``count`` jobs of ``outcome``
    that ended no end script's way (``rate_limited``: a job put back by a limit), for the
    caller to add to the script batch it sends anyway."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    return ([keys.metrics_functions, keys.metrics_jobs, keys.metrics_durations],
            [max_functions() if cap is None else cap, queue, function, 1, "j", outcome, count])
