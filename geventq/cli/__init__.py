"""The ``geventq`` command.

This package imports nothing heavy at module load (no gevent, no redis): the
``worker`` command must monkey-patch before those are imported, and the
``pool`` launcher never imports them at all.
"""

from __future__ import annotations

import click

from ..version import VERSION


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, prog_name="geventq")
def main() -> None:
    """geventq: a Redis-backed job queue with a gevent worker."""


def _register() -> None:
    from . import admin, dashboard, metrics, pool, worker  # noqa: F401  (each registers its commands)


_register()
