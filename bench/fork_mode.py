"""``geventq worker --mode fork``: this tree against a git revision, in one run.

Both are real ``python -m geventq worker --mode fork --fork-concurrency 2`` processes
against one private redis-server, interleaved run by run:

(a) no-op jobs drained (burst mode): jobs/s from the first job's start to the last
    job's end, and CPU per job of the worker and its (reaped) children, minus that of
    the same worker started on an empty queue;
(b) RSS of the worker process itself (its children apart) once it has run 200 no-op
    jobs and sits idle; and whether gevent is in that process (its memory maps).

    python bench/fork_mode.py --baseline 121a097   # 3 runs, medians, this tree vs 121a097
    python bench/fork_mode.py --quick              # this tree alone: only checks it works
    python bench/fork_mode.py --baseline 121a097 --mixed   # the same, --fork-queue bench:
                                                   # a GeventWorker whose one queue forks
"""

from __future__ import annotations

import sys
import time

import psutil
from _common import base_parser, connect, drain_span, median, print_table, private_redis
from throughput import BASE_ROOT, baseline_tree, enqueue, run_burst, start

from bench.jobs import noop
from geventq.keys import Keys

FORK = {"mode": ["--mode", "fork"], "queue": ["--fork-queue", "bench"]}
HOW = ["mode"]  # --mixed: ["queue"]


def command(url: str, burst: bool) -> list[str]:
    cmd = [sys.executable, "-m", "geventq", "worker", "--logging-level", "WARNING",
           "--url", url, *FORK[HOW[0]], "--fork-concurrency", "2"]
    return cmd + (["--burst"] if burst else []) + ["bench"]


def drained(kind: str, server, n: int) -> dict:
    conn = connect(server)
    conn.flushdb()
    _, idle_cpu = run_burst(server, command(server.url, True), kind)
    ids = enqueue("geventq", conn, "bench", noop, (), n)
    _, cpu = run_burst(server, command(server.url, True), kind)
    return {"rate": n / drain_span("geventq", conn, ids), "cpu_us": (cpu - idle_cpu) / n * 1e6}


def parent_rss(kind: str, server, n: int = 200) -> dict:
    conn = connect(server)
    conn.flushdb()
    ids = enqueue("geventq", conn, "bench", noop, (), n)
    proc = start(server, command(server.url, False), kind)
    try:
        deadline = time.monotonic() + 60
        while conn.zcard(Keys().registry("finished", "bench")) < len(ids):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{kind}: the jobs did not finish")
            time.sleep(0.05)
        time.sleep(0.5)
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        with open(f"/proc/{proc.pid}/maps") as f:
            gevent = any("greenlet" in line or "gevent" in line for line in f)
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()
    return {"rss": rss, "gevent": gevent}


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "-"


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="REV",
                        help="also run the geventq of git revision REV (a worktree of it)")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--mixed", action="store_true",
                        help="a GeventWorker with a fork queue (--fork-queue) instead")
    opts = parser.parse_args()
    if opts.mixed:
        HOW[0] = "queue"
    kinds = ["geventq"]
    if opts.baseline:
        BASE_ROOT["root"] = baseline_tree(opts.baseline)
        kinds.append("base")
    n = 40 if opts.quick else opts.jobs
    runs = 1 if opts.quick else opts.runs
    res: dict[str, list[dict]] = {k: [] for k in kinds}
    with private_redis() as server:
        for run in range(runs):
            for kind in kinds[run % len(kinds):] + kinds[:run % len(kinds)]:
                res[kind].append({**drained(kind, server, n), **parent_rss(kind, server)})
            print(f"run {run + 1}/{runs} done", file=sys.stderr)
    med = {k: {f: median([r[f] for r in res[k]]) for f in ("rate", "cpu_us", "rss")}
           for k in kinds}
    names = {"geventq": "this tree", "base": f"base {opts.baseline}"}  # (the base: --baseline)
    rows = [[names[k], f"{med[k]['rate']:.0f}", f"{med[k]['cpu_us']:.0f}", f"{med[k]['rss']:.1f}",
             "yes" if any(r["gevent"] for r in res[k]) else "no"] for k in kinds]
    if "base" in med:
        rows.append(["this / base", ratio(med["geventq"]["rate"], med["base"]["rate"]),
                     ratio(med["geventq"]["cpu_us"], med["base"]["cpu_us"]),
                     ratio(med["geventq"]["rss"], med["base"]["rss"]), ""])
    print_table(f"{' '.join(FORK[HOW[0]])}, {n} no-op jobs, medians of {runs} run(s)",
                ["worker", "jobs/s", "CPU µs/job", "worker RSS MB", "gevent loaded"], rows)


if __name__ == "__main__":
    main()
