"""The benchmarks still run (a few dozen jobs each); their figures are not checked here."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def run_bench(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", script), "--quick", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=45)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_enqueue_bench_runs():
    out = run_bench("enqueue.py")
    assert "single" in out and "bulk" in out


@pytest.mark.timeout(60)
def test_throughput_bench_runs():
    # python-rq's workers are left out: they would triple the time of this check
    out = run_bench("throughput.py", "--no-rq")
    for part in ("(a) no-op jobs", "(b) jobs waiting", "(c) enqueue-to-finish", "(d) worker RSS"):
        assert part in out


@pytest.mark.timeout(60)
def test_cpu_bound_bench_runs():
    out = run_bench("cpu_bound.py", "--no-rq")
    assert "CPU jobs of ~250 ms" in out and "no-op jobs" in out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args", [(), ("--cluster",)], ids=["standalone", "one-node-cluster"])
def test_redis_cost_bench_runs(args):
    out = run_bench("redis_cost.py", *args)
    for part in ("enqueue single", "enqueue bulk", "claim (batches of 50)", "end (batches of 50)",
                 "busy workers", "jobs/s per core", "bulk enqueue + busy workers"):
        assert part in out
    assert ("a one-node Redis Cluster" in out) == bool(args)


@pytest.mark.timeout(60)
def test_fork_mode_bench_runs():
    out = run_bench("fork_mode.py")
    assert "--mode fork, 40 no-op jobs" in out and "this tree" in out


def test_dashboard_bench_runs():
    out = run_bench("dashboard.py")
    assert "first page" in out and "Requeue all: 200 failed jobs requeued" in out
def test_peers_bench_runs():
    # the peers run too when installed (`make bench` installs them); else geventq alone
    out = run_bench("peers.py")
    missing = [name for name in ("huey", "rq") if importlib.util.find_spec(name) is None]
    for table in ("single enqueue", "idle worker, enqueue-to-finish", "worker RSS, MB"):
        assert table in out
    for name in ["geventq", *(n for n in ("huey", "rq") if n not in missing)]:
        assert f"\n  {name} " in out
    if missing:
        assert f"not installed, left out: {', '.join(missing)}" in out
    else:
        assert "issue 18's targets" in out


@pytest.mark.timeout(60)
def test_metrics_bench_runs():
    out = run_bench("metrics.py")
    assert "(a) no-op jobs drained" in out and "(b) one scrape" in out
