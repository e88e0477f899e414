"""The worker as users run it: ``celeriac -A tasks worker`` processes on the SQLite default."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.helpers import WorkerProcess, run_cli, run_python, write_module

TASKS = """
    import os
    import time

    from celeriac import Celery

    app = Celery("tasks")
    app.conf.update(broker_transport_options={"visibility_timeout": 1.0})

    class CustomError(Exception):
        pass

    @app.task
    def add(x, y):
        return x + y

    @app.task
    def fail():
        raise CustomError("it broke")

    @app.task
    def sleep_and_count(seconds, marker):
        with open(marker, "a") as handle:
            handle.write(f"start {os.getpid()}\\n")
        time.sleep(seconds)
        with open(marker, "a") as handle:
            handle.write(f"end {os.getpid()}\\n")
        return seconds

    @app.task(acks_late=True)
    def late_sleep(seconds, marker, n):
        with open(marker, "a") as handle:
            handle.write(f"start {n}\\n")
        time.sleep(seconds)
        with open(marker, "a") as handle:
            handle.write(f"end {n}\\n")
        return n
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_module(tmp_path, "tasks", TASKS)
    return tmp_path


def test_tutorial_example_with_banner_and_log_lines(project: Path) -> None:
    with WorkerProcess("tasks", project) as worker:
        out = run_python(
            project, "from tasks import add; r = add.delay(4, 6); print(r.id, r.get(timeout=10))"
        )
        task_id, value = out.split()
        assert value == "10"
        worker.wait_for_output(f"Task tasks.add[{task_id}] succeeded in")
    output = worker.output
    assert "[tasks]" in output and "  . tasks.add" in output and "  . tasks.fail" in output
    assert ".> transport:   sqlite:///celeriac.db" in output
    assert ".> celery" in output and "[queues]" in output
    assert f"Task tasks.add[{task_id}] received" in output
    assert "celery@" in output and " ready." in output
    assert "Warm shutdown" in output


def test_failure_type_crosses_processes(project: Path) -> None:
    with WorkerProcess("tasks", project, "-P", "solo"):
        out = run_python(
            project,
            "from tasks import fail, CustomError\n"
            "r = fail.delay()\n"
            "try:\n    r.get(timeout=10)\n"
            "except CustomError as exc:\n    print('raised', exc, r.state)\n",
        )
    assert out.strip() == "raised it broke FAILURE"


def test_cli_call_result_and_purge(project: Path) -> None:
    call = run_cli(["-A", "tasks", "call", "tasks.add", "--args", "[2, 3]"], project)
    assert call.returncode == 0, call.stderr
    task_id = call.stdout.strip()
    purge = run_cli(["-A", "tasks", "purge"], project, input_text="no\n")
    assert "There is no undo" in purge.stdout
    purged = run_cli(["-A", "tasks", "purge", "-f"], project)
    assert purged.stdout.strip() == "Purged 1 message from 1 known task queue."
    again = run_cli(["-A", "tasks", "call", "tasks.add", "--args", "[2, 3]"], project)
    task_id = again.stdout.strip()
    with WorkerProcess("tasks", project):
        result = run_cli(["-A", "tasks", "result", task_id], project)
    assert result.stdout.strip() == "5", result.stderr


def test_unknown_task_is_dead_lettered_and_requeued_after_deploy(project: Path) -> None:
    call = run_cli(["-A", "tasks", "call", "tasks.resize", "--args", "[3]"], project)
    task_id = call.stdout.strip()
    with WorkerProcess("tasks", project) as worker:
        worker.wait_for_output("Received unregistered task of type 'tasks.resize'")
    listing = run_cli(["-A", "tasks", "dead", "list"], project)
    assert task_id in listing.stdout and "NotRegistered" in listing.stdout
    state = run_python(
        project, f"from tasks import app; r = app.AsyncResult({task_id!r}); print(r.state)"
    )
    assert state.strip() == "FAILURE"
    with open(project / "tasks.py", "a") as handle:  # deploy the task
        handle.write("\n@app.task\ndef resize(n):\n    return n * 2\n")
    unknown = run_cli(["-A", "tasks", "dead", "requeue", "no-such-id"], project)
    assert unknown.returncode != 0 and "No dead letter with id no-such-id" in unknown.stderr
    requeue = run_cli(["-A", "tasks", "dead", "requeue", task_id], project)
    assert requeue.stdout.strip() == "Requeued 1 message."
    run_python(project, f"from tasks import app; app.AsyncResult({task_id!r}).forget()")
    with WorkerProcess("tasks", project):
        value = run_python(
            project, f"from tasks import app; print(app.AsyncResult({task_id!r}).get(timeout=10))"
        )
    assert value.strip() == "6"
    assert "No dead letters." in run_cli(["-A", "tasks", "dead", "list"], project).stdout


def test_time_limits_the_pool_cannot_enforce_are_announced(project: Path) -> None:
    write_module(
        project,
        "limited",
        """
        from celeriac import Celery
        app = Celery("limited")

        @app.task(time_limit=30)
        def slow():
            return 1
    """,
    )
    with WorkerProcess("limited", project, "-P", "threads") as worker:
        worker.wait_for_output("Time limits are set for limited.slow")
    assert "cannot enforce them" in worker.output


def test_bad_broker_url_is_a_clear_error_at_start(project: Path) -> None:
    done = run_cli(["-A", "tasks", "-b", "nosuch://host", "worker"], project)
    assert done.returncode != 0
    assert "nosuch://host" in done.stderr


def test_unknown_setting_is_a_clear_error_at_start(project: Path) -> None:
    write_module(
        project,
        "typo",
        """
        from celeriac import Celery
        app = Celery("typo", task_serialiser="json")
    """,
    )
    done = run_cli(["-A", "typo", "worker"], project)
    assert done.returncode != 0
    assert "task_serialiser" in done.stderr and "task_serializer" in done.stderr


def test_missing_app_module_is_a_clear_error(project: Path) -> None:
    done = run_cli(["-A", "nosuchmodule", "worker"], project)
    assert done.returncode != 0
    assert "nosuchmodule" in done.stderr


def test_cold_shutdown_on_second_signal(project: Path) -> None:
    marker = project / "marker.txt"
    run_python(
        project, f"from tasks import sleep_and_count; sleep_and_count.delay(30, {str(marker)!r})"
    )
    worker = WorkerProcess("tasks", project).start()
    try:
        deadline = time.monotonic() + 10
        while (
            not (marker.exists() and "start" in marker.read_text()) and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        worker.signal(signal.SIGINT)
        worker.wait_for_output("Warm shutdown")
        worker.signal(signal.SIGINT)
        started = time.monotonic()
        assert worker.proc is not None
        worker.proc.wait(10)
        assert time.monotonic() - started < 5
        assert "Cold shutdown" in worker.output
    finally:
        worker.kill()


def test_acks_late_task_survives_sigkill(project: Path) -> None:
    """A worker killed mid-task loses nothing with acks_late: another worker runs it."""
    marker = project / "late.txt"
    ids = run_python(
        project,
        "from tasks import late_sleep\n"
        f"print(' '.join(late_sleep.delay(0.5, {str(marker)!r}, n).id for n in range(6)))",
    ).split()
    first = WorkerProcess("tasks", project, "-c", "2").start()
    try:
        deadline = time.monotonic() + 10
        while (
            not (marker.exists() and "start" in marker.read_text()) and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        first.kill()  # SIGKILL while a task runs
    finally:
        first.kill()
    with WorkerProcess("tasks", project, "-c", "2"):
        values = run_python(
            project,
            "from tasks import app\n"
            f"print(sorted(app.AsyncResult(i).get(timeout=30) for i in {ids!r}))",
        )
    assert values.strip() == "[0, 1, 2, 3, 4, 5]"
    ends = [line for line in marker.read_text().splitlines() if line.startswith("end")]
    assert sorted({line.split()[1] for line in ends}) == [str(n) for n in range(6)]


def test_long_task_is_not_redelivered_while_its_worker_lives(project: Path) -> None:
    """A task running 4x its lease (visibility_timeout=1s) runs once: the lease is renewed."""
    marker = project / "long.txt"
    with (
        WorkerProcess("tasks", project, "-c", "1", "-n", "w1@%h"),
        WorkerProcess("tasks", project, "-c", "1", "-n", "w2@%h"),
    ):
        out = run_python(
            project,
            "from tasks import late_sleep\n"
            f"print(late_sleep.delay(4, {str(marker)!r}, 7).get(timeout=30))",
        )
    assert out.strip() == "7"
    assert marker.read_text().splitlines() == ["start 7", "end 7"]
