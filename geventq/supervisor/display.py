"""What the launcher shows: its process title, never with a password in it."""

from __future__ import annotations

from ..utils import redact_url

try:  # optional: shows "geventq pool ...: 3/3 workers" in ps/top
    import setproctitle as _setproctitle
except ImportError:  # pragma: no cover - depends on the environment
    _setproctitle = None



def set_title(title: str) -> bool:
    """Set the process title if ``setproctitle`` is installed; True if set."""
    if _setproctitle is None:
        return False
    _setproctitle.setproctitle(redact_url(title))
    return True
