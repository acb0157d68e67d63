"""The rule of every worker and pool setting, each written once.

``geventq worker`` checks its resolved settings (file + command line) with
:func:`check_settings` before it builds anything, ``geventq pool`` does the
same before it starts a worker, and the worker classes check their own
constructor arguments with the same functions: ``HEARTBEAT_INTERVAL = 0`` in
a settings file and ``GeventWorker(heartbeat_interval=0)`` are refused alike,
naming what was wrong. ``None`` always means "the default".

Standard library only: the launcher imports this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .exceptions import ConfigError
from .names import check_queue_name, check_worker_name
from .utils import MAX_COUNT, MAX_SECONDS, parse_count, parse_seconds, parse_ttl

# Bounds (docs/configuration.md states them): a heartbeat more often than 10 times a
# second buys nothing and costs Redis (0 meant ~28k commands/s from one idle worker);
# less often than hourly would leave a dead worker's jobs unnoticed for hours.
MIN_HEARTBEAT_INTERVAL = 0.1
MAX_HEARTBEAT_INTERVAL = 3600.0
MAX_CONCURRENCY = 100_000  # greenlets of one worker
MAX_FORK_CONCURRENCY = 4096  # forked children of one worker
MAX_WORKERS = 4096  # processes of one pool
MIN_MAX_BLOCKING_TIME = 0.01  # the hub guard's thread wakes this often at most
MIN_SCHEDULER_LOCK_TTL = 0.3
LOGGING_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MODES = ("gevent", "fork")


def heartbeat_interval(value: Any, name: str = "HEARTBEAT_INTERVAL") -> float:
    """Seconds between heartbeats: from 0.1 to 3600."""
    return parse_seconds(value, name=name, minimum=MIN_HEARTBEAT_INTERVAL,
                         maximum=MAX_HEARTBEAT_INTERVAL)


def default_result_ttl(value: Any, name: str = "DEFAULT_RESULT_TTL") -> int | None:
    """Seconds a result is kept when its job set none: as ``result_ttl`` (0, -1 or up
    to 2**31 - 1 whole seconds); ``None`` (the default) passes through, as in ``parse_ttl``."""
    return parse_ttl(value, name=name)


def max_abandoned_requeues(value: Any, name: str = "MAX_ABANDONED_REQUEUES") -> int:
    """Times a job of a dead worker goes back on its queue: a whole number >= 0."""
    return parse_count(value, name=name)


def shutdown_grace(value: Any, name: str = "SHUTDOWN_GRACE") -> float:
    """Seconds a warm shutdown waits: from 0 to 2**31 - 1."""
    return parse_seconds(value, name=name)


def max_blocking_time(value: Any, name: str = "MAX_BLOCKING_TIME") -> float:
    """Seconds a job may hold the hub before the guard acts: 0 (off) or 0.01 and up."""
    seconds = parse_seconds(value, name=name)
    if 0 < seconds < MIN_MAX_BLOCKING_TIME:
        raise ValueError(f"{name} must be 0 (off) or seconds from {MIN_MAX_BLOCKING_TIME} to "
                         f"{MAX_SECONDS}, got {value!r}")
    return seconds


def concurrency(value: Any, name: str = "CONCURRENCY") -> int:
    """Jobs a GeventWorker runs at once: 1 to 100,000."""
    return parse_count(value, name=name, minimum=1, maximum=MAX_CONCURRENCY)


def fork_concurrency(value: Any, name: str = "FORK_CONCURRENCY") -> int:
    """Forked children at once: 1 to 4096."""
    return parse_count(value, name=name, minimum=1, maximum=MAX_FORK_CONCURRENCY)


def max_jobs(value: Any, name: str = "MAX_JOBS") -> int:
    """Jobs before the worker exits: 1 and up."""
    return parse_count(value, name=name, minimum=1, maximum=MAX_COUNT)


def scheduler_lock_ttl(value: Any, name: str = "SCHEDULER_LOCK_TTL") -> float:
    """Seconds the scheduler lock outlives its holder: from 0.3 to 2**31 - 1."""
    return parse_seconds(value, name=name, minimum=MIN_SCHEDULER_LOCK_TTL)


def workers(value: Any, name: str = "WORKERS") -> int:
    """Worker processes of one pool: 1 to 4096."""
    return parse_count(value, name=name, minimum=1, maximum=MAX_WORKERS)


def positive_seconds(value: Any, name: str) -> float:
    """Seconds above 0, at most 2**31 - 1 (the pool's timeouts)."""
    return parse_seconds(value, name=name, above_minimum=True)


def queue_names(value: Any, name: str = "QUEUES") -> list[str]:
    """Queue names: a list (or a string split on spaces and commas) of valid names."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of queue names, got {value!r}")
    try:
        return [check_queue_name(item) for item in value]
    except ValueError as exc:
        raise ValueError(f"{name} {value!r}: {exc}") from None


def non_empty_queue_names(value: Any, name: str = "QUEUES") -> list[str]:
    """As :func:`queue_names`, at least one."""
    names = queue_names(value, name)
    if not names:
        raise ValueError(f"{name} must name at least one queue, got {value!r}")
    return names


def prefix(value: Any, name: str = "PREFIX") -> str:
    """The key prefix: a non-empty string of printable characters without spaces."""
    if not isinstance(value, str) or not value or not value.isprintable() or " " in value:
        raise ValueError(f"{name} must be a non-empty string of printable characters without "
                         f"spaces, got {value!r}")
    return value


def logging_level(value: Any, name: str = "LOGGING_LEVEL") -> str:
    """A level name (any case) or a standard level number, as its upper-case name."""
    if isinstance(value, int) and not isinstance(value, bool) and \
            logging.getLevelName(value) in LOGGING_LEVELS:
        return logging.getLevelName(value)
    if isinstance(value, str) and value.strip().upper() in LOGGING_LEVELS:
        return value.strip().upper()
    raise ValueError(f"{name} must be one of {', '.join(LOGGING_LEVELS)}, got {value!r}")


def worker_name(value: Any, name: str = "NAME") -> str:
    """A worker name: printable, without spaces, ':' or ','."""
    return check_worker_name(value, name)


def mode(value: Any, name: str = "MODE") -> str:
    """'gevent' or 'fork'."""
    if value not in MODES:
        raise ValueError(f"{name} must be 'gevent' or 'fork', got {value!r}")
    return value


def flag(value: Any, name: str) -> bool:
    """True or False (a string such as 'false' is refused: it would count as true)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _flag_rule(name: str) -> Callable[[Any], bool]:
    return lambda value: flag(value, name)


# settings key -> its rule; keys not listed here are checked where they are used
# (classes and dotted paths when imported, PERIODIC by the scheduler, REDIS_* by the
# connection, MAX_MEMORY by the launcher)
RULES: dict[str, Callable[[Any], Any]] = {
    "HEARTBEAT_INTERVAL": heartbeat_interval,
    "DEFAULT_RESULT_TTL": default_result_ttl,
    "MAX_ABANDONED_REQUEUES": max_abandoned_requeues,
    "SHUTDOWN_GRACE": shutdown_grace,
    "MAX_BLOCKING_TIME": max_blocking_time,
    "CONCURRENCY": concurrency,
    "FORK_CONCURRENCY": fork_concurrency,
    "MAX_JOBS": max_jobs,
    "SCHEDULER_LOCK_TTL": scheduler_lock_ttl,
    "QUEUES": non_empty_queue_names,
    "FORK_QUEUES": lambda value: queue_names(value, "FORK_QUEUES"),
    "PREFIX": prefix,
    "LOGGING_LEVEL": logging_level,
    "NAME": worker_name,
    "MODE": mode,
    "BURST": _flag_rule("BURST"),
    "WITH_SCHEDULER": _flag_rule("WITH_SCHEDULER"),
    "NO_WAIT": _flag_rule("NO_WAIT"),
    "REDIS_CLUSTER": _flag_rule("REDIS_CLUSTER"),
    "ALLOW_EVICTION": _flag_rule("ALLOW_EVICTION"),
    "WORKERS": workers,
    "WORKER_TIMEOUT": lambda value: positive_seconds(value, "WORKER_TIMEOUT"),
    "WORKER_BOOT_TIMEOUT": lambda value: positive_seconds(value, "WORKER_BOOT_TIMEOUT"),
}


def check_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``settings`` with every key of :data:`RULES` checked and normalised.

    ``None`` means the default and is kept as is. Raises :class:`ConfigError`
    with one line naming the first bad key and its value.
    """
    checked = dict(settings)
    for key, rule in RULES.items():
        value = checked.get(key)
        if value is None:
            continue
        try:
            checked[key] = rule(value)
        except ValueError as exc:
            message = str(exc)
            if not message.startswith(key):
                message = f"{key}: {message}"
            raise ConfigError(message) from None
    return checked
