"""Monkey-patching, done once by the worker entry point."""

from __future__ import annotations


def patch() -> None:
    """Patch the standard library for gevent (idempotent).

    Must run before user code, redis or ssl are imported, so that every
    socket a job opens cooperates with the other greenlets.
    """
    import os

    import gevent
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    # A worker spawns a greenlet per job; recording the spawning stack and tree of each
    # (a debugging aid) costs more than running a small job. The env var turns it back on.
    if "GEVENT_TRACK_GREENLET_TREE" not in os.environ:
        gevent.config.track_greenlet_tree = False
