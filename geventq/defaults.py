"""Default values shared by the library, the worker and the launcher."""

DEFAULT_PREFIX = "geventq:"
CLUSTER_DEFAULT_PREFIX = "{geventq}:"  # in Redis Cluster mode: one hash slot for every key
DEFAULT_QUEUE = "default"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"

DEFAULT_JOB_TIMEOUT = 180  # seconds
DEFAULT_RESULT_TTL = 500  # seconds
DEFAULT_FAILURE_TTL = 365 * 24 * 3600  # one year

DEFAULT_CONCURRENCY = 100
DEFAULT_HEARTBEAT_INTERVAL = 5  # seconds between worker heartbeats
DEFAULT_SHUTDOWN_GRACE = 30  # seconds a warm shutdown waits for running jobs
DEFAULT_MAX_BLOCKING_TIME = 1.0  # seconds before the hub guard warns
DEFAULT_MAX_ABANDONED_REQUEUES = 1
DEFAULT_WORKER_TIMEOUT = 60  # seconds without a heartbeat before the launcher kills a worker

# Exit codes of `geventq worker`, read by the launcher.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BOOT_ERROR = 3  # bad config, import error, bad URL: restarting will not help
EXIT_HUB_BLOCKED = 4  # a job blocked the hub past its timeout; the worker stopped itself
# seconds: the longest duration or ttl anything takes (about 68 years; EXPIRE, ZADD and Lua
# numbers all hold it exactly)
MAX_SECONDS = 2**31 - 1
