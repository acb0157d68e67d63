"""Job ids."""

from __future__ import annotations

import os

# ids made ahead from one os.urandom call; list.pop() is atomic, so threads never share
# one, and a forked child starts with an empty pool rather than its parent's ids
_ID_POOL: list[str] = []
os.register_at_fork(after_in_child=_ID_POOL.clear)


def new_job_id() -> str:
    """A random job id in the form of ``uuid.uuid4().hex`` (bits from ``os.urandom``).

    Ids are made 256 at a time, at a quarter of the cost of ``uuid4()`` each.
    """
    while True:
        try:
            return _ID_POOL.pop()
        except IndexError:
            raw = bytearray(os.urandom(16 * 256))
            for i in range(6, len(raw), 16):
                raw[i] = raw[i] & 0x0F | 0x40  # version 4
                raw[i + 2] = raw[i + 2] & 0x3F | 0x80  # RFC 4122 variant
            text = raw.hex()
            _ID_POOL.extend([text[i:i + 32] for i in range(0, len(text), 32)])
