"""What the launcher shows: its process title, and text scrubbed of secrets."""

from __future__ import annotations

import re

# scheme://user:password@host or scheme://:password@host or scheme://user@host
_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")

try:  # optional: shows "geventq pool ...: 3/3 workers" in ps/top
    import setproctitle as _setproctitle
except ImportError:  # pragma: no cover - depends on the environment
    _setproctitle = None


def redact(text: str) -> str:
    """Strip ``user:pass@`` from every URL in ``text``.

    Log lines and the exit reason can quote a Redis URL (a connection error
    from a worker, say); the password must never reach a journal.
    """
    return _CREDENTIALS.sub(r"\1", text)


def set_title(title: str) -> bool:
    """Set the process title if ``setproctitle`` is installed; True if set."""
    if _setproctitle is None:
        return False
    _setproctitle.setproctitle(redact(title))
    return True
