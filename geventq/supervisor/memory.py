"""Memory sizes and a child's resident set size (RSS) for ``MAX_MEMORY``."""

from __future__ import annotations

import re

import psutil

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(value: object) -> int | None:
    """Turn ``'512M'``, ``'1.5G'``, ``'800MiB'`` or a byte count into bytes.

    Units are binary (``K`` = 1024). ``None``, ``0`` and ``''`` mean no limit
    and return None. Anything else raises ``ValueError`` naming the value.
    """
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, bool):
        raise ValueError(f"MAX_MEMORY must be bytes or a size like '512M', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"MAX_MEMORY must be positive, got {value!r}")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            size = int(float(match.group(1)) * _FACTORS[match.group(2).upper()])
            return size or None
    raise ValueError(
        f"MAX_MEMORY must be bytes or a number with a unit K/M/G/T (e.g. '512M'), got {value!r}"
    )


def format_size(size: int) -> str:
    """A short human form of a byte count (``536870912`` -> ``'512.0M'``)."""
    value = float(size)
    for unit in ("", "K", "M", "G"):
        if value < 1024:
            return f"{value:.1f}{unit}" if unit else f"{int(value)}"
        value /= 1024
    return f"{value:.1f}T"


def rss(pid: int) -> int | None:
    """Resident set size of process ``pid`` in bytes, or None if it is gone.

    Only the worker process itself counts, not the short-lived children a
    fork-mode worker starts per job.
    """
    try:
        return psutil.Process(pid).memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
