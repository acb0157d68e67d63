"""Stateful property test (hypothesis ``RuleBasedStateMachine``) of job life cycles.

Hypothesis interleaves, against the test's private redis-server: enqueue (with
``ttl`` / ``result_ttl=0``), enqueue with dependencies (``allow_failure`` or not,
parents of both queues), ``enqueue_in``, the scheduler queueing what is due,
cancel, requeue, delete, ``geventq stop``, ``ttl`` expiry (made to happen at once
through the server: the hash expires and the queue's ``expiring`` score is moved
to the past, as when the time has come), in-process burst worker runs
(SimpleWorker), and a stand-in worker ("holder") that claims jobs and holds them
started, ends them (finished, failed, stopped) or dies (its jobs recovered).

After every step :func:`tests.invariants.check_all` asserts the invariants (each
id in exactly one place with the matching status, or legitimately gone; no id
without a hash; every started job with a live owner; no dependent waiting on a
parent that ended unless it failed without ``allow_failure``).

Profiles: ``ci`` (default) runs few, short programs; ``make fuzz``
(GEVENTQ_HYPOTHESIS_PROFILE=fuzz) many, longer ones. Run with ``-s`` for the counts.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from geventq import Dependency, Queue, SimpleWorker
from geventq.control import send_stop_job_command
from geventq.endings import Ending
from geventq.exceptions import InvalidJobOperation, NoSuchJobError
from geventq.keys import Keys
from geventq.lifecycle import claim_and_start, recover_dead_workers
from geventq.recording import record_endings
from geventq.scheduler import Scheduler
from geventq.utils import as_str
from tests import invariants

KEYS = Keys()
QUEUES = ("sm", "sm2")
HOLDER = "holder"
FUZZ = os.environ.get("GEVENTQ_HYPOTHESIS_PROFILE") == "fuzz"
STATS = {"examples": 0, "steps": 0, "worker_runs": 0, "holder_claims": 0}
REFUSED = (InvalidJobOperation, NoSuchJobError)

# which job a rule acts on: mostly one of the last few made (so a rule meets the jobs the
# previous rules made), sometimes any
picks = st.integers(min_value=0, max_value=3) | st.integers(min_value=0, max_value=10**6)


class JobLives(RuleBasedStateMachine):
    """Jobs of two queues, acted on in any order; the invariants hold after every step."""

    connection = None  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.conn = type(self).connection
        self.queues = {name: Queue(name, connection=self.conn) for name in QUEUES}
        self.ids: list[str] = []
        self.may_be_gone: set[str] = set()
        self.held: list = []  # jobs the holder has started
        self.parents: list[str] = []  # ids some job was enqueued to depend on
        STATS["examples"] += 1

    @initialize()
    def clean(self) -> None:
        self.conn.flushdb()  # our private server: one clean database per program
        self.register_holder()

    def register_holder(self) -> None:
        """A stand-in worker: its key is alive until it 'dies'."""
        self.conn.hset(KEYS.worker(HOLDER), mapping={"name": HOLDER, "birth": time.time()})
        self.conn.expire(KEYS.worker(HOLDER), 3600)
        self.conn.sadd(KEYS.workers, HOLDER)

    def pick(self, index: int) -> str:
        return self.ids[-1 - index % len(self.ids)]

    def status(self, job_id: str) -> str | None:
        value = self.conn.hget(KEYS.job(job_id), "status")
        return as_str(value) if value is not None else None

    # -- making jobs ----------------------------------------------------------------------
    @rule(queue=st.sampled_from(QUEUES), fails=st.booleans(),
          ttl=st.sampled_from([None, None, 600]), result_ttl=st.sampled_from([None, None, 0]))
    def enqueue(self, queue, fails, ttl, result_ttl) -> None:
        func = "tests.jobs.fail" if fails else "tests.jobs.echo"
        job = self.queues[queue].enqueue(func, "sm", ttl=ttl, result_ttl=result_ttl)
        self.ids.append(job.id)
        if result_ttl == 0:
            self.may_be_gone.add(job.id)

    @precondition(lambda self: self.ids)
    @rule(queue=st.sampled_from(QUEUES), parents=st.lists(picks, min_size=1, max_size=3),
          allow_failure=st.booleans(), fails=st.booleans())
    def enqueue_dependent(self, queue, parents, allow_failure, fails) -> None:
        parent_ids = sorted({self.pick(p) for p in parents})
        func = "tests.jobs.fail" if fails else "tests.jobs.echo"
        try:
            job = self.queues[queue].enqueue(func, "child",
                                             depends_on=Dependency(parent_ids, allow_failure))
        except REFUSED:  # a parent deleted or expired
            return
        self.ids.append(job.id)
        self.parents += [p for p in parent_ids if p not in self.parents]

    @rule(queue=st.sampled_from(QUEUES), fails=st.booleans(), allow_failure=st.booleans(),
          children=st.integers(1, 3))
    def enqueue_family(self, queue, fails, allow_failure, children) -> None:
        """A parent and its children at once (a family is rare by chance alone)."""
        parent = self.queues[queue].enqueue("tests.jobs.fail" if fails else "tests.jobs.echo", "p")
        self.ids.append(parent.id)
        self.parents.append(parent.id)
        for i in range(children):
            child = self.queues[QUEUES[i % 2]].enqueue(
                "tests.jobs.echo", "c", depends_on=Dependency([parent.id], allow_failure))
            self.ids.append(child.id)

    @precondition(lambda self: self.parents)
    @rule(index=picks, action=st.sampled_from(["cancel", "delete", "requeue"]))
    def act_on_a_parent(self, index, action) -> None:
        """Cancel, delete or requeue a job others depend on (rarer by chance alone)."""
        job_id = self.parents[-1 - index % len(self.parents)]
        if action == "delete":
            self.may_be_gone.add(job_id)
        job = self.queues[QUEUES[0]].fetch_job(job_id)
        if job is None:
            return
        try:
            getattr(job, action)()
        except REFUSED:  # ended (cancel), not ended (requeue)
            pass

    @rule(queue=st.sampled_from(QUEUES), seconds=st.integers(1, 3600))
    def enqueue_in(self, queue, seconds) -> None:
        job = self.queues[queue].enqueue_in(timedelta(seconds=seconds), "tests.jobs.echo", "later")
        self.ids.append(job.id)

    @rule()
    def scheduler_queues_what_is_due(self) -> None:
        Scheduler(self.conn, KEYS, "sm-scheduler").enqueue_due(moment=time.time() + 7200)

    # -- acting on jobs -------------------------------------------------------------------
    @precondition(lambda self: self.ids)
    @rule(index=picks)
    def cancel(self, index) -> None:
        self.cancel_id(self.pick(index))

    def cancel_id(self, job_id: str) -> None:
        try:
            self.queues[QUEUES[0]].fetch_job(job_id).cancel()
        except (AttributeError, *REFUSED):  # gone, or ended
            pass

    @precondition(lambda self: self.ids)
    @rule(index=picks, at_front=st.booleans())
    def requeue(self, index, at_front) -> None:
        job = self.queues[QUEUES[0]].fetch_job(self.pick(index))
        if job is None:
            return
        try:
            job.requeue(at_front=at_front)
        except REFUSED:  # not failed, stopped or canceled
            pass

    @precondition(lambda self: self.ids)
    @rule(index=picks)
    def delete(self, index) -> None:
        job_id = self.pick(index)
        job = self.queues[QUEUES[0]].fetch_job(job_id)
        self.may_be_gone.add(job_id)
        if job is not None:
            job.delete()

    @precondition(lambda self: self.ids)
    @rule(index=picks)
    def stop(self, index) -> None:
        self.stop_id(self.pick(index))

    def stop_id(self, job_id: str) -> None:
        try:
            send_stop_job_command(self.conn, job_id)
        except REFUSED:  # not running
            return
        # the holder is the only worker a job can be started on: it stops the job
        for job in list(self.held):
            if job.id == job_id:
                self.end_one(job, "stopped")

    @precondition(lambda self: self.ids)
    @rule(index=picks)
    def ttl_runs_out(self, index) -> None:
        """A queued job's ttl runs out now (as Redis and the clock would make it)."""
        job_id = self.pick(index)
        for name in QUEUES:
            if self.conn.zscore(KEYS.expiring(name), job_id) is not None:
                pipe = self.conn.pipeline(transaction=True)
                pipe.zadd(KEYS.expiring(name), {job_id: time.time() - 5})
                pipe.delete(KEYS.job(job_id))  # what the hash's EXPIRE does when it fires
                pipe.execute()
                self.may_be_gone.add(job_id)

    # -- workers --------------------------------------------------------------------------
    @rule(queues=st.sampled_from([QUEUES, QUEUES[:1], QUEUES[1:]]))
    def worker_runs(self, queues) -> None:
        STATS["worker_runs"] += 1
        SimpleWorker([self.queues[q] for q in queues], connection=self.conn).work(burst=True)

    @rule(count=st.integers(1, 3))
    def holder_claims(self, count) -> None:
        claim = claim_and_start(self.conn, KEYS, list(QUEUES), HOLDER, count)
        if not claim.jobs:  # queues empty: a job of its own, so that jobs get held often
            self.enqueue(QUEUES[0], False, None, None)
            claim = claim_and_start(self.conn, KEYS, list(QUEUES), HOLDER, count)
        STATS["holder_claims"] += len(claim.jobs)
        self.held += claim.jobs

    def end_one(self, job, outcome: str) -> None:
        payload = b"\x80\x04N." if outcome == "finished" else f"{outcome} by the holder"
        record_endings(self.conn, KEYS, HOLDER, [Ending(job, outcome, payload)])
        self.held = [j for j in self.held if j.id != job.id]
        if outcome == "finished" and job.result_ttl == 0:
            self.may_be_gone.add(job.id)

    @precondition(lambda self: self.held)
    @rule(index=picks, outcome=st.sampled_from(["finished", "failed", "stopped"]))
    def holder_ends(self, index, outcome) -> None:
        self.end_one(self.held[index % len(self.held)], outcome)

    @precondition(lambda self: self.held)
    @rule(index=picks, action=st.sampled_from(["cancel", "stop"]))
    def act_on_a_held_job(self, index, action) -> None:
        """Cancel or stop a job the holder has started (rarer by chance alone)."""
        job_id = self.held[index % len(self.held)].id
        if action == "cancel":
            self.cancel_id(job_id)
        else:
            self.stop_id(job_id)

    @precondition(lambda self: self.held)
    @rule()
    def holder_dies(self) -> None:
        self.conn.delete(KEYS.worker(HOLDER))
        recover_dead_workers(self.conn, KEYS)
        self.held = []
        self.register_holder()

    # -- after every step -----------------------------------------------------------------
    @invariant()
    def invariants_hold(self) -> None:
        STATS["steps"] += 1
        invariants.check_all(self.conn, KEYS, QUEUES, self.ids, self.may_be_gone)


@pytest.mark.hypothesis
@pytest.mark.timeout(1800 if FUZZ else 120, method="thread")  # SimpleWorker uses SIGALRM
def test_job_lives_keep_the_invariants(connection):
    JobLives.connection = connection
    STATS.update(examples=0, steps=0, worker_runs=0, holder_claims=0)
    checks = invariants.CHECKS["count"]
    began = time.monotonic()
    run = JobLives.TestCase
    # ci: 12 programs (each in-process worker run costs ~0.2 s, the stopping of its threads,
    # and programs differ in how many they make: 20 programs took 7 to 21 s); fuzz: 300
    run.settings = settings(
        max_examples=300 if FUZZ else 12, stateful_step_count=50 if FUZZ else 25,
        deadline=None, database=None, print_blob=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.filter_too_much])
    run().runTest()
    print(f"\nstate machine: {STATS['examples']} programs, {STATS['steps']} steps, "
          f"{invariants.CHECKS['count'] - checks} invariant checks, {STATS['worker_runs']} "
          f"worker runs, {STATS['holder_claims']} jobs held by the stand-in worker, "
          f"{time.monotonic() - began:.1f} s")
    assert STATS["steps"] > 0
