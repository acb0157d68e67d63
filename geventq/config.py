"""Load a settings file (``-c conf/settings.py`` or ``-c settings``).

Standard library only: the launcher imports this module too. A settings file is
plain Python; its UPPERCASE names are the settings.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

from .exceptions import ConfigError


def load_settings(path_or_module: str | None) -> dict[str, Any]:
    """Return the UPPERCASE names of a settings file or module.

    ``path_or_module`` is either a file path (anything ending in ``.py`` or
    containing a path separator) or a dotted module path importable from the
    current directory. Raises :class:`ConfigError` naming the file when it is
    missing or fails to import.
    """
    if not path_or_module:
        return {}
    if path_or_module.endswith(".py") or os.sep in path_or_module:
        module = _load_file(path_or_module)
    else:
        module = _load_module(path_or_module)
    return {name: getattr(module, name) for name in dir(module) if name.isupper()}


def _load_file(path: str):
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    spec = importlib.util.spec_from_file_location("geventq_settings", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load config file: {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: any error is a config error
        raise ConfigError(f"config file {path} failed to load: {type(exc).__name__}: {exc}")
    return module


def _load_module(name: str):
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise ConfigError(f"config module {name!r} failed to import: {type(exc).__name__}: {exc}")
