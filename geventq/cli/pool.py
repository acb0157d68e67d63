"""``geventq pool``: start N worker processes and supervise them.

The launcher imports neither gevent nor redis; each worker is a fresh
``python -m geventq worker`` process given exactly the worker options the
pool was given. See docs/deployment.md for signals, settings and exit codes.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click
from click.core import ParameterSource

from ..defaults import EXIT_BOOT_ERROR
from ..exceptions import ConfigError
from ..utils import RedactingFormatter, redact_url, remember_settings_secrets
from . import main
from .options import resolve_settings, worker_options

# Each worker gets its own --name; queues go last; -N is the pool's own. The URL
# travels in the environment (GEVENTQ_URL), never on a command line that `ps` shows.
POOL_ONLY = {"queues", "name", "workers", "pool_name", "url"}
# What `geventq recover` needs to find the worker's keys.
RECOVER_OPTIONS = {"config", "prefix", "cluster"}


def forwarded_options(ctx: click.Context, only: set[str] | None = None) -> list[str]:
    """The worker options given on the command line, as arguments again.

    Only options the user typed are forwarded (not defaults, not the
    environment), so each worker resolves the rest from the same settings file
    the way ``geventq worker`` would on its own.
    """
    args: list[str] = []
    for param in ctx.command.params:
        name = param.name or ""
        if not isinstance(param, click.Option) or name in POOL_ONLY:
            continue
        if only is not None and name not in only:
            continue
        if ctx.get_parameter_source(name) is not ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[name]
        flag = max(param.opts, key=len)  # the long spelling: unambiguous
        if param.is_flag:
            if value:
                args.append(flag)
        elif param.multiple:
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    return args


@main.command("pool")
@worker_options
@click.option("-N", "--workers", type=click.IntRange(min=1),
              help="Worker processes to run (default: WORKERS from the config, else one per CPU).")
@click.option("--pool-name", envvar="GEVENTQ_POOL",
              help="Name of this pool in `geventq info` (default: hostname.pid).")
@click.pass_context
def pool(ctx: click.Context, config: str | None, workers: int | None,
         pool_name: str | None, **values: Any) -> None:
    """Run and supervise a pool of worker processes.

    Every worker option is passed on to each worker unchanged. Pool settings
    from the config file: WORKERS, WORKER_TIMEOUT, WORKER_BOOT_TIMEOUT,
    MAX_MEMORY, SHUTDOWN_GRACE (MAX_JOBS is the workers' --max-jobs).

    Signals: TERM/INT warm shutdown (twice: cold), HUP reload the config and
    replace the workers one by one, TTIN/TTOU one more/fewer worker.
    """
    from ..supervisor import Arbiter, Notifier, PoolSettings

    def load() -> PoolSettings:
        return PoolSettings.from_settings(resolve_settings(config, values), workers)

    remember_settings_secrets({"REDIS_URL": values.get("url")})
    try:
        settings = resolve_settings(config, values)
        remember_settings_secrets(settings)  # the workers' output passes through redact_url
        pool_settings = PoolSettings.from_settings(settings, workers)
    except ConfigError as exc:
        # One line, and the boot-error code: systemd's RestartPreventExitStatus
        # keeps a broken config from turning into a restart storm.
        click.echo(f"geventq pool: {redact_url(str(exc))}", err=True)
        ctx.exit(EXIT_BOOT_ERROR)

    level = str(settings.get("LOGGING_LEVEL") or "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(
        "%(asctime)s geventq.pool[%(process)d] %(levelname)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level, logging.INFO), handlers=[handler])

    env = dict(os.environ)
    if values.get("url"):
        env["GEVENTQ_URL"] = values["url"]
    forward = forwarded_options(ctx)
    queues = list(values.get("queues") or ())
    recover = forwarded_options(ctx, RECOVER_OPTIONS)
    try:
        exporter = start_exporter(settings.get("METRICS_BIND"), recover, env)
    except ValueError as exc:
        click.echo(f"geventq pool: {exc}", err=True)
        ctx.exit(EXIT_BOOT_ERROR)
    arbiter = Arbiter(
        pool_settings,
        lambda name: [sys.executable, "-m", "geventq", "worker", *forward, "--name", name,
                      *queues],
        pool_name=pool_name,
        name_base=settings.get("NAME"),
        recover_argv=lambda name: [sys.executable, "-m", "geventq", "recover", "--worker", name,
                                   *recover],
        reload_settings=load,
        notifier=Notifier(),
        env=env,
    )
    try:
        code = arbiter.run()
    finally:
        stop_exporter(exporter)
    ctx.exit(code)


def start_exporter(bind: Any, options: list[str], env: dict[str, str]) -> Any:
    """``geventq metrics --bind METRICS_BIND`` as a child of the pool (None when unset), so a
    systemd unit of a pool serves /metrics with no unit of its own. A separate process:
    the launcher imports no redis, and the exporter reads Redis only, so it may die or
    restart without touching a worker. ValueError names a malformed ``METRICS_BIND``."""
    import subprocess

    from .dashboard import parse_bind

    if bind is None or bind == "":
        return None
    if not isinstance(bind, str):
        raise ValueError(f"METRICS_BIND must be HOST:PORT (e.g. 127.0.0.1:9191), got {bind!r}")
    try:
        parse_bind(bind)
    except ValueError:
        raise ValueError(f"METRICS_BIND must be HOST:PORT (e.g. 127.0.0.1:9191), "
                         f"got {bind!r}") from None
    return subprocess.Popen([sys.executable, "-m", "geventq", "metrics", "--bind", bind,
                             *options], env=env)


def stop_exporter(exporter: Any) -> None:
    """Stop the pool's exporter (SIGTERM, then SIGKILL after 5 s)."""
    import subprocess

    if exporter is None:
        return
    exporter.terminate()
    try:
        exporter.wait(5)
    except subprocess.TimeoutExpired:
        exporter.kill()
        exporter.wait()
