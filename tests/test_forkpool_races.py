"""ForkPool / ForkExecutor / BatchFinisher races, forced deterministically (real forked children).

Each test forces one interleaving with a hook (a lock that runs code as it is released,
a patched method), never with a sleep that hopes for it.
"""

from __future__ import annotations

import os
import select
import threading
import time

import pytest

from geventq import Queue
from geventq.endings import Ending
from geventq.exceptions import ShutdownRequested
from geventq.worker import childproc
from geventq.worker.childproc import ChildProcess
from geventq.worker.executors import PlainRuntime
from geventq.worker.finisher import BatchFinisher
from geventq.worker.forkchild import REPLY, encode_frame
from geventq.worker.forkexecutor import ForkExecutor
from geventq.worker.forkpool import SHUTDOWN, STOPPED, ForkPool
from geventq.worker.forkworker import ForkWorker
from tests import jobs_cpu
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def cpu(connection):
    return Queue("cpu", connection=connection)


@pytest.fixture
def make_pool(connection):
    pools: list[ForkPool] = []

    def make(size: int = 1, **kwargs) -> ForkPool:
        worker = ForkWorker(["cpu"], connection=connection, fork_concurrency=size)
        pool = ForkPool(worker, ["cpu"], size, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.kill_all()
        pool.close(timeout=2.0)


def _reply_waiting(child: ChildProcess, seconds: float = 10.0) -> None:
    """Until the child's reply is in its pipe (nobody has read it yet)."""
    poller = select.poll()
    poller.register(child.replies_fd, select.POLLIN)
    assert poller.poll(seconds * 1000), "the child never replied"


class _HookedLock:
    """The pool's lock, running ``hook`` once, right after the thread that armed it releases it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hook = None
        self.owner: int | None = None

    def acquire(self, *args) -> bool:
        return self._lock.acquire(*args)

    def release(self) -> None:
        self._lock.release()
        hook = self.hook
        if hook is not None and threading.get_ident() == self.owner:
            self.hook = None
            hook()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def test_cancel_never_kills_a_child_gone_back_to_idle(cpu, make_pool):
    """Defect 1: a cancel that read the child, then let the waiter take the REPLY and put the
    child back on _idle before it signalled, killed the child of the *next* job."""
    pool = make_pool()
    a = cpu.enqueue(jobs_cpu.noop)
    pool.start(a)
    child = pool._jobs[a.id].child
    assert child is not None
    _reply_waiting(child)  # the job ended; its waiter has not looked yet
    lock = pool._lock = _HookedLock()
    endings: list[Ending] = []
    lock.hook = lambda: endings.append(pool.run(a))  # the waiter, between cancel's steps
    lock.owner = threading.get_ident()
    assert pool.cancel(a.id, STOPPED)
    assert endings and endings[0].outcome == "finished"  # the REPLY came first: it stands
    assert all(not c.doomed for c in pool._idle), "a doomed (killed) child was left idle"
    b = cpu.enqueue(jobs_cpu.job_details, "b")
    pool.start(b)
    ending = pool.run(b)
    assert ending.outcome == "finished", ending.payload


def test_retire_never_lets_a_fork_close_the_new_childs_pipe(cpu, make_pool, monkeypatch):
    """Defect 2: _retire closed fd N outside the lock before setting it to -1; a fork in
    between got N back from os.pipe() and told the new child to close it."""
    pool = make_pool(size=2)
    old = pool._fork()
    seen: list[tuple[set, set]] = []
    real_fork_child = pool._fork_child

    def fork_child(requests_r, replies_w, close_fds):
        seen.append(({requests_r, replies_w, *close_fds[-2:]}, set(close_fds[:-2])))
        return real_fork_child(requests_r, replies_w, close_fds)

    monkeypatch.setattr(pool, "_fork_child", fork_child)
    real_close_fd = childproc.close_fd
    stale = old.requests_fd
    forked: list[ChildProcess] = []

    def close_fd(fd):  # a fork in another task, right after the old child's fd is closed
        real_close_fd(fd)
        if fd == stale and not forked and not pool._lock.locked():
            forked.append(pool._fork())  # the fixed pool holds the lock: the fork waits

    monkeypatch.setattr(childproc, "close_fd", close_fd)
    pool._retire(old)
    monkeypatch.setattr(childproc, "close_fd", real_close_fd)
    if not forked:
        forked.append(pool._fork())
    own, inherited = seen[-1]
    assert not own & inherited, "the new child was told to close its own pipe ends"
    job = cpu.enqueue(jobs_cpu.noop)
    pool._idle.append(forked[0])
    pool.start(job)
    assert pool.run(job).outcome == "finished"


def test_job_timeout_runs_from_when_the_child_got_the_job(cpu, make_pool, monkeypatch):
    """Defect 3: reaping a dead idle child on the retry path counted against the job."""
    pool = make_pool()
    dead = pool._fork()
    pool._idle.append(dead)

    def broken_send(job_id):
        raise BrokenPipeError("it died while idle")

    monkeypatch.setattr(dead, "send", broken_send)
    real_kill = pool._kill

    def slow_kill(child):  # as a reap that takes its time (up to 5 s)
        real_kill(child)
        if child is dead:
            time.sleep(1.2)  # the scenario: a reap that takes its time, past the job's 1 s

    monkeypatch.setattr(pool, "_kill", slow_kill)
    job = cpu.enqueue(jobs_cpu.noop, job_timeout=1)
    pool.start(job)
    ending = pool.run(job)
    assert ending.outcome == "finished", ending.payload


class _Sink:
    def __init__(self) -> None:
        self.ended: list[Ending] = []
        self.interrupted: list[str] = []

    def job_ended(self, ending: Ending) -> None:
        self.ended.append(ending)

    def job_interrupted(self, job) -> None:
        self.interrupted.append(job.id)

    def slot_freed(self) -> None:
        pass


def test_running_is_never_a_wrong_empty_answer(cpu, make_pool, monkeypatch):
    """Defect 4: running() gave {} after three RuntimeErrors (a dict resized under it)."""
    pool = make_pool()
    executor = ForkExecutor(pool, _Sink(), PlainRuntime())

    class Resizing(dict):  # every copy fails as a copy during a resize does
        def __iter__(self):
            raise RuntimeError("dictionary changed size during iteration")

        def keys(self):
            raise RuntimeError("dictionary changed size during iteration")

    job = cpu.enqueue(jobs_cpu.noop)
    executor._running = Resizing({job.id: job})
    try:
        held = executor.running()
    except RuntimeError:
        held = None  # the old code never raises: it answers {}
    # with the lock no resize can happen under the copy; the old code answers {}
    assert held != {}


def test_pending_never_misses_a_batch_being_moved(connection):
    """Defect 5: pending() read both lists lock-free while _write_all moved a batch from
    one to the other: a read in between saw the batch in neither."""
    seen: list[list] = []
    readers: list[threading.Thread] = []

    class Spied(BatchFinisher):
        armed = False

        def __setattr__(self, name, value):
            object.__setattr__(self, name, value)
            if self.armed and name in ("_endings", "_writing") and not readers:
                # another thread reads right after _write_all's first step of the move
                reader = threading.Thread(target=lambda: seen.append(self.pending()))
                readers.append(reader)
                reader.start()
                reader.join(0.5)  # returns at once unless pending() waits for the lock

    finisher = Spied(connection, None, "w", "k", busy_jobs=lambda: 0,
                     written=lambda: None, runtime=PlainRuntime())
    ending = object()
    finisher._endings = [ending]
    finisher.write = lambda batch: readers[0].join(5)  # the batch is in flight till it read
    finisher.armed = True
    finisher._write_all()
    readers[0].join(5)
    assert seen == [[ending]], "pending() saw the batch in neither list"


def test_close_leaves_a_busy_childs_pipes_to_its_waiter(cpu, make_pool):
    """Defect 6: close() under a late waiter closed its replies fd: the waiter read a
    closed descriptor and failed a job that a cold stop was putting back."""
    pool = make_pool()
    job = cpu.enqueue(jobs_cpu.spin, 30, job_timeout=3)
    pool.start(job)
    child = pool._jobs[job.id].child
    assert child is not None
    assert pool.cancel(job.id, SHUTDOWN)
    pool.close(timeout=1.0)  # the cold stop's wait is over; the waiter comes only now
    assert child.replies_fd >= 0, "close() closed a descriptor its waiter still reads"
    started = time.monotonic()
    with pytest.raises(ShutdownRequested):
        pool.run(job)
    assert time.monotonic() - started < 2  # it read the end of its pipe, not its timeout
    assert child.replies_fd == -1 and child.requests_fd == -1
    assert child.pid not in pool.pids


def test_a_retired_child_is_reaped_without_another_checkout(cpu, make_pool):
    """Defect 7: a child retired after max_jobs_per_child stayed a zombie while idle."""
    pool = make_pool(max_jobs_per_child=1)
    job = cpu.enqueue(jobs_cpu.noop)
    pool.start(job)
    pid = pool._jobs[job.id].child.pid
    assert pool.run(job).outcome == "finished"
    assert pid not in pool.pids, "the retired child was not reaped"
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_a_child_killed_but_not_reaped_stays_known_and_is_reaped_later(cpu, make_pool,
                                                                        monkeypatch):
    """Defect 7: _kill forgot a child it had not reaped within 5 s: a zombie kill_all
    did not know."""
    pool = make_pool()
    child = pool._fork()
    real_reap = child.reap
    calls: list[float | None] = []

    def slow_reap(timeout):
        calls.append(timeout)
        if len(calls) == 1:
            return None  # as if 5 s were not enough
        return real_reap(timeout)

    monkeypatch.setattr(child, "reap", slow_reap)
    pool._kill(child)
    assert child.pid in pool.pids, "a killed child left unreaped was forgotten"
    assert child.replies_fd == -1 and child.requests_fd == -1

    def reaped() -> bool:
        pool._reap_retired()  # what each job's end and each checkout do
        return child.pid not in pool.pids

    wait_for(reaped, timeout=10, interval=0.01, message="the killed child reaped later")


def test_receive_reassembles_big_and_many_frames():
    """Defect 8 (a bytearray buffer): frames of many chunks, and several in one read."""
    r, w = os.pipe()
    child = ChildProcess(os.getpid(), -1, r)
    assert isinstance(child._buffer, bytearray)
    big = os.urandom(3 << 20)
    data = encode_frame(REPLY, big) + encode_frame(REPLY, b"x") + encode_frame(REPLY, b"")

    def write():
        view = memoryview(data)
        while view:
            view = view[os.write(w, view):]
        os.close(w)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert child.receive(time.monotonic() + 10) == (REPLY, big)
        assert child.receive(time.monotonic() + 10) == (REPLY, b"x")
        assert child.receive(time.monotonic() + 10) == (REPLY, b"")
        assert child.receive(time.monotonic() + 10) is None
    finally:
        writer.join(10)
        os.close(r)
