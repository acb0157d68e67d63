"""Worker options shared by ``geventq worker`` and ``geventq pool``.

Each option maps to a settings key; the command line beats the config file,
which beats the defaults. ``resolve_settings`` does that merge in one place.
Numbers are only parsed here: their ranges are the settings' rules
(:mod:`geventq.setting_rules`), checked on the merged settings, so that a bad
value is reported the same way (one line, exit code 3) from either source.
"""

from __future__ import annotations

from typing import Any

import click

from .. import defaults
from ..config import load_settings

# option name (click parameter) -> settings key
OPTION_KEYS = {
    "url": "REDIS_URL",
    "cluster": "REDIS_CLUSTER",
    "burst": "BURST",
    "worker_class": "WORKER_CLASS",
    "job_class": "JOB_CLASS",
    "queue_class": "QUEUE_CLASS",
    "exception_handler": "EXCEPTION_HANDLERS",
    "concurrency": "CONCURRENCY",
    "fork_queue": "FORK_QUEUES",
    "fork_concurrency": "FORK_CONCURRENCY",
    "mode": "MODE",
    "name": "NAME",
    "logging_level": "LOGGING_LEVEL",
    "sentry_dsn": "SENTRY_DSN",
    "max_jobs": "MAX_JOBS",
    "with_scheduler": "WITH_SCHEDULER",
    "prefix": "PREFIX",
    "serializer": "SERIALIZER",
    "no_wait": "NO_WAIT",
    "job_module": "JOB_MODULES",
    "allow_eviction": "ALLOW_EVICTION",
}

SETTING_DEFAULTS: dict[str, Any] = {
    "REDIS_URL": None,
    "REDIS_CLUSTER": False,
    "QUEUES": [defaults.DEFAULT_QUEUE],
    "BURST": False,
    "WORKER_CLASS": "geventq.GeventWorker",
    "JOB_CLASS": None,
    "QUEUE_CLASS": None,
    "EXCEPTION_HANDLERS": [],
    "CONCURRENCY": defaults.DEFAULT_CONCURRENCY,
    "FORK_QUEUES": [],
    "FORK_CONCURRENCY": None,
    "MODE": "gevent",
    "NAME": None,
    "LOGGING_LEVEL": "INFO",
    "SENTRY_DSN": None,
    "MAX_JOBS": None,
    "WITH_SCHEDULER": False,
    "PREFIX": None,  # geventq: (with REDIS_CLUSTER: {geventq}:)
    "SERIALIZER": None,
    "NO_WAIT": False,
    "DEFAULT_RESULT_TTL": defaults.DEFAULT_RESULT_TTL,
    "HEARTBEAT_INTERVAL": defaults.DEFAULT_HEARTBEAT_INTERVAL,
    "SHUTDOWN_GRACE": defaults.DEFAULT_SHUTDOWN_GRACE,
    "MAX_BLOCKING_TIME": defaults.DEFAULT_MAX_BLOCKING_TIME,
    "MAX_ABANDONED_REQUEUES": defaults.DEFAULT_MAX_ABANDONED_REQUEUES,
    "JOB_MODULES": [],
    "ALLOW_EVICTION": False,
}


def cluster_option(func):
    """``--cluster``: the URL is any node of a Redis Cluster (``REDIS_CLUSTER = True``)."""
    return click.option("--cluster", is_flag=True, default=None,
                        help="The Redis URL is a node of a Redis Cluster (REDIS_CLUSTER); the key "
                             "prefix must then carry a hash tag, default {geventq}:.")(func)


def worker_options(func):
    """Decorate a click command with every worker option."""
    opts = [
        click.option("-c", "--config", "config", help="Settings module (settings) or file (conf/settings.py)."),
        click.option("-u", "--url", envvar="GEVENTQ_URL",
                     help="Redis URL, e.g. redis://localhost:6379/0 (or $GEVENTQ_URL, which keeps "
                          "a password off the command line)."),
        cluster_option,
        click.option("-b", "--burst", is_flag=True, default=None, help="Run every available job, then exit."),
        click.option("-w", "--worker-class", help="Dotted path of the worker class."),
        click.option("--job-class", help="Dotted path of the Job class."),
        click.option("--queue-class", help="Dotted path of the Queue class."),
        click.option("--exception-handler", multiple=True, help="Dotted path of a handler (repeatable)."),
        click.option("-n", "--concurrency", type=int, help="Jobs run at once (greenlets)."),
        click.option("--fork-queue", multiple=True, help="Queue whose jobs run in forked children (repeatable)."),
        click.option("--fork-concurrency", type=int, help="Forked children at once."),
        click.option("--mode", type=click.Choice(["gevent", "fork"]), help="Run every queue on greenlets or in forks."),
        click.option("--name", help="Worker name (default: hostname.pid)."),
        click.option("--logging-level", help="DEBUG, INFO, WARNING, ERROR."),
        click.option("--sentry-dsn", envvar="SENTRY_DSN", help="Report failures to Sentry (needs sentry-sdk)."),
        click.option("--max-jobs", type=int, help="Exit after this many jobs."),
        click.option("--with-scheduler", is_flag=True, default=None, help="Also run the scheduler."),
        click.option("--prefix", help="Key prefix in Redis (default geventq:, {geventq}: with --cluster)."),
        click.option("--serializer", help="pickle, json, or a dotted path."),
        click.option("--no-wait", is_flag=True, default=None, help="Fail at once if Redis is down at start."),
        click.option("--job-module", multiple=True,
                     help="Run only functions of this module and the modules below it "
                          "(repeatable; docs/security.md)."),
        click.option("--allow-eviction", is_flag=True, default=None,
                     help="Run even if Redis' maxmemory-policy is not noeviction (warns)."),
        click.argument("queues", nargs=-1),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def resolve_settings(config: str | None, cli_values: dict[str, Any]) -> dict[str, Any]:
    """Merge defaults, the config file and the command line, in that order."""
    settings = dict(SETTING_DEFAULTS)
    settings.update(load_settings(config))
    queues = cli_values.get("queues")
    if queues:
        settings["QUEUES"] = list(queues)
    for option, key in OPTION_KEYS.items():
        value = cli_values.get(option)
        if value is None or value == ():
            continue
        settings[key] = list(value) if isinstance(value, tuple) else value
    if isinstance(settings.get("QUEUES"), str):
        settings["QUEUES"] = settings["QUEUES"].split()
    return settings
