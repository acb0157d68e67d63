"""Worker speed: one GeventWorker process vs python-rq's SimpleWorker and forking Worker.

Every worker is a real process started the way users start it
(``python -m geventq worker``, ``rq worker``) against one private redis-server:

(a) no-op jobs drained (burst mode): jobs/s from the first job's start to the
    last job's end (timestamps stored in the jobs), CPU per job, Redis round
    trips and commands per job;
(b) jobs that each wait 100 ms on I/O, concurrency 500: jobs/s and the
    fraction of the ideal (concurrency / 0.1 s);
(c) enqueue-to-finish latency with an idle worker, one job at a time, and its floor
    on this machine: a bare process answering a BLPOP with an RPUSH through the same
    Redis (no queue logic at all), plain and under gevent;
(d) worker RSS with 500 jobs in flight.

Results are stored as normal (default result_ttl). rq workers run one job at
a time, so they get fewer jobs (the table says how many).

    python bench/throughput.py            # 3 runs, medians
    python bench/throughput.py --quick    # a few dozen jobs: only checks it works
    python bench/throughput.py --logging --baseline 1503032 --no-rq --cases ab
        # this tree and a git worktree of 1503032, each with quiet (WARNING) and
        # default (INFO) logging, interleaved in every run

Worker kinds: ``geventq`` (this tree, ``--logging-level WARNING``), ``geventq+log``
(this tree, the default INFO logging, stderr to a file), ``base`` and ``base+log``
(the same, from a git worktree of ``--baseline REV``), ``rq-simple``, ``rq-fork``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import psutil
from _common import (  # before bench.jobs: it puts the repository on sys.path
    ROOT,
    base_parser,
    connect,
    drain_span,
    have_rq,
    median,
    percentile,
    print_table,
    private_redis,
    ratio,
    rq_enqueue_many,
    server_stats,
    worker_env,
)

from bench.jobs import io_wait, noop
from geventq import Queue
from geventq.ids import new_job_id
from geventq.keys import Keys

KINDS = ("geventq", "rq-simple", "rq-fork")
BASE_ROOT: dict[str, str] = {}  # "root": the baseline's worktree, when --baseline is given


def family(kind: str) -> str:
    """'geventq' for every geventq worker (this tree or the baseline, any logging)."""
    return "geventq" if kind.startswith(("geventq", "base")) else kind


def baseline_tree(rev: str) -> str:
    """A git worktree of ``rev`` (made once, kept under the temp dir); its path."""
    sha = subprocess.run(["git", "rev-parse", "--short=12", rev], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    path = os.path.join(tempfile.gettempdir(), f"geventq-bench-{sha}")
    if not os.path.isdir(os.path.join(path, "geventq")):
        subprocess.run(["git", "worktree", "add", "--detach", "--force", path, sha], cwd=ROOT,
                       check=True, capture_output=True)
    return path
TERMINAL = {b"finished", b"failed", b"stopped", b"canceled"}


# -- starting workers --------------------------------------------------------------
def worker_cmd(kind: str, url: str, queue: str, concurrency: int, burst: bool = True,
               name: str | None = None) -> list[str]:
    if family(kind) == "geventq":
        level = "INFO" if kind.endswith("+log") else "WARNING"
        cmd = [sys.executable, "-m", "geventq", "worker", "--logging-level", level,
               "--url", url, "-n", str(concurrency)]
    else:
        rq_bin = shutil.which("rq", path=os.path.dirname(sys.executable)) or "rq"
        cmd = [rq_bin, "worker", "--logging_level", "WARNING", "-u", url]
        if kind == "rq-simple":
            cmd += ["-w", "rq.worker.SimpleWorker"]
    if burst:
        cmd.append("--burst")
    if name:
        cmd += ["--name", name]
    return cmd + [queue]


def start(server, cmd: list[str], kind: str = "geventq", stderr=subprocess.PIPE) -> subprocess.Popen:
    root = BASE_ROOT["root"] if kind.startswith("base") else ROOT
    env = worker_env(server)
    env["PYTHONPATH"] = root + os.pathsep + env["PYTHONPATH"]  # the baseline's geventq first
    return subprocess.Popen(cmd, env=env, cwd=root, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=stderr)


def run_burst(server, cmd: list[str], kind: str = "geventq") -> tuple[float, float]:
    """Run a burst worker to its end: (wall seconds, CPU seconds incl. its children).

    Its stderr goes to a file, as a worker's log does in production (a pipe nobody
    reads would fill up and stall a worker logging at INFO)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = start(server, cmd, kind, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        log.seek(0)
        err = log.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} exited {proc.returncode}: {err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


# -- enqueueing and reading back -----------------------------------------------------
def enqueue(kind: str, conn, queue: str, func, args: tuple, n: int) -> list[str]:
    if family(kind) == "geventq":
        q = Queue(queue, connection=conn)
        jobs = []
        for i in range(0, n, 5000):
            jobs += q.enqueue_many([Queue.prepare_data(func, args) for _ in range(min(5000, n - i))])
        return [j.id for j in jobs]
    return rq_enqueue_many(conn, queue, func, args, n)




# -- (a) and (b): draining ----------------------------------------------------------------
def drain(kind: str, server, n: int, func, args: tuple, concurrency: int,
          baseline: dict) -> dict:
    conn = connect(server)
    conn.flushdb()
    ids = enqueue(kind, conn, "bench", func, args, n)
    redis_proc = psutil.Process(server.process.pid)
    redis_cpu0 = sum(redis_proc.cpu_times()[:2])
    before = server_stats(conn)
    wall, cpu = run_burst(server, worker_cmd(kind, server.url, "bench", concurrency), kind)
    after = server_stats(conn)
    redis_cpu = sum(redis_proc.cpu_times()[:2]) - redis_cpu0
    span = drain_span(family(kind), conn, ids)
    base = baseline[kind]
    return {"rate": n / span, "wall": wall, "n": n,
            "cpu_ms": (cpu - base["cpu"]) / n * 1000,
            "cpu_us": (cpu - base["cpu"]) / n * 1e6,
            "redis_cpu_ms": redis_cpu / n * 1000,
            "rt": (after["reads"] - before["reads"] - base["reads"]) / n,
            "cmds": (after["commands"] - before["commands"] - base["commands"]) / n}


_NO_BASE = {"cpu": 0.0, "reads": 0, "commands": 0}


def empty_run(kind: str, server) -> dict:
    """Start-up and shutdown cost of a burst worker with nothing to do (subtracted)."""
    conn = connect(server)
    conn.flushdb()
    before = server_stats(conn)
    _, cpu = run_burst(server, worker_cmd(kind, server.url, "bench", 100), kind)
    after = server_stats(conn)
    return {"cpu": cpu, "reads": after["reads"] - before["reads"],
            "commands": after["commands"] - before["commands"]}


# -- (c) latency -------------------------------------------------------------------------------
def latency(kind: str, server, samples: int) -> list[float]:
    """Enqueue-to-finish seconds, one job at a time, with an idle worker."""
    conn = connect(server)
    conn.flushdb()
    proc = start(server, worker_cmd(kind, server.url, "lat", 100, burst=False), kind)
    try:
        if family(kind) == "geventq":
            wait = _geventq_waiter(conn)
        else:
            wait = _rq_waiter(conn)
        out = []
        for i in range(samples + 5):  # the first jobs also wait for the worker to start
            elapsed = wait(timeout=30 if i == 0 else 5)
            if i >= 5:
                out.append(elapsed)
            time.sleep(0.001)  # the worker is idle again (blocked on its wake tokens)
        return out
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()


def _geventq_waiter(conn):
    q = Queue("lat", connection=conn)
    keys = q.keys

    def wait(timeout: float) -> float:
        # Job.wait's protocol, with the waiter counted before the clock starts: the end of
        # the job pushes a token onto the job's done list, which one BLPOP takes
        job_id = new_job_id()
        conn.incr(keys.waiters(job_id))
        conn.expire(keys.waiters(job_id), 60)
        t0 = time.perf_counter()
        q.enqueue(noop, job_id=job_id)
        if conn.blpop([keys.done(job_id)], timeout=timeout) is None:
            raise RuntimeError(f"job {job_id} did not end within {timeout} s")
        return time.perf_counter() - t0
    return wait


def _rq_waiter(conn):
    import rq

    q = rq.Queue("lat", connection=conn)

    def wait(timeout: float) -> float:
        t0 = time.perf_counter()
        job = q.enqueue(noop)
        # blocks on the job's results stream (XREAD BLOCK), rq's own way to wait
        if job.latest_result(timeout=int(timeout)) is None:
            raise RuntimeError(f"rq job {job.id} did not end within {timeout} s")
        return time.perf_counter() - t0
    return wait


_FLOOR_ECHO = """
import sys, redis
conn = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
while True:
    _, value = conn.blpop(["floor:in"])
    conn.rpush("floor:out", value)
"""


FLOORS = ("floor-plain", "floor-gevent")


def floor_latency(kind: str, server, samples: int) -> list[float]:
    """The floor of (c) on this machine: no queue at all, a bare redis-py process that
    answers each RPUSH it BLPOPs with one RPUSH (``floor-gevent``: the same process
    monkey-patched by gevent, as a worker is); the bench times RPUSH then BLPOP."""
    conn = connect(server)
    conn.delete("floor:in", "floor:out")
    code = _FLOOR_ECHO
    if kind == "floor-gevent":
        code = "from gevent import monkey\nmonkey.patch_all()\n" + code
    proc = subprocess.Popen([sys.executable, "-c", code, str(server.port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        out = []
        for i in range(samples + 5):
            t0 = time.perf_counter()
            conn.rpush("floor:in", i)
            if conn.blpop(["floor:out"], timeout=30 if i == 0 else 5) is None:
                raise RuntimeError("the floor echo process did not answer")
            if i >= 5:
                out.append(time.perf_counter() - t0)
            time.sleep(0.001)
        return out
    finally:
        proc.kill()
        proc.wait()


# -- (d) memory ------------------------------------------------------------------------------------
def rss_in_flight(kind: str, server, in_flight: int, hold: float = 3.0) -> float:
    """RSS (MB) of the worker (and its forked child) while ``in_flight`` jobs run."""
    conn = connect(server)
    conn.flushdb()
    ids = enqueue(kind, conn, "rss", io_wait, (hold,), in_flight)
    proc = start(server, worker_cmd(kind, server.url, "rss", in_flight, name="bench-rss"), kind)
    started = Keys().registry("started", "rss") if family(kind) == "geventq" else "rq:wip:rss"
    deadline = time.monotonic() + 30
    try:
        while conn.zcard(started) < in_flight:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{kind}: {conn.zcard(started)} of {in_flight} jobs started")
            time.sleep(0.01)
        ps = psutil.Process(proc.pid)
        rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
    finally:
        proc.wait(hold * len(ids) + 30)
        proc.stderr.close()
    return rss / 2**20


# -- the run ---------------------------------------------------------------------------------------
def worker_kinds(opts) -> list[str]:
    """The kinds this run drains: this tree's, the baseline's, each with logging, rq's."""
    ours = ["geventq"]
    if opts.baseline:
        BASE_ROOT["root"] = baseline_tree(opts.baseline)
        ours.append("base")
    if opts.logging:
        ours += [f"{k}+log" for k in ours]
    return ours + (list(KINDS[1:]) if have_rq() and not opts.no_rq else [])


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--cases", default="abcd", help="which of (a)-(d) to run, e.g. 'ac'")
    parser.add_argument("--logging", action="store_true",
                        help="also run geventq with its default INFO logging (geventq+log)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also run the geventq of git revision REV (a worktree of it)")
    opts = parser.parse_args()
    kinds = worker_kinds(opts)
    # jobs per kind: rq runs one job at a time, so it gets fewer
    if opts.quick:
        opts.runs = 1
        noop_n = {"geventq": 40, "rq-simple": 20, "rq-fork": 5}
        io_n = {"geventq": 40, "rq-simple": 3, "rq-fork": 2}
        lat_n = {"geventq": 10, "rq-simple": 5, "rq-fork": 3}
        rss_n = 50
    else:
        noop_n = {"geventq": 10000, "rq-simple": 2000, "rq-fork": 300}
        io_n = {"geventq": 2000, "rq-simple": 30, "rq-fork": 20}
        lat_n = {"geventq": 500, "rq-simple": 300, "rq-fork": 50}
        rss_n = 500
    res: dict[str, list] = {}
    with private_redis() as server:
        for run in range(opts.runs):
            # interleaved, and each run in another order: drift on a shared machine
            # does not favour one kind
            for kind in kinds[run % len(kinds):] + kinds[:run % len(kinds)]:
                # quick mode only checks that everything runs: no start-up baseline
                needs_base = not opts.quick and ("a" in opts.cases or "b" in opts.cases)
                base = {kind: empty_run(kind, server) if needs_base else _NO_BASE}
                fam = family(kind)
                if "a" in opts.cases:
                    res.setdefault(("noop", kind), []).append(
                        drain(kind, server, noop_n[fam], noop, (), 100, base))
                if "b" in opts.cases:
                    res.setdefault(("io", kind), []).append(
                        drain(kind, server, io_n[fam], io_wait, (0.1,), 500, base))
                if "c" in opts.cases:
                    res.setdefault(("lat", kind), []).append(latency(kind, server, lat_n[fam]))
                if "d" in opts.cases and kind != "rq-fork":
                    res.setdefault(("rss", kind), []).append(rss_in_flight(
                        kind, server, rss_n if fam == "geventq" else 1, 0.5 if opts.quick else 3.0))
            for kind in FLOORS if "c" in opts.cases else ():
                res.setdefault(("lat", kind), []).append(
                    floor_latency(kind, server, lat_n["geventq"]))
            print(f"run {run + 1}/{opts.runs} done", file=sys.stderr)
    report(res, kinds, noop_n, io_n, lat_n, rss_n, opts.runs)


def _med(res, case, kind, field):
    return median([r[field] for r in res[(case, kind)]]) if (case, kind) in res else float("nan")


def report(res, kinds, noop_n, io_n, lat_n, rss_n, runs) -> None:
    done = {case for case, _ in res}
    if "noop" in done:
        simple = _med(res, "noop", "rq-simple", "rate")
        quiet = {k: _med(res, "noop", k.removesuffix("+log"), "rate") for k in kinds}
        rows = [[f"{k} ({noop_n[family(k)]} jobs)", _med(res, "noop", k, "rate"),
                 ratio(_med(res, "noop", k, "rate"), simple),
                 ratio(_med(res, "noop", k, "rate"), quiet[k]), _med(res, "noop", k, "cpu_us"),
                 _med(res, "noop", k, "redis_cpu_ms"), _med(res, "noop", k, "rt"),
                 _med(res, "noop", k, "cmds")] for k in kinds]
        print_table(f"(a) no-op jobs drained by one worker process (median of {runs})",
                    ["worker", "jobs/s", "vs rq-simple", "vs quiet", "worker CPU µs/job",
                     "redis CPU ms/job",
                     "round trips/job", "commands/job"], rows)
    if "io" in done:
        rows = []
        for k in kinds:
            ideal = 500 / 0.1 if family(k) == "geventq" else 1 / 0.1
            rate = _med(res, "io", k, "rate")
            rows.append([f"{k} ({io_n[family(k)]} jobs)", rate, ideal, f"{rate / ideal:.0%}",
                         _med(res, "io", k, "cpu_us"), _med(res, "io", k, "redis_cpu_ms"),
                         _med(res, "io", k, "rt")])
        print_table("(b) jobs waiting 100 ms on I/O (geventq concurrency 500; rq runs one at a "
                    "time)", ["worker", "jobs/s", "ideal", "of ideal", "worker CPU µs/job",
                              "redis CPU ms/job", "round trips/job"], rows)
    if "lat" in done:
        rows = []
        for k in (*kinds, *FLOORS):
            samples = res[("lat", k)]
            rows.append([f"{k} ({lat_n.get(family(k), lat_n['geventq'])} "
                         f"{'echoes' if k in FLOORS else 'jobs'})",
                         median([percentile(s, 50) for s in samples]) * 1000,
                         median([percentile(s, 99) for s in samples]) * 1000])
        print_table("(c) enqueue-to-finish latency, idle worker, one job at a time (ms)",
                    ["worker", "p50", "p99"], rows)
    if "rss" in done:
        rows = [[f"{k} ({rss_n if family(k) == 'geventq' else 1} in flight)",
                 median(res[("rss", k)])]
                for k in kinds if ("rss", k) in res]
        print_table("(d) worker RSS (MB)", ["worker", "RSS MB"], rows)


if __name__ == "__main__":
    main()
