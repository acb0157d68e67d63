"""Whether ``geventq worker`` needs gevent, decided before any user code is imported.

A worker that runs every job in a fork child (``--mode fork``) needs no gevent
hub: it runs a :class:`geventq.ForkWorker` and never monkey-patches. Patching
must come first, before Redis, ``ssl`` or the settings file are imported, so
the mode is read before the settings file runs:

1. ``--mode`` and ``--worker-class`` on the command line;
2. else a top-level ``MODE = "..."`` / ``WORKER_CLASS = "..."`` literal in the
   settings file, read with :mod:`ast` without running the file;
3. else the defaults (``gevent``, ``geventq.GeventWorker``).

The worker is hub-free when the mode is ``fork`` (whatever the class: the
bootstrap refuses one that needs gevent) or the class is ``ForkWorker``. A settings file that computes ``MODE`` or
``WORKER_CLASS`` (anything but a literal) gets a patched worker with a hub:
the settings decide once the file has run, and the worker logs why it has a hub.
Standard library only: this runs before the decision it makes.
"""

from __future__ import annotations

import ast
import os
import sys
from typing import Any

from ..worker.modes import is_hub_free

UNKNOWN = object()  # a setting the file computes: known only once it has run


def hub_free_from_start(config: str | None, cli_values: dict[str, Any]) -> bool:
    """Whether ``geventq worker`` runs without gevent, from the command line and the
    literals of the settings file (see the module's docstring)."""
    literals = settings_literals(config, ("MODE", "WORKER_CLASS")) if config else {}
    mode = cli_values.get("mode") or literals.get("MODE", "gevent")
    worker_class = cli_values.get("worker_class") or literals.get("WORKER_CLASS")
    if mode is UNKNOWN or worker_class is UNKNOWN:
        return False
    return is_hub_free(mode, worker_class)


def settings_literals(config: str, names: tuple[str, ...]) -> dict[str, Any]:
    """``names`` the settings file assigns at its top level: their literal values, or
    ``UNKNOWN`` when the file computes one (or cannot be read here)."""
    path = settings_path(config)
    if path is None:
        return dict.fromkeys(names, UNKNOWN)
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return dict.fromkeys(names, UNKNOWN)  # the loader reports it, once patched
    found: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            return dict.fromkeys(names, UNKNOWN)
        for name in _assigned_names(node):
            if name in names:
                found[name] = _literal(node) if node in tree.body else UNKNOWN
    return found


def _assigned_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
        targets = [node.target]
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return [node.name]
    else:
        return []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _literal(node: ast.AST) -> Any:
    """The value of ``NAME = <literal>``; UNKNOWN for anything else."""
    if isinstance(node, ast.AnnAssign) and node.value is not None and node.simple:
        node = ast.Assign(targets=[node.target], value=node.value)  # MODE: str = "fork"
    if isinstance(node, ast.Assign) and len(node.targets) == 1 \
            and isinstance(node.targets[0], ast.Name):
        try:
            return ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return UNKNOWN
    return UNKNOWN


def settings_path(config: str) -> str | None:
    """The file ``-c`` names: a path, or a module found on the path (none is imported)."""
    if config.endswith(".py") or os.sep in config:
        return config if os.path.isfile(config) else None
    parts = config.split(".")
    for base in [os.getcwd()] + [p or os.getcwd() for p in sys.path]:
        # a package before a module of the same name, as the import system finds them
        for candidate in (os.path.join(base, *parts, "__init__.py"),
                          os.path.join(base, *parts) + ".py"):
            if os.path.isfile(candidate):
                return candidate
    return None
