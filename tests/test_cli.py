"""The admin commands: empty, requeue, suspend/resume, recover, and their errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from geventq import Queue, control, lifecycle
from geventq.cli import main
from tests import jobs


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_empty(connection, redis_url):
    q = Queue("doomed", connection=connection)
    for _ in range(3):
        q.enqueue(jobs.noop)
    code, out = run("empty", "doomed", "-u", redis_url)
    assert code == 0 and "3 job(s) removed from doomed" in out
    assert q.is_empty()


def test_requeue_one_and_all(connection, redis_url):
    q = Queue("default", connection=connection, is_async=False)
    failed = [q.enqueue(jobs.fail) for _ in range(3)]
    code, out = run("requeue", failed[0].id, "-u", redis_url)
    assert code == 0 and "1 job(s) requeued" in out
    assert Queue("default", connection=connection).job_ids == [failed[0].id]
    code, out = run("requeue", "--all", "-u", redis_url)
    assert code == 0 and "2 job(s) requeued" in out
    assert len(Queue("default", connection=connection)) == 3


def test_requeue_needs_ids_or_all(redis_url):
    code, out = run("requeue", "-u", redis_url)
    assert code != 0 and "give JOB_IDs or --all" in out


def test_suspend_resume(connection, redis_url):
    assert run("suspend", "-u", redis_url)[0] == 0
    assert control.is_suspended(connection)
    assert run("resume", "-u", redis_url)[0] == 0
    assert not control.is_suspended(connection)


def test_stop_of_a_job_that_is_not_running_says_so(queue, redis_url):
    job = queue.enqueue(jobs.noop)
    code, out = run("stop", job.id, "-u", redis_url)
    assert code == 1 and f"job {job.id} is not running (status queued)" in out
    code, out = run("stop", "ghost", "-u", redis_url)
    assert code == 1 and "no job with id 'ghost'" in out


def test_recover_named_worker(queue, connection, redis_url):
    job = queue.enqueue(jobs.noop)
    lifecycle.start(connection, queue.keys, "dead-one",
                    lifecycle.claim(connection, queue.keys, ["default"], "dead-one", 1))
    code, out = run("recover", "--worker", "dead-one", "-u", redis_url)
    assert code == 0 and f"{job.id}: queued" in out
    assert queue.job_ids == [job.id]


def test_config_module_path(tmp_path, monkeypatch, connection, redis_url):
    (tmp_path / "mysettings.py").write_text(f"REDIS_URL = {redis_url!r}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    Queue("cfg", connection=connection).enqueue(jobs.noop)
    code, out = run("info", "-c", "mysettings")
    assert code == 0 and "cfg" in out


@pytest.mark.parametrize("args,needle", [
    (["info", "-u", "redis://:hunter2@127.0.0.1:1/0"], "geventq info: "),
    (["info", "-u", "nonsense://x"], "geventq info: "),
    (["info", "-c", "/no/such/file.py"], "config file not found: /no/such/file.py"),
])
def test_errors_are_one_line_without_secrets(args, needle):
    code, out = run(*args)
    assert code == 1
    assert needle in out and "hunter2" not in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1


def test_sentry_without_sdk_is_a_clear_boot_error(start_worker):
    try:
        import sentry_sdk  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("sentry-sdk is installed here; the message is for machines without it")
    worker = start_worker("--burst", "--sentry-dsn", "https://public:secret@example.invalid/1")
    out = worker.output()
    assert worker.proc.returncode == 3
    assert "sentry-sdk is not installed" in out and "secret@" not in out
