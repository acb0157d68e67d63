"""One log line per ended job, cheap enough to leave on.

Every worker logs each job it ends, once the ending is written: id, function,
outcome and duration (and, for a failure, the last line of its traceback), on
the logger ``geventq.jobs`` at INFO. A GeventWorker's finisher gathers the
lines (:class:`JobLog`) and logs them as *one* log record, holding one line per
job, at most every 0.1 s: the ``logging`` machinery (record, handler lock,
formatting, one write) is paid once per record rather than twice per job, as
it was. The worker's own formatter (``geventq worker``'s, see
:class:`JobLinesFormatter`) puts the usual prefix on every line, so the output
reads as one record per job. Silence these lines alone with
``logging.getLogger("geventq.jobs").setLevel(logging.WARNING)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from ..endings import Ending
from ..utils import RedactingFormatter

logger = logging.getLogger("geventq.jobs")


def ending_line(ending: Ending) -> str:
    """``job ID FUNC finished in 0.002 s`` / ``job ID FUNC failed after 0.002 s: LAST LINE``."""
    job = ending.job
    duration = ending.extra.get("duration", "0")
    try:
        seconds = f"{float(duration):.3f}"
    except (TypeError, ValueError):
        seconds = "?"
    if ending.outcome == "finished":
        return f"job {job.id} {job.func_name} finished in {seconds} s"
    payload = ending.payload if isinstance(ending.payload, str) else ""
    lines = payload.strip().splitlines()
    return f"job {job.id} {job.func_name} {ending.outcome} after {seconds} s: " \
           f"{lines[-1] if lines else ''}"


class JobLog:
    """Lines of ended jobs, gathered and logged as one record when ``due()``: every
    ``interval`` seconds at most, or once ``limit`` lines wait. The cost of a record
    is then shared by many jobs however small the finisher's batches are (a loaded
    machine makes them small). Nothing is gathered below INFO."""

    def __init__(self, interval: float = 0.1, limit: int = 500,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.limit, self.clock = interval, limit, clock
        self.lines: list[str] = []
        self._since = 0.0

    def add(self, endings: Sequence[Ending]) -> None:
        if not endings or not logger.isEnabledFor(logging.INFO):
            return
        if not self.lines:
            self._since = self.clock()
        self.lines += [ending_line(e) for e in endings]

    def wait_time(self) -> float | None:
        """Seconds until the lines waiting are due (None: none waits)."""
        if not self.lines:
            return None
        return max(0.0, self._since + self.interval - self.clock())

    def due(self) -> bool:
        return bool(self.lines) and (len(self.lines) >= self.limit or self.wait_time() == 0.0)

    def flush(self) -> None:
        """Log the lines waiting, as one record."""
        if self.lines:
            lines, self.lines = self.lines, []
            logger.info("\n".join(lines))


def log_endings(endings: Sequence[Ending]) -> None:
    """Log one line per ended job, all in one record (nothing at all below INFO)."""
    if endings and logger.isEnabledFor(logging.INFO):
        logger.info("\n".join([ending_line(e) for e in endings]))


class JobLinesFormatter(RedactingFormatter):
    """A :class:`RedactingFormatter` that gives each line of a ``geventq.jobs`` record
    the prefix of a record of its own (time, level, logger)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.name != logger.name or record.exc_info or "\n" not in text:
            return text
        message = record.getMessage()
        prefix = text[:len(text) - len(message)] if text.endswith(message) else ""
        if not prefix:
            return text
        return text.replace("\n", "\n" + prefix)
