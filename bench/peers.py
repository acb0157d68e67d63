"""geventq next to huey and python-rq: issue 18's three workloads, one method, one run.

Every system runs against the same private redis-server, each in its own database
(geventq 0, huey 1, rq 2), flushed before each measurement; the systems take turns
within every run, and medians of ``--runs`` are reported, each as a ratio to huey's.

1. **single enqueue**: ``N`` no-op jobs enqueued one at a time with a small argument
   (``noop(i, "payload")``; huey: calling the task), after a warm-up of 20: jobs/s,
   and Redis round trips and commands per job (``INFO stats`` deltas, bench/README.md).
2. **idle latency**: an idle worker process started as users start it, default logging:
   ``python -m geventq worker`` (default concurrency, 100); huey's consumer with greenlet
   workers (``-k greenlet -w 100``, monkey-patched in the entry point as huey's docs ask)
   and with one thread (``huey_consumer -k thread -w 1``); rq's SimpleWorker. Once it
   waits for work (blocked in Redis), one job at a time is enqueued and its end awaited
   by polling every 0.5 ms from the enqueuing process, the same way for every system.
   "Finished" is: geventq, the job hash's ``status`` is ``finished``; rq, the same in
   rq's job hash; huey, the task's entry in huey's result hash exists (huey stores
   results, None included: ``store_none=True``). 1 ms between jobs; the first 5 are
   not counted; p50 and p99. Worker CPU per job: user + system CPU of the worker process
   and its children (psutil) over the counted jobs, its idle work meanwhile included
   (heartbeats; huey's BRPOPs time out and repeat every second).
3. **RSS**: the worker started on an empty queue (concurrency 500; huey
   ``-k greenlet -w 500``), its idle RSS read once it waits for work; then 500 jobs
   that sleep 3 s (cooperatively) enqueued, and the RSS (psutil, plus forked children)
   read once all 500 have started (geventq and rq: their started registries; huey keeps
   none, so its task counts itself in a Redis key first). rq's SimpleWorker runs one
   job at a time: it gets 1 job, for scale.

    python bench/peers.py                          # 3 runs, medians
    python bench/peers.py --systems geventq,huey   # leave rq out
    python bench/peers.py --quick                  # a few jobs: only checks it works
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

import psutil
from _common import (  # first: it puts the repository on sys.path for bench.jobs
    ROOT,
    connect,
    median,
    percentile,
    print_table,
    private_redis,
    server_stats,
    worker_env,
)

from bench.jobs import io_wait, noop
from geventq import Queue
from geventq.defaults import DEFAULT_CONCURRENCY

SYSTEMS = ("geventq", "huey", "rq")
DBS = {"geventq": 0, "huey": 1, "rq": 2}
WORKERS = {"geventq": ("geventq",), "huey": ("huey-greenlet", "huey-thread"),
           "rq": ("rq-simple",)}
QUEUE = "bench"
POLL = 0.0005  # seconds between two looks at a job's status
WARMUP = 5  # latency samples not counted
HUEY_GEVENT_MAIN = ("from gevent import monkey; monkey.patch_all()\n"
                    "from huey.bin.huey_consumer import consumer_main\n"
                    "consumer_main()\n")


# -- each system as the bench drives it -------------------------------------------------
class GeventqSide:
    """geventq as the bench drives it; each side names its handle of a job as it likes."""

    name = "geventq"

    def __init__(self, conn):
        self.queue = Queue(QUEUE, connection=conn)
        self.conn = conn

    def enqueue_noop(self, i: int = 0) -> str:
        return self.queue.enqueue(noop, i, "payload").key

    def finished(self, job_key: str) -> bool:
        status = self.conn.hget(job_key, "status")
        if status in (b"failed", b"stopped", b"canceled"):
            raise RuntimeError(f"geventq job {job_key} ended {status.decode()}")
        return status == b"finished"

    def check(self, job_key: str) -> None:
        pass  # finished() already saw the status

    def enqueue_holders(self, n: int, seconds: float) -> None:
        for i in range(0, n, 5000):
            self.queue.enqueue_many([Queue.prepare_data(io_wait, (seconds,))
                                     for _ in range(min(5000, n - i))])

    def started(self) -> int:
        return self.queue.started_job_registry.count

    def worker_cmd(self, kind: str, url: str, concurrency: int) -> list[str]:
        return [sys.executable, "-m", "geventq", "worker", "--url", url,
                "-n", str(concurrency), QUEUE]


class RqSide(GeventqSide):
    """python-rq: its job hash has a ``status`` field too."""

    name = "rq"

    def __init__(self, conn):
        import rq

        self.queue = rq.Queue(QUEUE, connection=conn)
        self.conn = conn

    def enqueue_holders(self, n: int, seconds: float) -> None:
        for _ in range(n):
            self.queue.enqueue(io_wait, seconds)

    def worker_cmd(self, kind: str, url: str, concurrency: int) -> list[str]:
        return [_script("rq"), "worker", "-u", url, "-w", "rq.worker.SimpleWorker", QUEUE]


class HueySide:
    """huey, through bench/huey_app.py: a task has ended once its result is stored."""

    name = "huey"

    def __init__(self, conn):
        # bench.huey_app builds its Huey from REDIS_URL when first imported
        kw = conn.connection_pool.connection_kwargs
        os.environ["REDIS_URL"] = f"redis://{kw['host']}:{kw['port']}/{kw['db']}"
        from bench import huey_app

        self.app = huey_app
        self.conn = conn
        huey_app.huey.storage.conn.ping()  # connect before anything is counted

    def enqueue_noop(self, i: int = 0) -> str:
        return self.app.noop(i, "payload").id

    def finished(self, task_id: str) -> bool:
        return self.conn.hexists(self.app.huey.storage.result_key, task_id)

    def check(self, task_id: str) -> None:
        self.app.huey.result(task_id)  # raises TaskException if the task failed

    def enqueue_holders(self, n: int, seconds: float) -> None:
        for _ in range(n):
            self.app.counted_io_wait(seconds)

    def started(self) -> int:
        return int(self.conn.get(self.app.STARTED_KEY) or 0)

    def worker_cmd(self, kind: str, url: str, concurrency: int) -> list[str]:
        if kind == "huey-thread":
            return [_script("huey_consumer"), "bench.huey_app.huey", "-k", "thread", "-w", "1"]
        return [sys.executable, "-c", HUEY_GEVENT_MAIN, "bench.huey_app.huey",
                "-k", "greenlet", "-w", str(concurrency)]


SIDES = {"geventq": GeventqSide, "huey": HueySide, "rq": RqSide}


def _script(name: str) -> str:
    """A console script installed next to this interpreter (rq, huey_consumer)."""
    return shutil.which(name, path=os.path.dirname(sys.executable)) or name


# -- worker processes ------------------------------------------------------------------------
class WorkerProcess:
    """A worker started as users start it; its log goes to a file, shown if it fails."""

    def __init__(self, server, side, kind: str, concurrency: int):
        self.log = tempfile.TemporaryFile()
        db = DBS[side.name]
        url = f"redis://127.0.0.1:{server.port}/{db}"
        self.kind = kind
        self.proc = subprocess.Popen(side.worker_cmd(kind, url, concurrency),
                                     env=worker_env(server, db), cwd=ROOT,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.ps = psutil.Process(self.proc.pid)

    def log_text(self, start: int = 0) -> str:
        """The worker's output from byte ``start`` (pread: the worker's offset stays put)."""
        fd = self.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, start).decode(errors="replace")

    def failure(self, what: str) -> RuntimeError:
        tail = self.log_text(max(0, os.fstat(self.log.fileno()).st_size - 2000))
        return RuntimeError(f"{self.kind}: {what}; exit code {self.proc.poll()}; log: {tail}")

    def wait_idle(self, conn, timeout: float = 30.0) -> None:
        """Until the worker waits for work: clients blocked in its db, steady for 0.3 s."""
        deadline = time.monotonic() + timeout
        db, last, since = conn.connection_pool.connection_kwargs["db"], -1, time.monotonic()
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise self.failure("never waited for work")
            blocked = sum(1 for c in conn.client_list()
                          if int(c["db"]) == db and "b" in c["flags"])
            if blocked != last:
                last, since = blocked, time.monotonic()
            elif blocked and time.monotonic() - since >= 0.3:
                break
            time.sleep(0.02)
        if "monkey-patch has not been applied" in self.log_text():  # huey's own warning
            raise self.failure("runs greenlets on blocking sockets: not what users run")

    def cpu(self) -> float:
        """User + system CPU seconds of the worker and its live children."""
        procs = [self.ps, *self.ps.children(recursive=True)]
        return sum(sum(p.cpu_times()[:2]) for p in procs)

    def rss_mb(self) -> float:
        procs = [self.ps, *self.ps.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs) / 2**20

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


# -- the three workloads ---------------------------------------------------------------
def fresh(server, name: str):
    conn = connect(server, DBS[name])
    conn.flushdb()
    return conn, SIDES[name](conn)


def single_enqueue(server, name: str, n: int) -> dict:
    conn, side = fresh(server, name)
    for i in range(20):  # connections, loaded scripts, first-call imports
        side.enqueue_noop(i)
    conn.flushdb()
    before = server_stats(conn)
    start = time.perf_counter()
    for i in range(n):
        side.enqueue_noop(i)
    elapsed = time.perf_counter() - start
    after = server_stats(conn)
    return {"rate": n / elapsed, "rt": (after["reads"] - before["reads"] - 1) / n,
            "cmds": (after["commands"] - before["commands"] - 1) / n}


def idle_latency(server, name: str, kind: str, n: int) -> dict:
    conn, side = fresh(server, name)
    worker = WorkerProcess(server, side, kind, DEFAULT_CONCURRENCY)
    try:
        worker.wait_idle(conn)
        samples, cpu0 = [], 0.0
        for i in range(WARMUP + n):
            if i == WARMUP:
                cpu0 = worker.cpu()
            start = time.perf_counter()
            handle = side.enqueue_noop(i)
            deadline = start + (30 if i == 0 else 5)
            while not side.finished(handle):
                if time.perf_counter() > deadline or worker.proc.poll() is not None:
                    raise worker.failure(f"job {handle} not finished")
                time.sleep(POLL)
            elapsed = time.perf_counter() - start
            side.check(handle)
            if i >= WARMUP:
                samples.append(elapsed)
            time.sleep(0.001)
        cpu = worker.cpu() - cpu0
    finally:
        worker.stop()
    return {"p50": percentile(samples, 50) * 1000, "p99": percentile(samples, 99) * 1000,
            "cpu": cpu / n * 1000}


def rss(server, name: str, kind: str, in_flight: int, hold: float) -> dict:
    conn, side = fresh(server, name)
    if name == "rq":
        in_flight = 1  # SimpleWorker runs one job at a time
    worker = WorkerProcess(server, side, kind, in_flight)
    try:
        worker.wait_idle(conn)
        idle = worker.rss_mb()
        side.enqueue_holders(in_flight, hold)
        deadline = time.monotonic() + 30
        while side.started() < in_flight:
            if time.monotonic() > deadline or worker.proc.poll() is not None:
                raise worker.failure(f"{side.started()} of {in_flight} jobs started")
            time.sleep(0.01)
        busy = worker.rss_mb()
    finally:
        worker.stop()
    return {"idle": idle, "busy": busy, "n": in_flight}


# -- the run -----------------------------------------------------------------------------
def installed(name: str) -> bool:
    """geventq, or a peer that `make bench` installed (its package has the system's name)."""
    return name == "geventq" or importlib.util.find_spec(name) is not None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions; medians are reported")
    parser.add_argument("--quick", action="store_true",
                        help="a few jobs, one run, whatever is installed: checks that it works")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help="comma-separated, of " + ", ".join(SYSTEMS))
    parser.add_argument("--enqueue-jobs", type=int, default=3000)
    parser.add_argument("--latency-jobs", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=500)
    opts = parser.parse_args()
    names = [s.strip() for s in opts.systems.split(",") if s.strip()]
    unknown = [s for s in names if s not in SYSTEMS]
    if unknown or not names:
        parser.error(f"--systems: unknown {unknown or 'nothing'}; choose from {', '.join(SYSTEMS)}")
    missing = [s for s in names if not installed(s)]
    if missing and not opts.quick:
        parser.error(f"{', '.join(missing)} not installed: `make bench` installs them "
                     "(or leave them out with --systems)")
    if missing:
        print(f"not installed, left out: {', '.join(missing)}", flush=True)
    opts.systems = [s for s in SYSTEMS if s in names and s not in missing]
    opts.hold = 3.0
    if opts.quick:
        opts.runs, opts.enqueue_jobs, opts.latency_jobs = 1, 30, 10
        opts.in_flight, opts.hold = 20, 0.5
    return opts


def main() -> None:
    opts = parse_args()
    res: dict[tuple[str, str], list[dict]] = {}
    add = lambda case, who, row: res.setdefault((case, who), []).append(row)  # noqa: E731
    with private_redis() as server:
        for run in range(opts.runs):  # each workload in turn, every system within it
            for name in opts.systems:
                add("enqueue", name, single_enqueue(server, name, opts.enqueue_jobs))
            for name in opts.systems:
                for kind in WORKERS[name]:
                    add("latency", kind, idle_latency(server, name, kind, opts.latency_jobs))
            for name in opts.systems:
                kind = WORKERS[name][0]
                add("rss", kind, rss(server, name, kind, opts.in_flight, opts.hold))
            print(f"run {run + 1}/{opts.runs} done", file=sys.stderr)
    report(res, opts)


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs and theirs == theirs and ours == ours else "-"


def med(res, case: str, who: str, field: str) -> float:
    rows = res.get((case, who))
    return median([r[field] for r in rows]) if rows else float("nan")


def report(res, opts) -> None:
    names = opts.systems
    kinds = [k for n in names for k in WORKERS[n]]
    runs = f"median of {opts.runs} run(s)"
    huey_rate = med(res, "enqueue", "huey", "rate")
    print_table(f"single enqueue, {opts.enqueue_jobs} jobs one at a time ({runs})",
                ["system", "jobs/s", "vs huey", "round trips/job", "commands/job"],
                [[n, med(res, "enqueue", n, "rate"), ratio(med(res, "enqueue", n, "rate"),
                  huey_rate), med(res, "enqueue", n, "rt"), med(res, "enqueue", n, "cmds")]
                 for n in names])
    # latency: against the better of huey's two consumers
    best = {f: min(med(res, "latency", k, f) for k in WORKERS["huey"]) if "huey" in names
            else float("nan") for f in ("p50", "p99")}
    print_table(f"idle worker, enqueue-to-finish, {opts.latency_jobs} jobs one at a time, "
                f"polled every {POLL * 1000:g} ms ({runs}; 'vs huey': against huey's better "
                "consumer)",
                ["worker", "p50 ms", "p99 ms", "p50 vs huey", "p99 vs huey", "worker CPU ms/job"],
                [[k, med(res, "latency", k, "p50"), med(res, "latency", k, "p99"),
                  ratio(med(res, "latency", k, "p50"), best["p50"]),
                  ratio(med(res, "latency", k, "p99"), best["p99"]),
                  med(res, "latency", k, "cpu")] for k in kinds])
    rss_kinds = [WORKERS[n][0] for n in names]
    huey_rss = med(res, "rss", "huey-greenlet", "busy")
    print_table(f"worker RSS, MB ({runs})",
                ["worker", "jobs in flight", "idle", "in flight", "vs huey"],
                [[k, int(med(res, "rss", k, "n")), med(res, "rss", k, "idle"),
                  med(res, "rss", k, "busy"), ratio(med(res, "rss", k, "busy"), huey_rss)]
                 for k in rss_kinds])
    if "geventq" in names and "huey" in names:
        targets(res, best, huey_rate, opts.in_flight)


def targets(res, best: dict, huey_rate: float, in_flight: int) -> None:
    rate = med(res, "enqueue", "geventq", "rate")
    p50, p99 = med(res, "latency", "geventq", "p50"), med(res, "latency", "geventq", "p99")
    mb = med(res, "rss", "geventq", "busy")
    rows = [["single enqueue >= 1.3x huey", ratio(rate, huey_rate), rate >= 1.3 * huey_rate],
            ["idle latency p50 below huey's", ratio(p50, best["p50"]), p50 < best["p50"]],
            ["idle latency p99 below huey's", ratio(p99, best["p99"]), p99 < best["p99"]],
            [f"RSS <= 40 MB, {in_flight} jobs in flight", f"{mb:.1f} MB", mb <= 40]]
    print_table("issue 18's targets, this run", ["target", "geventq", "met"],
                [[t, v, "yes" if ok else "no"] for t, v, ok in rows])


if __name__ == "__main__":
    main()
