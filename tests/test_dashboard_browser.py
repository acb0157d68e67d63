"""The dashboard in a real browser: headless Chromium through Playwright, against `geventq dashboard`.

Chromium is Debian's package (``/usr/bin/chromium``, or ``$GEVENTQ_CHROMIUM``); it is
never downloaded. When it or Playwright is missing these tests FAIL with one line
saying what to install: they never skip or pass silently. ``make test`` installs
both (Chromium with apt-get when run as root, Playwright from the test extra).

``GEVENTQ_SCREENSHOTS=docs`` makes the screenshot test write docs/dashboard.png
(``make screenshots``); otherwise it writes to a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from geventq import Job, Queue, SimpleWorker
from geventq.keys import Keys
from tests.conftest import ROOT, worker_env
from tests.dashboard_support import HOSTILE_IMG, HOSTILE_SCRIPT, Dashboard, make_failed
from tests.helpers import wait_for

CHROMIUM = os.environ.get("GEVENTQ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
USER, PASSWORD = "ops", "browser-pass"


@pytest.fixture(scope="module")
def playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need Playwright: pip install -e '.[test]' (or pip install "
                    "playwright); no browser download is needed", pytrace=False)
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(CHROMIUM):
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: install Debian's package "
                    "(apt-get install chromium) or set GEVENTQ_CHROMIUM to its path", pytrace=False)
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright, tmp_path_factory):
    """One Chromium for the module, on a fresh profile, sending the dashboard's credentials.

    It ignores the dashboard's Content-Security-Policy (which would also refuse the
    tests' own evaluated script): the hostile-text test then proves that escaping
    alone keeps the text inert, the CSP being a second line of defence.
    """
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
        args=CHROMIUM_FLAGS, http_credentials={"username": USER, "password": PASSWORD},
        bypass_csp=True, viewport={"width": 1200, "height": 760})
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "Requeue all N failed job(s)?"
    yield page
    page.close()


@pytest.fixture(scope="module")
def dashboard_url(redis_server):
    """`geventq dashboard --auth ...` as users start it, shared by the module's tests."""
    env = worker_env(redis_server.url)
    env.pop("GEVENTQ_DASHBOARD_AUTH", None)
    dash = Dashboard(["-u", redis_server.url, "--bind", "127.0.0.1:0", "--auth",
                      f"{USER}:{PASSWORD}"], env)
    try:
        yield dash.wait_until_serving()
    finally:
        dash.kill()


def _statuses(connection, ids: list[str]) -> list[str]:
    return [Job.fetch(i, connection=connection).get_status() for i in ids]


def test_requeue_all_puts_every_failed_job_back_on_its_queue(page, dashboard_url, connection):
    ids = make_failed(connection, 7)
    page.goto(dashboard_url + "queues/default/failed")
    assert page.locator("table.jobs tbody tr").count() == 7
    page.get_by_role("button", name="Requeue all", exact=True).click()
    page.wait_for_url("**requeued=7")
    assert "7 job(s) requeued." in page.inner_text("p.notice")
    assert _statuses(connection, ids) == ["queued"] * 7
    assert sorted(Queue(connection=connection).job_ids) == sorted(ids)
    assert Queue(connection=connection).failed_job_registry.count == 0


def test_requeue_all_of_a_search_requeues_only_what_matched(page, dashboard_url, connection):
    disk = make_failed(connection, 3, message="disk full")
    other = make_failed(connection, 4, message="timeout talking to the API")
    page.goto(dashboard_url + "queues/default/failed")
    page.get_by_label("Search").fill("DISK")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**search=DISK**")
    assert page.locator("table.jobs tbody tr").count() == 3
    page.get_by_role("button", name="Requeue all", exact=True).click()
    page.wait_for_url("**requeued=3")
    assert _statuses(connection, disk) == ["queued"] * 3
    assert _statuses(connection, other) == ["failed"] * 4


def test_hostile_text_in_redis_does_not_run(page, dashboard_url, connection):
    keys = Keys()
    q = Queue(connection=connection)
    bad = q.enqueue("tests.jobs.fail", HOSTILE_SCRIPT + HOSTILE_IMG, job_id="hostile")
    SimpleWorker([q], connection=connection).work(burst=True)
    # names that are valid in Redis but are markup: they reach the page through the live update too
    connection.sadd(keys.queues, "<img/src=x/onerror=window.__pwned=3>")
    connection.sadd(keys.workers, "<svg/onload=window.__pwned=4>")
    connection.hset(keys.worker("<svg/onload=window.__pwned=4>"),
                    mapping={"queues": "default", "hostname": HOSTILE_SCRIPT, "pool": HOSTILE_IMG,
                             "concurrency": 2})
    page.goto(dashboard_url + f"jobs/{bad.id}")
    assert HOSTILE_SCRIPT in page.inner_text("#job-exc-info")  # shown, as text
    assert HOSTILE_IMG in page.inner_text("#job-args")
    page.goto(dashboard_url + "queues/default/failed")
    assert HOSTILE_SCRIPT in page.inner_text("table.jobs")
    page.goto(dashboard_url)
    page.wait_for_function("document.getElementById('live-status').textContent.includes('updated')")
    assert "<img/src=x/onerror=window.__pwned=3>" in page.inner_text("#queues")
    assert "<svg/onload=window.__pwned=4>" in page.inner_text("#workers")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img, svg, script:not([src])").count() == 0


def test_the_overview_updates_without_reloading(page, dashboard_url, connection):
    q = Queue("live", connection=connection)
    q.enqueue("tests.jobs.noop")
    page.goto(dashboard_url)
    page.evaluate("window.__same_page = true")
    row = page.locator("#queues tbody tr", has_text="live")
    assert row.locator("td.queued").inner_text() == "1"
    for _ in range(4):
        q.enqueue("tests.jobs.noop")
    page.wait_for_function(
        "[...document.querySelectorAll('#queues tbody tr')].some("
        "r => r.textContent.includes('live') && r.querySelector('td.queued').textContent === '5')")
    assert page.evaluate("window.__same_page") is True


def test_the_job_page_shows_progress_live(page, dashboard_url, connection, redis_url, start_worker):
    q = Queue("progress", connection=connection)
    job = q.enqueue("tests.jobs_progress.steps", [30, 60], gate_key="gate", redis_url=redis_url)
    start_worker("progress")
    wait_for(lambda: job.get_status() == "started", timeout=20, message="the worker to start the job")
    page.goto(dashboard_url + f"jobs/{job.id}")
    page.evaluate("window.__same_page = true")
    assert "not reported" in page.inner_text("#job-progress")
    connection.rpush("gate", 1)  # the job reports 30%
    page.wait_for_function("document.getElementById('job-progress').textContent.includes('30% step 30')")
    assert page.evaluate("window.__same_page") is True  # updated in place
    connection.rpush("gate", 1)  # 60%, then it finishes: the page reloads with its result
    page.wait_for_function("document.getElementById('job-status').textContent === 'finished'")
    assert "60% step 60" in page.inner_text("#job-progress")


def test_pause_stops_a_real_worker_taking_the_queue_and_unpause_lets_it_drain(
        page, dashboard_url, connection, start_worker):
    paced, other = Queue("paced", connection=connection), Queue("other", connection=connection)
    start_worker("paced", "other")  # takes "paced" first whenever it may
    assert paced.enqueue("tests.jobs.add", 1, 1).wait(timeout=20) == 2  # the worker is working
    page.goto(dashboard_url + "queues/paced")
    page.get_by_role("button", name="Pause", exact=True).click()
    page.wait_for_url("**done=paused")
    assert page.inner_text("#queue-paused") == "paused"
    held = [paced.enqueue("tests.jobs.add", n, n) for n in range(5)]
    # the worker has claimed since: it ran a job enqueued after the held ones, and left them
    assert other.enqueue("tests.jobs.add", 2, 2).wait(timeout=20) == 4
    assert [job.get_status() for job in held] == ["queued"] * 5
    page.get_by_role("button", name="Unpause", exact=True).click()
    page.wait_for_url("**done=unpaused")
    assert page.locator("#queue-paused").count() == 0
    wait_for(lambda: all(job.get_status() == "finished" for job in held), timeout=20,
             message="the unpaused queue to drain")
    assert paced.count == 0 and [job.return_value() for job in held] == [0, 2, 4, 6, 8]


def _cell(queue: str, cls: str) -> str:
    """JS: the text of the overview's cell ``cls`` in the row of ``queue``."""
    return (f"[...document.querySelectorAll('#queues tbody tr')].filter(r => "
            f"r.querySelector('td.name').textContent === {queue!r}).map(r => "
            f"r.querySelector('td.{cls}').textContent)[0]")


def test_the_rates_appear_as_a_real_worker_ends_jobs(page, dashboard_url, connection, start_worker):
    q = Queue("rated", connection=connection)
    for n in range(20):
        q.enqueue("tests.jobs.add", n, n)
    for n in range(3):
        q.enqueue("tests.jobs.fail", f"failure {n}")
    page.goto(dashboard_url)
    page.evaluate("window.__same_page = true")
    # the first live update measures: nothing has ended on this queue yet
    page.wait_for_function(f"{_cell('rated', 'rate.finished')} === '0'")
    assert page.evaluate(_cell("rated", "rate.failed")) == "0"
    worker = start_worker("--burst", "rated")
    assert worker.wait(timeout=30) == 0
    page.wait_for_function(f"Number({_cell('rated', 'rate.finished')}.replace(',', '')) > 0")
    page.wait_for_function(f"Number({_cell('rated', 'rate.failed')}) > 0")
    assert page.evaluate("window.__same_page") is True


def test_screenshot_of_the_overview(page, dashboard_url, connection, start_worker, tmp_path):
    """Realistic data, a real worker busy with jobs; regenerated by `make screenshots`."""
    emails, reports = Queue("emails", connection=connection), Queue("reports", connection=connection)
    make_failed(connection, 3, queue="reports", message="report source unavailable")
    for _ in range(12):
        emails.enqueue("tests.jobs.sleep", 30)
    reports.enqueue_in(3600, "tests.jobs.noop")
    exports = Queue("exports", connection=connection)
    for n in range(2):
        exports.enqueue("tests.jobs.add", n, n)
    exports.pause()
    worker = start_worker("emails", "--concurrency", "8", "--name", "mail-1.host-a",
                          env_extra={"GEVENTQ_POOL": "mailers"})
    wait_for(lambda: emails.started_job_registry.count == 8, timeout=20,
             message="the worker to take 8 jobs")
    page.goto(dashboard_url)
    # jobs end while the page is open: the next live update shows their rates
    for n in range(30):
        reports.enqueue("tests.jobs.add", n, n)
    reports.enqueue("tests.jobs.fail", "report source unavailable")
    SimpleWorker([reports], connection=connection).work(burst=True)
    for n in range(4):
        reports.enqueue("tests.jobs.add", n, n)
    page.wait_for_function(f"{_cell('reports', 'rate.finished')} !== '0' && "
                           f"{_cell('reports', 'rate.finished')} !== '\u2014'")
    assert "mail-1.host-a" in page.inner_text("#workers")
    assert page.evaluate(_cell("exports", "paused")) == "yes"
    target_dir = os.environ.get("GEVENTQ_SCREENSHOTS")
    path = os.path.join(ROOT, target_dir, "dashboard.png") if target_dir else str(tmp_path / "o.png")
    page.screenshot(path=path, full_page=True)
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    worker.kill()  # its jobs are left to the next test's flush


def test_without_chromium_the_browser_tests_fail_with_one_line_saying_what_to_install(tmp_path):
    """Run as a user without Chromium would: they must fail, never skip or pass."""
    env = dict(os.environ, GEVENTQ_CHROMIUM=str(tmp_path / "no-chromium-here"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
         "tests/test_dashboard_browser.py", "-k", "hostile_text"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=50)
    assert done.returncode == 1, done.stdout[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert "1 error" in summary and "passed" not in summary and "skipped" not in summary, summary
    assert (f"the browser tests need Chromium at {tmp_path / 'no-chromium-here'}: install Debian's "
            "package (apt-get install chromium)") in done.stdout
