"""Job functions of the flow-control tests (limits, RateLimited); importable by workers."""

from __future__ import annotations

import os
import time

import redis

from geventq import RateLimited, get_current_job

_CONNECTIONS: dict[str, redis.Redis] = {}

# counts the jobs of a key running now, and keeps the highest count seen
_ENTER = """
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], n)
end
return n
"""


def _conn() -> redis.Redis:
    url = os.environ["REDIS_URL"]
    if url not in _CONNECTIONS:
        _CONNECTIONS[url] = redis.Redis.from_url(url)
    return _CONNECTIONS[url]


def held(tag: str, seconds: float) -> str:
    """Runs ``seconds``; the key ``flow:running:<tag>`` counts the jobs of ``tag`` running
    now and ``flow:max:<tag>`` the most seen at once; ``flow:done:<tag>`` lists the ids."""
    conn = _conn()
    conn.eval(_ENTER, 2, f"flow:running:{tag}", f"flow:max:{tag}")
    conn.rpush(f"flow:starts:{tag}", repr(time.time()))
    try:
        time.sleep(seconds)
    finally:
        conn.decr(f"flow:running:{tag}")
        conn.rpush(f"flow:done:{tag}", get_current_job().id)
    return tag


def throttled_once(tag: str, retry_after: float) -> str:
    """Raises RateLimited on its first run, then returns; runs are listed in flow:runs:<tag>."""
    conn = _conn()
    runs = conn.rpush(f"flow:runs:{tag}", repr(time.time()))
    if runs == 1:
        raise RateLimited(retry_after=retry_after)
    return "ok"
