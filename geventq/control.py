"""Commands to running workers: suspend, resume, stop a job."""

from __future__ import annotations

import redis

from .connection import resolve_connection_and_keys
from .exceptions import InvalidJobOperation, NoSuchJobError
from .keys import Keys
from .utils import as_str


def suspend(connection: redis.Redis, keys: Keys | None = None, duration: int | None = None) -> None:
    """Make every worker stop taking new jobs (running ones go on)."""
    connection, keys = resolve_connection_and_keys(connection, keys)
    connection.set(keys.suspended, 1, ex=duration)


def resume(connection: redis.Redis, keys: Keys | None = None) -> None:
    """Let suspended workers take jobs again."""
    connection, keys = resolve_connection_and_keys(connection, keys)
    connection.delete(keys.suspended)


def is_suspended(connection: redis.Redis, keys: Keys | None = None) -> bool:
    connection, keys = resolve_connection_and_keys(connection, keys)
    return bool(connection.exists(keys.suspended))


def send_stop_job_command(connection: redis.Redis, job_id: str, keys: Keys | None = None) -> None:
    """Stop a running job wherever it runs; it ends with status ``stopped``.

    Raises NoSuchJobError or InvalidJobOperation when the job is not running.
    """
    connection, keys = resolve_connection_and_keys(connection, keys)
    status = connection.hget(keys.job(job_id), "status")
    if status is None:
        raise NoSuchJobError(f"no job with id {job_id!r}")
    if as_str(status) != "started":
        raise InvalidJobOperation(f"job {job_id} is not running (status {as_str(status)})")
    connection.publish(keys.stop_channel(), job_id)
