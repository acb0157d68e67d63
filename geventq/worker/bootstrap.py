"""The worker process bootstrap: settings, logging, Redis, then the worker (``geventq worker``)."""

from __future__ import annotations

import inspect
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from ..connection import connection_from_settings, describe_connection, is_cluster, is_cluster_node
from ..defaults import EXIT_BOOT_ERROR, EXIT_FAILURE, EXIT_OK
from ..exceptions import ConfigError
from ..setting_rules import check_settings, logging_level
from ..utils import (
    backoff_delay,
    import_attribute,
    redact_url,
    remember_settings_secrets,
)
from .joblog import JobLinesFormatter
from .modes import DEFAULT_CLASSES, is_hub_free, needs_gevent

logger = logging.getLogger("geventq.worker")


def run_worker(load_settings: Callable[[], dict], hub: bool = True) -> int:
    """Build the worker the settings describe, run it, return the exit code.

    ``hub``: whether the process was monkey-patched for gevent (``geventq worker``
    decides before the settings file runs: :mod:`geventq.cli.mode`). Configuration
    problems print one line naming the problem and return ``EXIT_BOOT_ERROR`` (the
    launcher does not restart-storm on those).
    """
    touch_heartbeat_file()
    try:
        settings = check_settings(load_settings())
        remember_settings_secrets(settings)
        setup_logging(settings.get("LOGGING_LEVEL") or "INFO")
        no_wait = bool(settings.get("NO_WAIT"))
        connection = connect(settings, no_wait)
        if connection is None:
            return EXIT_BOOT_ERROR
        worker = build_worker(settings, connection, hub=hub)
    except (ConfigError, ValueError, ImportError, AttributeError, TypeError) as exc:
        print(f"geventq worker: {redact_url(str(exc))}", file=sys.stderr)
        return EXIT_BOOT_ERROR
    while True:
        if not wait_for_redis(worker.connection, no_wait=no_wait):  # a cluster: its prefix's primary
            return EXIT_BOOT_ERROR
        if not is_cluster(connection) and is_cluster_node(connection):
            print(f"geventq worker: Redis at {describe_connection(connection)} is a node of a Redis "
                  "Cluster: start the worker with --cluster (REDIS_CLUSTER = True)", file=sys.stderr)
            return EXIT_BOOT_ERROR
        code = _work(worker, settings, no_wait)
        if code is not None:
            return code


def _work(worker: Any, settings: dict, no_wait: bool) -> int | None:
    """Run the worker once: its exit code, or None to wait for Redis and start it again."""
    try:
        worker.work(burst=bool(settings.get("BURST")), max_jobs=settings.get("MAX_JOBS"))
        return EXIT_OK
    except redis.AuthenticationError as exc:
        print(f"geventq worker: Redis refused the credentials: {redact_url(str(exc))}",
              file=sys.stderr)
        return EXIT_BOOT_ERROR
    except ConfigError as exc:  # found at start: Redis may evict keys (geventq.eviction)
        print(f"geventq worker: {redact_url(str(exc))}", file=sys.stderr)
        return EXIT_BOOT_ERROR
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # only registering talks to Redis outside the worker's own retries
        if no_wait:
            print(f"geventq worker: lost Redis while starting: {redact_url(str(exc))}",
                  file=sys.stderr)
            return EXIT_FAILURE
        logger.warning("lost Redis while starting (%s); waiting for it again",
                       redact_url(str(exc)))
        return None
    except Exception:
        logger.exception("worker %s crashed", worker.name)
        return EXIT_FAILURE


def touch_heartbeat_file(interval: float = 1.0) -> None:
    """Touch ``$GEVENTQ_HEARTBEAT_FILE`` every second, from process start to exit.

    The launcher kills a worker whose file goes stale. Under gevent the
    thread is a greenlet, so the file stops when a job blocks the hub: that is
    the point. It starts before Redis is reached, so a worker waiting for
    Redis at boot is not mistaken for a stuck one.
    """
    path = os.environ.get("GEVENTQ_HEARTBEAT_FILE")
    if not path:
        return

    def touch() -> None:
        while True:
            try:
                os.utime(path)
            except OSError:
                pass
            time.sleep(interval)

    threading.Thread(target=touch, name="geventq-heartbeat-file", daemon=True).start()


def setup_logging(level: str) -> None:
    """One line per record on stderr, at the configured level, passwords hidden."""
    numeric = logging.getLevelName(logging_level(level))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JobLinesFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=numeric, handlers=[handler])


def build_worker(settings: dict, connection: redis.Redis, hub: bool = True) -> Any:
    """Instantiate WORKER_CLASS with the settings it accepts (``MODE = "fork"`` with the
    default class: a hub-free ``ForkWorker`` unless the process has a hub already)."""
    from .base import Worker

    worker_class = pick_worker_class(settings, hub)
    if isinstance(worker_class, str):
        if "." not in worker_class:  # a built-in class by its bare name: -w SimpleWorker
            worker_class = f"geventq.{worker_class}"
        try:
            worker_class = import_attribute(worker_class)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(f"cannot import worker class {settings['WORKER_CLASS']!r}: {exc}")
    if not (isinstance(worker_class, type) and issubclass(worker_class, Worker)):
        raise ConfigError(f"worker class must be a subclass of geventq.Worker, got {worker_class!r}")
    if not hub and needs_gevent(worker_class):
        raise ConfigError(f"--mode fork runs without gevent, and {worker_class.__name__} is a "
                          "GeventWorker: make it a subclass of geventq.ForkWorker, or drop "
                          "--mode fork and name its CPU-bound queues with --fork-queue")
    handlers = list(settings.get("EXCEPTION_HANDLERS") or [])
    dsn = settings.get("SENTRY_DSN")
    if dsn:
        handlers.append(sentry_handler(dsn))
    kwargs: dict[str, Any] = dict(
        queues=settings.get("QUEUES") or ["default"], connection=connection,
        name=settings.get("NAME"), job_class=settings.get("JOB_CLASS"),
        queue_class=settings.get("QUEUE_CLASS"), exception_handlers=handlers,
        serializer=settings.get("SERIALIZER"), prefix=settings.get("PREFIX"),
        heartbeat_interval=settings.get("HEARTBEAT_INTERVAL"),
        shutdown_grace=settings.get("SHUTDOWN_GRACE"),
        max_abandoned_requeues=settings.get("MAX_ABANDONED_REQUEUES"),
        default_result_ttl=settings.get("DEFAULT_RESULT_TTL"),
        concurrency=settings.get("CONCURRENCY"), fork_queues=settings.get("FORK_QUEUES"),
        fork_concurrency=settings.get("FORK_CONCURRENCY"), mode=settings.get("MODE"),
        max_blocking_time=settings.get("MAX_BLOCKING_TIME"),
        with_scheduler=settings.get("WITH_SCHEDULER"), periodic=settings.get("PERIODIC"),
        scheduler_lock_ttl=settings.get("SCHEDULER_LOCK_TTL"),
        job_modules=settings.get("JOB_MODULES") or None,
        allow_eviction=settings.get("ALLOW_EVICTION") or None,
    )
    accepted = _accepted_parameters(worker_class)
    kwargs = {k: v for k, v in kwargs.items() if v is not None and (accepted is None or k in accepted)}
    for key in ("FORK_QUEUES", "WITH_SCHEDULER", "PERIODIC"):
        if settings.get(key) and accepted is not None and key.lower() not in accepted:
            if key == "FORK_QUEUES" and settings.get("MODE") != "fork":
                # a shared settings file used by a debugging SimpleWorker: it already
                # runs each job alone in its own process, so say so and go on
                logger.warning("%s runs every job in its own process: FORK_QUEUES %s ignored",
                               worker_class.__name__, settings[key])
                continue
            raise ConfigError(f"{worker_class.__name__} does not support {key}")
    logger.debug("connecting to %s", describe_connection(connection))
    return worker_class(**kwargs)


def pick_worker_class(settings: dict, hub: bool) -> Any:
    """WORKER_CLASS, or ``geventq.ForkWorker`` for ``MODE = "fork"`` with the default class
    in a process without a hub. A hub-free process refuses a worker that needs one."""
    worker_class = settings.get("WORKER_CLASS") or "geventq.GeventWorker"
    if not is_hub_free(settings.get("MODE"), worker_class):
        if not hub:
            raise ConfigError("the settings file computes MODE or WORKER_CLASS, and came out "
                              "needing gevent after `geventq worker` had decided to run without "
                              "it: write MODE and WORKER_CLASS as literals (or use --mode)")
        return worker_class
    if worker_class not in DEFAULT_CLASSES:
        return worker_class  # a ForkWorker, or a class that must not need gevent (fork mode)
    if hub:
        logger.info("MODE is 'fork', but the settings file computes it (or WORKER_CLASS), so "
                    "`geventq worker` monkey-patched before reading it: this worker runs its "
                    "fork children under a gevent hub (GeventWorker). Write MODE = \"fork\" as "
                    "a literal, or pass --mode fork, for a worker without gevent")
        return worker_class
    return "geventq.ForkWorker"


def _accepted_parameters(cls: type) -> set[str] | None:
    """Keyword names the class's __init__ chain takes (None: it takes **kwargs everywhere)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names |= {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return names
    return names


def sentry_handler(dsn: str) -> Callable:
    """An exception handler reporting to Sentry (needs the optional sentry-sdk)."""
    try:
        import sentry_sdk
    except ImportError:
        raise ConfigError("SENTRY_DSN is set but sentry-sdk is not installed: "
                          "pip install 'geventq[sentry]'") from None
    sentry_sdk.init(dsn=dsn)

    def report(job: Any, exc_type: type, exc_value: BaseException, tb: Any) -> None:
        with sentry_sdk.push_scope() as scope:
            scope.set_tag("geventq.job_id", job.id)
            scope.set_tag("geventq.func", job.func_name)
            sentry_sdk.capture_exception((exc_type, exc_value, tb))

    return report


def connect(settings: dict, no_wait: bool) -> Any:
    """The settings' connection. A Redis Cluster client reads the cluster's topology as it
    is made: while no node answers, wait as :func:`wait_for_redis` does (None: give up)."""
    attempt = 0
    while True:
        try:
            return connection_from_settings(settings)
        except redis.AuthenticationError as exc:
            print(f"geventq worker: Redis refused the credentials: {redact_url(str(exc))}",
                  file=sys.stderr)
            return None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            reason = redact_url(str(exc))
            if no_wait:
                print(f"geventq worker: {reason}", file=sys.stderr)
                return None
            attempt += 1
            delay = backoff_delay(attempt, base=0.5)
            logger.warning("%s; retry %d in %.1f s", reason, attempt, delay)
            time.sleep(delay)


def wait_for_redis(connection: redis.Redis, no_wait: bool) -> bool:
    """PING until Redis answers, with back-off; with ``no_wait`` give up at once."""
    where = describe_connection(connection)
    attempt = 0
    while True:
        try:
            connection.ping()
            return True
        except redis.AuthenticationError as exc:
            print(f"geventq worker: Redis at {where} refused the credentials: "
                  f"{redact_url(str(exc))}", file=sys.stderr)
            return False
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            reason = redact_url(str(exc))
            if no_wait:
                print(f"geventq worker: cannot reach Redis at {where}: {reason}",
                      file=sys.stderr)
                return False
            attempt += 1
            delay = backoff_delay(attempt, base=0.5)
            logger.warning("cannot reach Redis at %s (%s); retry %d in %.1f s", where, reason,
                           attempt, delay)
            time.sleep(delay)
