"""Each job-state rule is written once; each transition leaves Redis consistent."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from geventq import Queue
from geventq.exceptions import DuplicateJobError
from geventq.status import LIVE_STATUSES, TERMINAL_STATUSES, JobStatus
from tests import jobs

LUA = resources.files("geventq").joinpath("lua")


def lua_text(name: str) -> str:
    return LUA.joinpath(name).read_text()


def test_live_statuses_in_lua_equal_the_python_constant():
    match = re.search(r"local LIVE_STATUSES = \{([^}]*)\}", lua_text("_common.lua"))
    assert match, "_common.lua must define LIVE_STATUSES"
    names = set(re.findall(r"(\w+)\s*=\s*true", match.group(1)))
    assert names == LIVE_STATUSES
    assert LIVE_STATUSES | TERMINAL_STATUSES == {s.value for s in JobStatus}
    assert not LIVE_STATUSES & TERMINAL_STATUSES


@pytest.mark.parametrize("script", sorted(p.name for p in LUA.iterdir() if p.name.endswith(".lua")))
def test_no_script_spells_the_live_statuses_out(script):
    text = lua_text(script)
    # three or more status comparisons joined in one condition is the set written again
    for line in text.splitlines():
        assert len(re.findall(r"status [~=]= '(queued|started|deferred|scheduled)'", line)) < 3, line


@pytest.mark.timeout(10)
@pytest.mark.parametrize("how", ["single", "bulk"])
def test_a_live_id_cannot_be_reused_whatever_live_status(queue, connection, how):
    for status in sorted(LIVE_STATUSES):
        job = queue.enqueue(jobs.noop, job_id=f"taken-{status}-{how}")
        connection.hset(job.key, "status", status)
        with pytest.raises(DuplicateJobError):
            if how == "single":
                queue.enqueue(jobs.noop, job_id=job.id)
            else:
                queue.enqueue_many([Queue.prepare_data(jobs.noop, job_id=job.id)])
