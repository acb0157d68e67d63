"""geventq settings: `geventq worker -c conf/settings.py` or `geventq pool -c ...`.

Every key geventq reads is listed here with its default. Options given on the
command line beat this file. Only UPPERCASE names are read. A value out of its
range (given below) stops `geventq worker` and `geventq pool` at start with one
line naming the key and the value, exit code 3; None means the default.
"""

# --- Redis -----------------------------------------------------------------
# A URL: redis://[user:password@]host:port/db, rediss:// for TLS, unix:///path.
# Used when set; otherwise REDIS_HOST/PORT/DB/PASSWORD below. Default: $REDIS_URL,
# else redis://localhost:6379/0.
REDIS_URL = None
# REDIS_HOST = "redis.example.com"
# REDIS_PORT = 6379
# REDIS_DB = 0
# REDIS_USERNAME = None        # an ACL user
# REDIS_PASSWORD = None        # never printed by geventq
# REDIS_SSL = False            # TLS with REDIS_HOST/PORT (a URL says it with rediss://)
# TLS files, for rediss:// URLs, REDIS_SSL = True and Sentinel masters:
# REDIS_SSL_CA_CERTS = "/etc/ssl/redis-ca.pem"   # the CA that signed the server's certificate
# REDIS_SSL_CERTFILE = None    # client certificate, when Redis has tls-auth-clients yes
# REDIS_SSL_KEYFILE = None     # its private key
# REDIS_SSL_CERT_REQS = None   # "required" (redis-py's default), "optional" or "none"
# REDIS_SOCKET_TIMEOUT = None  # seconds; None keeps redis-py's default
# REDIS_SOCKET_CONNECT_TIMEOUT = None
# Redis Sentinel: when set, wins over REDIS_URL/REDIS_HOST; workers and `geventq`
# commands follow a failover. REDIS_USERNAME/PASSWORD/DB/SSL apply to the master.
# REDIS_SENTINELS = [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26379)]
# REDIS_SENTINEL_MASTER = "mymaster"
# REDIS_SENTINEL_PASSWORD = None   # if the sentinels themselves require AUTH
# REDIS_SENTINEL_USERNAME = None
# REDIS_SENTINEL_KWARGS = {}       # more redis-py keywords for the sentinel connections
# Redis Cluster: REDIS_URL (or REDIS_HOST/PORT) is any node of the cluster; every key of a
# prefix then lives in one hash slot, so PREFIX must carry a hash tag (docs/deployment.md).
REDIS_CLUSTER = False          # --cluster
PREFIX = None                  # every key starts with this; None: "geventq:", or "{geventq}:" with REDIS_CLUSTER
SERIALIZER = None              # None/"pickle" (trusts Redis), "json", or a dotted path

# --- Security (docs/security.md) ------------------------------------------------
# --job-module: the modules whose functions (and callbacks) workers may run; "myapp.tasks"
# allows myapp.tasks and myapp.tasks.*. Any other job fails and runs nothing. With
# SERIALIZER = "json" this is what keeps a writer to Redis from running code. []: any.
JOB_MODULES = []
ALLOW_EVICTION = False         # --allow-eviction: start even if Redis may evict keys (warns)

# --- What to work on ----------------------------------------------------------
QUEUES = ["default"]           # priority order: the first non-empty queue wins
WORKER_CLASS = "geventq.GeventWorker"   # or "geventq.SimpleWorker", or your own
JOB_CLASS = None               # dotted path of a Job subclass
QUEUE_CLASS = None             # dotted path of a Queue subclass
EXCEPTION_HANDLERS = []        # dotted paths: handler(job, exc_type, exc_value, tb); False stops the chain
SENTRY_DSN = None              # report failures to Sentry (pip install 'geventq[sentry]')

# --- How the worker runs --------------------------------------------------------
CONCURRENCY = 100              # jobs at once in one GeventWorker (greenlets), 1 to 100000
BURST = False                  # run what is queued, then exit
MAX_JOBS = None                # exit after this many jobs (the pool starts a fresh worker)
NAME = None                    # worker name; default hostname.pid.random
LOGGING_LEVEL = "INFO"         # INFO logs one line per job start/end; WARNING none
NO_WAIT = False                # exit at once if Redis is down at start, instead of retrying
HEARTBEAT_INTERVAL = 5         # seconds between heartbeats (0.1 to 3600); a worker is dead 2 intervals + 1 s
                               # after its last
SHUTDOWN_GRACE = 30            # seconds a warm shutdown lets running jobs finish
MAX_ABANDONED_REQUEUES = 1     # times a job of a dead or cold-stopped worker is requeued before it fails
                               # (docs/reliability.md: live workers recover dead ones' jobs)
DEFAULT_RESULT_TTL = 500       # seconds results are kept unless a job says otherwise: whole seconds
                               # up to 2147483647, 0 (deleted at once) or -1 (forever)

# --- CPU-bound jobs: fork queues and the hub guard (docs/workers.md) ----------------
FORK_QUEUES = []               # --fork-queue: queues whose jobs run in forked child processes
FORK_CONCURRENCY = None        # children at once (1 to 4096); None: one per CPU
MODE = "gevent"                # "fork": every queue of the worker is a fork queue
MAX_BLOCKING_TIME = 1.0        # seconds (0.01 or more) a job may hold the gevent hub before a warning; 0: off

# --- Scheduling, retries with intervals, periodic jobs -----------------------------
# The scheduler queues jobs of enqueue_at/enqueue_in and retries with an interval when
# they are due (within ~1 s), and enqueues PERIODIC. Any number of workers may run it;
# one is active per Redis at a time (a lock in Redis).
WITH_SCHEDULER = False         # --with-scheduler: this worker is a scheduler candidate
SCHEDULER_LOCK_TTL = 10        # seconds (0.3 or more); if the active scheduler dies, another takes over
                               # within this
# Periodic jobs: (schedule, func, args, kwargs, options), the last three optional, or a dict
# with those keys. schedule: a cron string (UTC; 6 fields = seconds last) or an interval in
# seconds. options: queue (default "default"), name (unique; default "<func> <schedule>")
# and enqueue's job options. Each occurrence is enqueued once however many pools run; after
# downtime only the latest missed occurrence runs. See docs/jobs.md.
# PERIODIC = [("*/5 * * * *", "myapp.reports.refresh"),
#             (30, "myapp.feeds.poll", ["rss"], {}, {"queue": "low", "job_timeout": 20})]
PERIODIC = []

# --- geventq pool (the launcher; see docs/deployment.md) ---------------------------
# WORKERS = 4                  # worker processes (1 to 4096); default one per CPU; -N/--workers wins
# WORKER_TIMEOUT = 60          # seconds without a heartbeat before a worker is killed and replaced
# WORKER_BOOT_TIMEOUT = 30     # seconds a new worker has to beat the first time
# MAX_MEMORY = "512M"          # RSS limit per worker (bytes or '512M', '1.5G'); over it: recycled
# METRICS_BIND = "127.0.0.1:9191"  # the pool also runs `geventq metrics` there (docs/metrics.md)

# --- geventq dashboard (docs/dashboard.md) -------------------------------------------
# DASHBOARD_AUTH = None        # "user:password": HTTP basic auth; without it, loopback only.
                               # --auth and $GEVENTQ_DASHBOARD_AUTH win over it
