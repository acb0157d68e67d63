"""Redis must never evict geventq's keys: the ``maxmemory-policy`` check.

Under memory pressure Redis evicts keys by its ``maxmemory-policy``. With
``volatile-*`` it evicts keys that have a TTL: worker heartbeat keys go first,
so live workers are taken for dead and their running jobs run twice. With
``allkeys-*`` it may evict queues, jobs and registries: jobs are lost. Only
``noeviction`` (Redis refuses writes instead) keeps every promise of
docs/reliability.md. A worker checks the policy when it starts and refuses to
run under any other, unless ``ALLOW_EVICTION`` says to go on with a warning.

The policy is read from ``INFO memory``, which answers where ``CONFIG`` is
renamed or forbidden (managed Redis services); if even that is refused, the
worker warns and goes on.
"""

from __future__ import annotations

import logging

import redis

from .exceptions import ConfigError

logger = logging.getLogger("geventq.worker")

SAFE_POLICY = "noeviction"


class EvictionPolicyError(ConfigError):
    """Redis may evict geventq's keys (its ``maxmemory-policy`` is not ``noeviction``)."""


def eviction_policy(connection: redis.Redis) -> str | None:
    """The server's ``maxmemory-policy``, or None when it cannot be read (ACL, old server)."""
    try:
        info = connection.info("memory")
    except redis.ResponseError:  # NOPERM: an ACL user without INFO
        return None
    policy = info.get("maxmemory_policy")
    if isinstance(policy, bytes):
        policy = policy.decode("utf-8", "replace")
    return str(policy) if policy is not None else None


def eviction_warning(policy: str | None) -> str | None:
    """What is wrong with ``policy`` in one sentence, or None when it is ``noeviction``."""
    if policy == SAFE_POLICY:
        return None
    if policy is None:
        return ("cannot read Redis' maxmemory-policy (INFO memory was refused): make sure it "
                "is noeviction, or Redis may evict worker heartbeats and queued jobs")
    what = "queues and jobs (jobs are lost)" if policy.startswith("allkeys") else \
        "worker heartbeats (running jobs run twice) and jobs with a TTL"
    return (f"Redis maxmemory-policy is {policy}: under memory pressure Redis evicts {what}; "
            f"set maxmemory-policy noeviction")


def check_eviction_policy(connection: redis.Redis, allow_eviction: bool = False) -> str | None:
    """Refuse (``EvictionPolicyError``) unless the policy is ``noeviction``.

    With ``allow_eviction`` the problem is logged as a WARNING instead; a policy
    that cannot be read is always only a warning. Returns the policy read.
    """
    policy = eviction_policy(connection)
    warning = eviction_warning(policy)
    if warning is None:
        return policy
    if policy is not None and not allow_eviction:
        raise EvictionPolicyError(f"{warning} (or ALLOW_EVICTION = True / --allow-eviction to "
                                  "run anyway)")
    logger.warning("%s%s", warning, " (ALLOW_EVICTION is set: running anyway)"
                   if policy is not None else "")
    return policy
