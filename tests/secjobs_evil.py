"""A sibling whose name merely starts like the allowed package: never allowed, never imported.

Importing it creates the file ``$SECJOBS_EVIL_MARK`` (when set): a worker that
refuses its functions must not even import it.
"""

import os

from geventq import get_current_job

if os.environ.get("SECJOBS_EVIL_MARK"):
    with open(os.environ["SECJOBS_EVIL_MARK"], "a") as mark:
        mark.write("imported\n")

RAN = "test:secjobs:ran"


def run(*args, **kwargs):
    get_current_job().connection.hincrby(RAN, "evil", 1)
    return "evil ran"


def callback(job, connection, *args):
    connection.hincrby(RAN, "evil_callback", 1)
