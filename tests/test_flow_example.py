"""examples/scrape.py runs against the local page server and keeps every site's limit."""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_scrape_example_keeps_each_site_to_three_at_once(redis_url):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "scrape.py"),
                           "--pages", "60", "--sites", "6", "--url", redis_url],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "60 of 60 pages fetched" in proc.stdout, proc.stdout
    peak = int(re.search(r"most requests at once on one site: (\d+)", proc.stdout).group(1))
    assert peak <= 3, proc.stdout
    assert "429 answers: 0" in proc.stdout, proc.stdout
