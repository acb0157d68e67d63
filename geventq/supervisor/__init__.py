"""The ``geventq pool`` launcher: runs and supervises worker processes.

Imports neither gevent nor redis: workers are started by fork + exec, so each
one monkey-patches before anything else is loaded, and the launcher itself
never talks to Redis.
"""

from .arbiter import Arbiter
from .notify import Notifier
from .policy import RestartPolicy
from .settings import PoolSettings

__all__ = ["Arbiter", "Notifier", "PoolSettings", "RestartPolicy"]
