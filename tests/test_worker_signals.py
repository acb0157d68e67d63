"""A worker on plain threads (SimpleWorker, ForkWorker) takes SIGTERM in a handler that
runs in its main thread, between two bytecodes: possibly inside a method of the very
event the handler sets. These tests put the signal exactly there."""

from __future__ import annotations

import signal
import sys
import threading

import pytest

from geventq.worker.executors import SignalSafeEvent

pytestmark = pytest.mark.timeout(10)


def _signal_inside(method_name: str) -> None:
    """Raise SIGUSR1 at the first line ``method_name`` of SignalSafeEvent runs (its
    lock held), once."""
    raised = []

    def tracer(frame, event, arg):
        if frame.f_code.co_name != method_name or "SignalSafeEvent" not in repr(
                frame.f_locals.get("self")):
            return None

        def lines(frame, event, arg):
            if event == "line" and not raised and frame.f_lineno > frame.f_code.co_firstlineno + 1:
                raised.append(True)
                signal.raise_signal(signal.SIGUSR1)
            return lines
        return lines

    sys.settrace(tracer)
    threading.settrace(tracer)


@pytest.mark.parametrize("method_name", ["clear", "set"])
def test_a_handler_sets_the_event_its_thread_holds_the_lock_of(method_name):
    event = SignalSafeEvent()
    stopping = SignalSafeEvent()  # what a handler sets: the loop never clears it
    handled = []

    def handler(signum, frame):
        event.set()  # with a plain (non re-entrant) lock this waits for ever
        stopping.set()
        handled.append(signum)

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        _signal_inside(method_name)
        getattr(event, method_name)()
    finally:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
        signal.signal(signal.SIGUSR1, previous)
    assert handled == [signal.SIGUSR1]
    assert stopping.is_set() and stopping.wait(0)


def test_wait_returns_when_another_thread_sets_it_and_false_on_timeout():
    event = SignalSafeEvent()
    assert event.wait(0.01) is False
    setter = threading.Timer(0.05, event.set)
    setter.start()
    assert event.wait(5) is True
    setter.join()
    event.clear()
    assert not event.is_set()
