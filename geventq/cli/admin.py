"""``geventq info``, ``empty``, ``requeue``, ``suspend``, ``resume``, ``pause``, ``unpause``,
``stop``, ``recover``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click

from . import main
from .options import cluster_option


def connection_options(func: Callable) -> Callable:
    """-c/--config, -u/--url, --cluster and --prefix, resolved into ctx.obj lazily."""
    func = click.option("--prefix", help="Key prefix in Redis (default geventq:, {geventq}: "
                                         "with --cluster).")(func)
    func = cluster_option(func)
    func = click.option("-u", "--url", envvar="GEVENTQ_URL", help="Redis URL (or $GEVENTQ_URL).")(func)
    func = click.option("-c", "--config", "config", help="Settings module or file.")(func)
    return func


class Context:
    """The connection and key space a command works on."""

    def __init__(self, config: str | None, url: str | None, prefix: str | None,
                 cluster: bool | None = None):
        from ..config import load_settings
        from ..connection import connection_from_settings, resolve_connection_and_keys

        settings = load_settings(config)
        if url:
            settings["REDIS_URL"] = url
        if cluster:
            settings["REDIS_CLUSTER"] = True
        self.settings = settings
        # on a cluster: the client of the primary serving the prefix's slot
        self.connection, self.keys = resolve_connection_and_keys(
            connection_from_settings(settings), None, prefix or settings.get("PREFIX"))


def command(name: str, **kwargs: Any) -> Callable:
    """A subcommand whose errors print one clear line and exit 1."""

    def decorate(func: Callable) -> Callable:
        def run(config, url, cluster, prefix, **params):
            import redis
            from redis.exceptions import MovedError

            from ..exceptions import GeventqError
            from ..utils import redact_url

            try:
                func(Context(config, url, prefix, cluster), **params)
            except (GeventqError, ValueError, redis.RedisError) as exc:
                message = redact_url(str(exc))
                if isinstance(exc, MovedError) or "CROSSSLOT" in message:
                    message = ("this Redis is a node of a Redis Cluster: add --cluster "
                               "(or REDIS_CLUSTER = True in the settings)")
                click.echo(f"geventq {name}: {message}", err=True)
                sys.exit(1)

        run.__doc__ = func.__doc__
        run.__name__ = func.__name__
        return main.command(name, **kwargs)(connection_options(run))

    return decorate


@click.argument("queues", nargs=-1)
@click.option("--interval", type=float, help="Refresh every N seconds.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (schema: docs/metrics.md) for scripts.")
@command("info")
def info(ctx: Context, queues: tuple[str, ...], interval: float | None, as_json: bool) -> None:
    """Show queues (lengths, registries) and workers."""
    from ..eviction import eviction_policy, eviction_warning
    from .info import render_info

    if as_json:
        import json

        from ..metrics.status import status

        click.echo(json.dumps(status(ctx.connection, ctx.keys, list(queues)), sort_keys=True))
        return
    while True:
        text = render_info(ctx.connection, ctx.keys, list(queues))
        warning = eviction_warning(eviction_policy(ctx.connection))
        if warning:
            text += f"\nWARNING: {warning}"
        if interval:
            click.clear()
        click.echo(text)
        if not interval:
            return
        time.sleep(interval)


@click.argument("queues", nargs=-1, required=True)
@command("empty")
def empty(ctx: Context, queues: tuple[str, ...]) -> None:
    """Remove every queued job of QUEUES."""
    from ..queue import Queue

    for name in queues:
        removed = Queue(name, connection=ctx.connection, keys=ctx.keys).empty()
        click.echo(f"{removed} job(s) removed from {name}")


@click.argument("job_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Requeue every failed job.")
@click.option("--queue", "queue_names", multiple=True, help="Only these queues (with --all).")
@command("requeue")
def requeue(ctx: Context, job_ids: tuple[str, ...], all_: bool,
            queue_names: tuple[str, ...]) -> None:
    """Put failed jobs back on their queues: JOB_ID... or --all."""
    from ..job import Job
    from ..queue import Queue

    if not job_ids and not all_:
        raise click.UsageError("give JOB_IDs or --all")
    ids = list(job_ids)
    if all_:
        queues = [Queue(n, connection=ctx.connection, keys=ctx.keys) for n in queue_names] or \
            Queue.all(connection=ctx.connection, keys=ctx.keys)
        for queue in queues:
            ids += queue.failed_job_registry.get_job_ids()
    for job_id in ids:
        Job.fetch(job_id, connection=ctx.connection, keys=ctx.keys).requeue()
    click.echo(f"{len(ids)} job(s) requeued")


@click.option("--duration", type=int, help="Resume by itself after N seconds.")
@command("suspend")
def suspend(ctx: Context, duration: int | None) -> None:
    """Workers stop taking new jobs (running ones finish)."""
    from ..control import suspend as do_suspend

    do_suspend(ctx.connection, ctx.keys, duration)
    click.echo("workers suspended" + (f" for {duration} s" if duration else ""))


@command("resume")
def resume(ctx: Context) -> None:
    """Suspended workers take jobs again."""
    from ..control import resume as do_resume

    do_resume(ctx.connection, ctx.keys)
    click.echo("workers resumed")


@click.argument("queues", nargs=-1, required=True)
@command("pause")
def pause(ctx: Context, queues: tuple[str, ...]) -> None:
    """Workers start no job from QUEUES until unpaused (running ones finish)."""
    from ..queue import Queue

    targets = [Queue(name, connection=ctx.connection, keys=ctx.keys) for name in queues]
    for queue in targets:  # every name checked before the first is paused
        queue.pause()
        click.echo(f"queue {queue.name} paused")


@click.argument("queues", nargs=-1, required=True)
@command("unpause")
def unpause(ctx: Context, queues: tuple[str, ...]) -> None:
    """Workers take jobs from QUEUES again."""
    from ..queue import Queue

    targets = [Queue(name, connection=ctx.connection, keys=ctx.keys) for name in queues]
    for queue in targets:
        queue.unpause()
        click.echo(f"queue {queue.name} unpaused")


@click.argument("job_ids", nargs=-1, required=True)
@command("stop")
def stop(ctx: Context, job_ids: tuple[str, ...]) -> None:
    """Stop running jobs wherever they run (status: stopped)."""
    from ..control import send_stop_job_command

    for job_id in job_ids:
        send_stop_job_command(ctx.connection, job_id, ctx.keys)
        click.echo(f"stop sent to job {job_id}")


@click.option("--worker", "worker_names", multiple=True,
              help="A worker known to be dead (the launcher names the ones it killed).")
@command("recover")
def recover(ctx: Context, worker_names: tuple[str, ...]) -> None:
    """Put the jobs of dead workers back on their queues (default: every lapsed worker)."""
    from .. import lifecycle
    from ..defaults import DEFAULT_MAX_ABANDONED_REQUEUES

    max_requeues = int(ctx.settings.get("MAX_ABANDONED_REQUEUES", DEFAULT_MAX_ABANDONED_REQUEUES))
    outcomes: dict[str, str] = {}
    if worker_names:
        for name in worker_names:
            outcomes.update(lifecycle.recover_worker(ctx.connection, ctx.keys, name, max_requeues))
    else:
        outcomes = lifecycle.recover_dead_workers(ctx.connection, ctx.keys, max_requeues)
    for job_id, outcome in sorted(outcomes.items()):
        click.echo(f"{job_id}: {outcome}")
    click.echo(f"{len(outcomes)} job(s) recovered")
