"""Monkey-patching, done once by the worker entry point."""

from __future__ import annotations


def patch() -> None:
    """Patch the standard library for gevent (idempotent).

    Must run before user code, redis or ssl are imported, so that every
    socket a job opens cooperates with the other greenlets.
    """
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
