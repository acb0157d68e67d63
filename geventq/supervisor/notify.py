"""The sd_notify protocol, spoken directly (no libsystemd needed).

systemd passes ``NOTIFY_SOCKET`` to a ``Type=notify`` service: the path of an
``AF_UNIX`` datagram socket, or an abstract-namespace name written with a
leading ``@``. Each message is newline-separated ``KEY=VALUE`` pairs. Sending
must never break the launcher, so errors are logged and swallowed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("geventq.pool")

# Variables meant for the launcher only: a worker that inherits them could
# send notifications systemd rejects (NotifyAccess=main) or arm a watchdog.
SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
STATE_WAIT = 1.0  # seconds READY/RELOADING/STOPPING may wait for room in the socket


def watchdog_interval(env: Mapping[str, str] = os.environ) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None.

    Like ``sd_watchdog_enabled()``: when ``WATCHDOG_PID`` is set it must name
    this process, otherwise the watchdog belongs to someone else.
    """
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2 / 1_000_000


class Notifier:
    """Send sd_notify messages to ``NOTIFY_SOCKET``; a no-op when it is unset."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self.address: str | None = env.get("NOTIFY_SOCKET") or None
        self.watchdog_interval: float | None = watchdog_interval(env) if self.address else None

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens."""
        return self.address is not None

    def send(self, *fields: str, wait: float = 0.0) -> bool:
        """Send one message made of ``KEY=VALUE`` fields; True if it was sent.

        A datagram socket whose reader lags is full after a few messages, and a
        plain send would then block the launcher's loop. Routine messages
        (STATUS, WATCHDOG) are dropped at once instead; state changes wait up
        to ``wait`` seconds.
        """
        if not self.address:
            return False
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(wait)
                sock.connect(addr)
                sock.sendall("\n".join(fields).encode("utf-8"))
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: every worker is up (also ends a reload)."""
        return self.send("READY=1", *([f"STATUS={status}"] if status else []), wait=STATE_WAIT)

    def status(self, status: str) -> bool:
        """``STATUS=...``: a one-line summary shown by ``systemctl status``."""
        return self.send(f"STATUS={status}")

    def reloading(self) -> bool:
        """``RELOADING=1``; systemd >= 253 wants the monotonic time with it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", wait=STATE_WAIT)

    def stopping(self) -> bool:
        """``STOPPING=1``: the warm shutdown has begun."""
        return self.send("STOPPING=1", wait=STATE_WAIT)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the main loop is alive."""
        return self.send("WATCHDOG=1")
