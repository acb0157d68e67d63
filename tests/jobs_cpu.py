"""Job functions of the fork-queue and hub-guard tests (importable as tests.jobs_cpu)."""

from __future__ import annotations

import os
import signal
import time

from geventq import get_current_job


def spin(seconds: float) -> float:
    """Pure-Python CPU work that never yields, for ``seconds``; returns when it started."""
    started = time.time()
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        count += 1
    return started


def spin_ignoring_sigterm(seconds: float) -> None:
    """CPU work that ignores SIGTERM (only SIGKILL stops it)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    spin(seconds)


def segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(5)


def exit_abruptly(code: int) -> None:
    os._exit(code)


def window(seconds: float) -> list[float]:
    """[start, end] wall-clock times of a cooperative sleep (an I/O-bound job)."""
    started = time.time()
    time.sleep(seconds)
    return [started, time.time()]


def cpu_window(seconds: float) -> list[float]:
    """[start, end] wall-clock times of ``seconds`` of CPU work."""
    started = spin(seconds)
    return [started, time.time()]


def job_details(progress: str) -> dict:
    """What a fork job sees of itself; saves meta through its own connection."""
    job = get_current_job()
    job.meta["progress"] = progress
    job.save_meta()
    return {"id": job.id, "pid": os.getpid(), "origin": job.origin}


def fail_here(message: str) -> None:
    raise ValueError(message)


def noop() -> None:
    return None


def process_report() -> dict:
    """What a job sees of its process. A fork child inherits its worker's modules and
    patches, so this tells whether the worker had loaded gevent (or greenlet) or patched."""
    import sys

    monkey = sys.modules.get("gevent.monkey")
    return {"pid": os.getpid(), "ppid": os.getppid(), "gevent": "gevent" in sys.modules,
            "greenlet": "greenlet" in sys.modules,
            "patched": bool(monkey is not None and monkey.is_module_patched("socket"))}


def die_by_sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(5)


# Worker classes of a user's own, for the choice `geventq worker` makes from --mode and -w.
# GeventWorker is named by its module, not imported: importing it would load gevent here.
from geventq import ForkWorker  # noqa: E402


class MyForkWorker(ForkWorker):
    """A user's ForkWorker subclass: runs without gevent under --mode fork."""


def _my_gevent_worker() -> type:
    from geventq.green.worker import GeventWorker

    return type("MyGeventWorker", (GeventWorker,), {"__module__": __name__})


def __getattr__(name: str):  # tests.jobs_cpu.MyGeventWorker, made only when asked for
    if name == "MyGeventWorker":
        return _my_gevent_worker()
    raise AttributeError(name)
