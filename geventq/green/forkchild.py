"""A fork child of a gevent worker leaves the worker's hub behind.

A child is forked from the running worker (:mod:`geventq.worker.forkpool`),
in the worker loop's task (``ForkPool.start``, which hands the job over), not in
the greenlet that then waits for the job. Everything the parent had is
copied into it, including the parent's greenlets and the watchers of its event
loop: were the child ever to switch to the inherited hub, the parent's main
loop, finisher and jobs would resume here and talk to Redis on the parent's
sockets. So the first thing such a child does (``ForkPool(in_child=...)``, given
by ``GeventWorker``) is abandon that hub without ever switching to it: it
destroys the inherited (default) loop, keeps the old hub referenced so that no
parent greenlet is ever collected (collecting one would run its ``finally``
blocks), and makes a fresh hub on a fresh default loop. Jobs then run in this
one greenlet, with patched sockets working against the new hub, and the child
always leaves through ``os._exit`` (:func:`geventq.worker.forkchild.child_main`).

A hub-free worker (``ForkWorker``) has no hub to leave: its children skip this.
"""

from __future__ import annotations

import signal
from typing import Any

# The parent's hub and loop, never to be used again but never to be freed either.
_INHERITED: list[Any] = []


def leave_parent_hub() -> None:
    """Swap the inherited hub (with the parent's greenlets on it) for a fresh one."""
    import gevent
    from gevent.hub import Hub, get_hub, set_hub, set_loop

    old = get_hub()
    _INHERITED.extend((old, old.loop))
    monitor = old.periodic_monitoring_thread  # restarted here by gevent's fork hook
    if monitor is not None:
        monitor.kill()
    gevent.config.monitor_thread = False  # the hub guard watches the worker, not its children
    # The parent's libev signal watchers would write into the destroyed loop: default
    # actions first (SIGTERM ends the child; a terminal's Ctrl-C is the worker's business).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    old.loop.destroy()
    set_loop(None)
    set_hub(None)
    set_hub(Hub())  # a new default loop: child watchers (subprocess) work in jobs
