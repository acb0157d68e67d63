"""`import geventq` and the `geventq` command load nothing heavy.

The worker must monkey-patch before gevent, redis, ssl or any user module is
imported, and the launcher never needs them; so importing the package, its
command line, or running `geventq --help` / `--version` must leave them out
of sys.modules (as gunicorn's tests/workers/test_gevent_import_order.py checks).
When one sneaks in, the failure names the import chain that brought it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("gevent", "greenlet", "redis", "ssl", "concurrent.futures")

PROBE = r'''
import json, sys, traceback
HEAVY = set(json.loads(sys.argv[1]))
culprits = {}

class Spy:
    """Records who imports a heavy module first (imports nothing itself)."""
    def find_spec(self, name, path=None, target=None):
        if name in HEAVY and name not in culprits:
            stack = [f for f in traceback.extract_stack()[:-1] if "importlib" not in f.filename]
            culprits[name] = [f"{f.filename}:{f.lineno} {f.line}" for f in stack[-6:]]
        return None

sys.meta_path.insert(0, Spy())
code = sys.argv[2]
try:
    exec(code)
except SystemExit:
    pass
loaded = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps({"loaded": loaded, "culprits": {m: culprits.get(m) for m in loaded}}))
'''

CASES = {
    "import geventq": "import geventq; geventq.__version__",
    "import geventq.cli": "import geventq.cli",
    "import geventq.cli, then geventq": "import geventq.cli; import geventq",
    "geventq --version": "import sys; sys.argv = ['geventq', '--version']\n"
                         "from geventq.cli import main; main()",
    "geventq --help": "import sys; sys.argv = ['geventq', '--help']\nfrom geventq.cli import main; main()",
    "geventq worker --help": "import sys; sys.argv = ['geventq', 'worker', '--help']\n"
                             "from geventq.cli import main; main()",
    "geventq pool --help": "import sys; sys.argv = ['geventq', 'pool', '--help']\n"
                           "from geventq.cli import main; main()",
    "geventq dashboard --help": "import sys; sys.argv = ['geventq', 'dashboard', '--help']\n"
                                "from geventq.cli import main; main()",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_nothing_heavy_is_imported(case):
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY), CASES[case]],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["loaded"] == [], f"{case} imported {report['loaded']}; first import chains:\n" + \
        json.dumps(report["culprits"], indent=2)
