"""The inside of a fork child, and the frames it exchanges with its worker.

A child is forked from the running worker (:class:`geventq.worker.forkpool.ForkPool`)
and serves job after job until the worker closes its pipe. It first resets what
it inherited that belongs to the worker: a worker that runs a gevent hub (a
``GeventWorker`` with fork queues) passes ``in_child``, which leaves that hub
behind (:func:`geventq.green.forkchild.leave_parent_hub`); a hub-free worker
(``ForkWorker``) passes nothing, and the child only resets the worker's signal
handlers. Either way the child always leaves through ``os._exit``: returning
would run the worker's code (and, under gevent, switch to the parent's hub).

Protocol (pipes, raw file descriptors, blocking on this side). Both ways it
is frames of ``kind (1 byte) + length (4 bytes, big-endian) + body``, so no
byte of a body (a job id holding a newline, say, written into Redis by
someone else) can shift the frames that follow:
- parent -> child: ``J`` + a job id (UTF-8; undecodable bytes kept as
  surrogate escapes); end of file means "exit".
- child -> parent: ``C`` + timeout: the job has returned and a callback with
  that timeout runs now (the parent gives it that much time); ``R`` + a pickled
  ``(outcome, payload, extra, default_result_ttl)``: how the job ended.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from ..connection import clone_connection
from ..endings import ascii_text
from ..execution import execute
from ..recording import RETRY_CAP
from ..redis_errors import describe, is_transient
from ..utils import backoff_delay
from .heartbeat import native

logger = logging.getLogger("geventq.worker")

FRAME_HEADER = struct.Struct("!cI")
JOB = b"J"
CALLBACK = b"C"
REPLY = b"R"


def child_main(worker: Any, requests_fd: int, replies_fd: int, close_fds: list[int],
               in_child: Callable[[], object] | None = None) -> NoReturn:
    """Run in a freshly forked child: serve jobs from ``requests_fd`` until EOF, then exit.

    ``in_child`` runs first (a gevent worker's: leave its hub)."""
    code = 0
    try:
        if in_child is not None:
            in_child()
        # the worker's handlers would act on the worker's copy here: SIGTERM ends the
        # child, and a terminal's Ctrl-C is the worker's business
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _detach()
        for fd in close_fds:  # the parent's ends of our pipes and of the other children's
            close_fd(fd)
        _forget_parent_pool(worker.connection.connection_pool)
        connection = clone_connection(worker.connection)
        _serve(worker, connection, requests_fd, replies_fd)
    except BaseException:  # nothing may escape: unwinding would run the worker's code
        code = 1
        with contextlib.suppress(BaseException):
            logger.error("fork child %d failed:\n%s", os.getpid(), traceback.format_exc())
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)


def _forget_parent_pool(pool: Any) -> None:
    """Sockets of the worker's pool stay untouched: reset() only forgets them (redis-py
    never shuts down a socket created by another pid); jobs get a pool of their own.

    A thread of the worker (a ForkWorker's stop listener, scheduler...) may have held the
    pool's lock at the fork: that thread is not in the child, so its lock would stay
    taken for ever. A fresh one replaces it then."""
    lock = getattr(pool, "_lock", None)
    if lock is not None:
        if lock.acquire(False):
            lock.release()
        else:
            pool._lock = threading.Lock()
    pool.reset()


def _detach() -> None:
    """Own process group (signals to the worker's group are the worker's), die with the worker."""
    parent = os.getppid()
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: Linux only
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(1)


def _serve(worker: Any, connection: Any, requests_fd: int, replies_fd: int) -> None:
    while True:
        frame = read_frame(requests_fd)
        if frame is None:
            return  # the worker closed our pipe: exit
        kind, body = frame
        if kind != JOB:
            raise ValueError(f"unexpected frame {kind!r} from the worker")
        job_id = body.decode("utf-8", "surrogateescape")
        reply = _run(worker, connection, job_id, replies_fd)
        send_frame(replies_fd, REPLY, pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))


def _run(worker: Any, connection: Any, job_id: str, replies_fd: int) -> tuple:
    attempt = 0
    while True:
        try:
            job = worker.job_class.fetch(job_id, connection=connection,
                                         serializer=worker.serializer, keys=worker.keys)
            break
        except Exception as exc:
            if not is_transient(exc):
                return ("failed", f"job {job_id} could not be loaded in its fork child:\n"
                                  f"{traceback.format_exc()}", {}, None)
            # Redis away (a restart, a killed connection): the job is this worker's and
            # keeps its place; the worker's job timeout still bounds the wait
            attempt += 1
            delay = backoff_delay(attempt, cap=RETRY_CAP)
            logger.warning("fork child: could not load job %s (%s); retrying in %.1f s",
                           ascii_text(job_id), describe(exc), delay)
            time.sleep(delay)  # (under gevent: on the child's own fresh hub)
    ending = execute(job, _ParentEnforces(job, replies_fd), worker.exception_handlers,
                     worker.default_result_ttl, job_modules=worker.job_modules)
    return (ending.outcome, ending.payload, ending.extra, ending.default_result_ttl)


class _ParentEnforces:
    """The child's death penalty: none for the job (the worker kills the child when its
    time is up), and for a callback a notice, so the worker gives it its own timeout."""

    def __init__(self, job: Any, replies_fd: int):
        self.job = job
        self.replies_fd = replies_fd

    def __call__(self, target: Any) -> contextlib.AbstractContextManager:
        if target is not self.job:
            send_frame(self.replies_fd, CALLBACK, str(target.timeout or 0).encode())
        return contextlib.nullcontext()


def close_fd(fd: int) -> None:
    """Close ``fd`` now (errors ignored). Not gevent's ``os.close``: it defers closing a
    pipe to the next loop turn, and a fork in between would hand the descriptor to the
    new child, which then never sees end-of-file."""
    with contextlib.suppress(OSError):
        native("os", "close")(fd)


def encode_frame(kind: bytes, body: bytes) -> bytes:
    """One frame: its kind, the body's length, the body."""
    return FRAME_HEADER.pack(kind, len(body)) + body


def send_frame(fd: int, kind: bytes, body: bytes) -> None:
    """Write one whole frame to a blocking descriptor."""
    data = memoryview(encode_frame(kind, body))
    while data:
        data = data[os.write(fd, data):]


def read_frame(fd: int) -> tuple[bytes, bytes] | None:
    """Read one whole frame (kind, body) from a blocking descriptor; None at end of file."""
    header = _read_exactly(fd, FRAME_HEADER.size)
    if header is None:
        return None
    kind, size = FRAME_HEADER.unpack(header)
    body = _read_exactly(fd, size)
    if body is None:
        raise EOFError(f"the pipe closed inside a {kind!r} frame of {size} bytes")
    return kind, body


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes, or None at end of file before the first of them."""
    chunks: list[bytes] = []
    missing = size
    while missing:
        chunk = os.read(fd, min(missing, 1 << 16))
        if not chunk:
            if missing == size:
                return None
            raise EOFError(f"the pipe closed after {size - missing} of {size} bytes")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)
