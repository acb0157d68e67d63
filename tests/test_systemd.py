"""The systemd units: what they promise, and `systemd-analyze verify` on them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from geventq import defaults
from geventq.supervisor.settings import STOP_MARGIN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNITS = os.path.join(ROOT, "systemd")
SERVICES = ["geventq@.service", "geventq-worker@.service"]
HARDENING = ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
             "PrivateDevices=yes", "ProtectKernelTunables=yes", "ProtectControlGroups=yes",
             "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"]


def read_unit(name: str) -> dict[str, list[str]]:
    """``{"Section.Key": [values]}``; systemd allows a key more than once."""
    keys: dict[str, list[str]] = {}
    section = ""
    with open(os.path.join(UNITS, name)) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            keys.setdefault(f"{section}.{key}", []).append(value)
    return keys


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, f"unsupported time span {value!r}"
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def test_pool_unit_runs_the_pool_as_a_notify_service():
    unit = read_unit("geventq@.service")
    assert unit["Service.ExecStart"] == ["/usr/local/bin/geventq pool -c /etc/geventq/%i.py"]
    assert unit["Service.Type"] == ["notify"] and unit["Service.NotifyAccess"] == ["main"]
    assert unit["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["Service.KillMode"] == ["mixed"] and unit["Service.KillSignal"] == ["SIGTERM"]
    assert unit["Service.Restart"] == ["on-failure"]
    assert unit["Service.RestartPreventExitStatus"] == [str(defaults.EXIT_BOOT_ERROR)]
    assert unit["Service.User"] == ["geventq"]
    assert seconds(unit["Service.WatchdogSec"][0]) > 2  # pinged every half of it
    # systemd must not SIGKILL before the launcher's own warm-shutdown limit
    stop = seconds(unit["Service.TimeoutStopSec"][0])
    assert stop > defaults.DEFAULT_SHUTDOWN_GRACE + STOP_MARGIN
    assert unit["Install.WantedBy"] == ["geventq.target"]
    assert unit["Unit.PartOf"] == ["geventq.target"]


@pytest.mark.parametrize("name", SERVICES)
def test_services_are_hardened(name):
    unit = read_unit(name)
    for setting in HARDENING:
        key, _, value = setting.partition("=")
        assert unit.get(f"Service.{key}") == [value], f"{name}: {setting}"


def test_worker_unit_runs_one_worker_without_the_launcher():
    unit = read_unit("geventq-worker@.service")
    assert unit["Service.ExecStart"][0].startswith("/usr/local/bin/geventq worker -c "
                                                   "/etc/geventq/%i.py")
    assert "Service.WatchdogSec" not in unit  # a bare worker does not speak sd_notify
    assert unit["Service.RestartPreventExitStatus"] == [str(defaults.EXIT_BOOT_ERROR)]


def test_target_is_wanted_by_multi_user():
    assert read_unit("geventq.target")["Install.WantedBy"] == ["multi-user.target"]


def test_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: cannot verify the units")
    # verify insists that ExecStart's binary exists: point it at one that does.
    true = shutil.which("true") or "/bin/true"
    for name in [*SERVICES, "geventq.target"]:
        with open(os.path.join(UNITS, name)) as f:
            text = f.read().replace("/usr/local/bin/geventq", true)
        (tmp_path / name).write_text(text)
    paths = [str(tmp_path / name) for name in [*SERVICES, "geventq.target"]]
    out = subprocess.run([analyze, "verify", "--man=no", *paths], capture_output=True,
                         text=True, timeout=30, cwd=tmp_path)
    # Unknown keys and bad values are only warnings (exit code 0): fail on any
    # line that names one of our files.
    ours = [line for line in (out.stdout + out.stderr).splitlines()
            if "geventq" in line]
    assert out.returncode == 0 and not ours, out.stdout + out.stderr
