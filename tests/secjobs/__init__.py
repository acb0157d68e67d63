"""The job module of the security tests: ``--job-module tests.secjobs`` allows this package.

It imports what a hostile writer would like to reach through it (``os``, a
function of ``os``, a job function of another module, a class whose code lives
elsewhere) next to the functions a worker may run. Every function records its
runs in the hash ``RAN`` through the job's own connection.
"""

from __future__ import annotations

import os  # noqa: F401  (reachable as tests.secjobs.os.system: must be refused)
import subprocess
from os import getpid as imported_function  # noqa: F401  (defined in posix: refused)

from geventq import get_current_job
from tests.jobs import add as foreign_job  # noqa: F401  (defined in tests.jobs: refused)

RAN = "test:secjobs:ran"  # hash: what ran -> how many times


def record(what: str) -> None:
    get_current_job().connection.hincrby(RAN, what, 1)


def allowed(x):
    record("allowed")
    return x * 2


def fails():
    record("fails")
    raise ValueError("this job fails")


class Greeter:
    def __init__(self, greeting: str = "hello"):
        self.greeting = greeting

    def greet(self, who):
        record("greet")
        return f"{self.greeting} {who}"

    @classmethod
    def make(cls, greeting):
        record("make")
        return greeting

    def __call__(self, who):
        record("call")
        return f"{self.greeting}, {who}"


class Spawner(subprocess.Popen):
    """Defined here, but calling it runs subprocess.Popen.__init__: refused."""


def on_success(job, connection, result):
    connection.hincrby(RAN, "on_success", 1)


def on_failure(job, connection, exc_type, exc_value, tb):
    connection.hincrby(RAN, "on_failure", 1)
