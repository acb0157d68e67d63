"""The gevent runtime of the worker loop: events, sleeps, greenlets, signals."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gevent
from gevent.event import Event


class GeventRuntime:
    """How :class:`geventq.worker.loop.Loop` waits and runs tasks, on one gevent hub."""

    def event(self) -> Event:
        return Event()

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def yield_(self) -> None:
        gevent.sleep(0)

    def spawn(self, func: Callable[..., Any], *args: Any) -> gevent.Greenlet:
        return gevent.spawn(func, *args)

    def current(self) -> Any:
        return gevent.getcurrent()

    def done(self, handle: gevent.Greenlet) -> bool:
        return bool(handle.ready())

    def wait_any(self, handle: gevent.Greenlet, event: Event) -> None:
        gevent.wait([handle, event], count=1)

    def kill(self, handles: Sequence[gevent.Greenlet], timeout: float) -> None:
        if timeout <= 0:
            for greenlet in handles:
                greenlet.kill(block=False)
            return
        gevent.killall(list(handles), block=True, timeout=timeout)

    def on_signal(self, signum: int, handler: Callable[[int], None]) -> Callable[[], None]:
        watcher = gevent.signal_handler(signum, handler, signum)
        return watcher.cancel
