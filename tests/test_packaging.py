"""The package builds (sdist, then the wheel from it) and the wheel works in a fresh venv.

One build and one fresh venv per session. The venv is a plain one (no system
site-packages, no access to this checkout); the wheel's dependencies come
from the package index, so the install takes a few seconds.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

from geventq import Job, Queue
from geventq.version import VERSION
from tests.helpers import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA_SCRIPTS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "geventq", "lua", "*.lua")))


def _run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} exited {done.returncode}:\n" \
                                 f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that would let the checkout leak in."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "GEVENTQ_PREFIX")}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> dict[str, str]:
    """`python -m build`: the sdist, then the wheel built from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    # from a copy: the build writes into its source tree (geventq.egg-info, geventq-0.1.0/),
    # and under `make test` two processes may each build at once
    src = tmp_path_factory.mktemp("src") / "geventq"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    # --no-isolation: the test extra provides setuptools and wheel; no download
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
         timeout=120, cwd=src)
    wheels, sdists = glob.glob(str(out / "*.whl")), glob.glob(str(out / "*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, os.listdir(out)
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="session")
def fresh_venv(dist, tmp_path_factory) -> str:
    """A plain venv with only the wheel (and its dependencies from the index) installed."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=60)
    python = str(venv / "bin" / "python")
    # this venv's own pip installs into the fresh one (saves bootstrapping pip there)
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
          "--disable-pip-version-check", dist["wheel"]], timeout=150, env=_clean_env())
    return str(venv)


@pytest.mark.timeout(150)
def test_wheel_and_sdist_carry_the_package_and_every_lua_script(dist):
    assert LUA_SCRIPTS, "no Lua scripts found in geventq/lua"
    with zipfile.ZipFile(dist["wheel"]) as whl:
        names = whl.namelist()
        assert [f"geventq/lua/{s}" for s in LUA_SCRIPTS if f"geventq/lua/{s}" not in names] == []
        assert {n.split("/")[0] for n in names} == {"geventq", f"geventq-{VERSION}.dist-info"}
        meta = whl.read(f"geventq-{VERSION}.dist-info/METADATA").decode()
    assert f"Version: {VERSION}" in meta
    for dep in ("redis", "gevent", "click", "psutil", "croniter"):
        assert f"Requires-Dist: {dep}" in meta
    with tarfile.open(dist["sdist"]) as sdist:
        members = sdist.getnames()
    base = f"geventq-{VERSION}"
    for path in [f"geventq/lua/{s}" for s in LUA_SCRIPTS] + ["conf/settings.py", "README.md",
                                                             "docs/index.md", "CHANGELOG.md"]:
        assert f"{base}/{path}" in members, f"{path} missing from the sdist"


@pytest.mark.timeout(180)
def test_installed_wheel_runs_geventq_version_and_a_burst_worker(fresh_venv, connection, redis_url,
                                                                 tmp_path):
    bin_dir = os.path.join(fresh_venv, "bin")
    version = _run([os.path.join(bin_dir, "geventq"), "--version"], timeout=30, cwd=tmp_path,
                   env=_clean_env())
    assert version.stdout.strip() == f"geventq, version {VERSION}"

    # A job module that is neither in this checkout nor in the venv: the worker
    # imports it from its current directory, as a user's worker would.
    (tmp_path / "pkgcheck_jobs.py").write_text(
        "import geventq\n\n\ndef where(x):\n    return [geventq.__file__, x * 2]\n")
    queue = Queue(connection=connection)
    job = queue.enqueue("pkgcheck_jobs.where", 21)

    _run([os.path.join(bin_dir, "geventq"), "worker", "--burst", "--url", redis_url,
         "--logging-level", "WARNING"], timeout=60, cwd=tmp_path, env=_clean_env())
    wait_for(lambda: job.get_status() == "finished", timeout=5, message="the job to finish")
    where, doubled = Job.fetch(job.id, connection=connection).result
    assert doubled == 42
    # it ran on the installed copy, not on this checkout
    assert where.startswith(os.path.realpath(fresh_venv)) or where.startswith(fresh_venv), where
    assert not where.startswith(ROOT + os.sep + "geventq")


@pytest.mark.timeout(150)
def test_the_dashboard_ships_its_templates_and_static_files_and_flask_stays_an_extra(dist):
    shipped = [os.path.relpath(p, ROOT) for pattern in ("templates/*/*.html", "static/*")
               for p in glob.glob(os.path.join(ROOT, "geventq", "dashboard", pattern))]
    assert len(shipped) >= 8, shipped
    with zipfile.ZipFile(dist["wheel"]) as whl:
        names = whl.namelist()
        meta = whl.read(f"geventq-{VERSION}.dist-info/METADATA").decode()
    assert [p for p in shipped if p not in names] == []
    with tarfile.open(dist["sdist"]) as sdist:
        members = sdist.getnames()
    assert [p for p in shipped if f"geventq-{VERSION}/{p}" not in members] == []
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    flask = [line for line in requires if line.split()[1].lower().startswith("flask")]
    assert flask and all('extra == "dashboard"' in line or 'extra == "test"' in line for line in flask)
    assert "Provides-Extra: dashboard" in meta
