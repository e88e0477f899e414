"""``celeriac worker --detach``: a real daemon with its pidfile and log file, in a tmp dir.

On the embedded SQLite broker; the basic daemon round trip runs on Redis too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac.worker.daemon import expand_filename, pid_is_alive, read_pid
from tests.broker_choice import BROKERS, on_broker
from tests.helpers import run_cli, write_module

TASKS = """
    import os

    from celeriac import Celery

    URL = os.environ.get("CELERIAC_TEST_BROKER")  # None: the embedded SQLite file
    app = Celery("tasks", broker=URL, backend=URL)
    if URL:
        options = {"global_keyprefix": os.environ["CELERIAC_TEST_PREFIX"]}
        app.conf.broker_transport_options = options
        app.conf.result_backend_transport_options = options

    @app.task
    def add(x, y):
        return x + y
"""


@pytest.fixture
def project(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A directory with the tasks module; its daemons are killed before the broker is cleaned."""
    write_module(tmp_path, "tasks", TASKS)
    with on_broker(request, monkeypatch):
        try:
            yield tmp_path
        finally:
            kill_pidfile_owners(tmp_path)


def kill_pidfile_owners(directory: Path) -> None:
    """SIGKILL every live process a pidfile in ``directory`` names (a failed test's daemons)."""
    for path in directory.glob("*.pid"):
        pid = read_pid(str(path))
        if pid is not None and pid_is_alive(pid):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid)


def wait_gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_is_alive(pid):
            return True
        time.sleep(0.05)
    return False


def wait_for_text(path: Path, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    content = ""
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path}:\n{content}")


def send_add(project: Path, x: int, y: int) -> str:
    code = f"from tasks import add; print(add.delay({x}, {y}).get(timeout=20))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def detach(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["-A", "tasks", "worker", "--detach", "-l", "INFO", *args], project)


@pytest.mark.parametrize("project", BROKERS, indirect=True)
def test_detached_worker_runs_tasks_and_stops_on_sigterm(project: Path) -> None:
    started = time.monotonic()
    done = detach(project, "-n", "d1@%h", "--pidfile=%n.pid", "--logfile=%n.log")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 20
    pid = read_pid(str(project / "d1.pid"))
    assert pid is not None and pid_is_alive(pid)
    log = wait_for_text(project / "d1.log", " ready.")
    assert "d1@" in log and "[tasks]" in log  # the banner went to the log too
    assert send_add(project, 2, 3) == "5"
    wait_for_text(project / "d1.log", "succeeded in")
    os.kill(pid, signal.SIGTERM)
    assert wait_gone(pid), "the daemon did not stop on SIGTERM"
    assert not (project / "d1.pid").exists()
    assert "Warm shutdown" in (project / "d1.log").read_text()


def test_live_pidfile_is_refused_and_stale_one_replaced(project: Path) -> None:
    first = detach(project, "-n", "d2@%h", "--pidfile=d2.pid", "--logfile=d2.log")
    assert first.returncode == 0, first.stderr
    pid = read_pid(str(project / "d2.pid"))
    again = detach(project, "-n", "d2@%h", "--pidfile=d2.pid", "--logfile=d2.log")
    assert again.returncode != 0
    assert f"Pidfile ({project / 'd2.pid'}) already exists." in again.stderr
    assert f"Seems we're already running? (pid: {pid})" in again.stderr
    assert read_pid(str(project / "d2.pid")) == pid  # untouched
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # leaves a stale pidfile behind
    assert wait_gone(pid)
    assert (project / "d2.pid").exists()
    third = detach(project, "-n", "d2@%h", "--pidfile=d2.pid", "--logfile=d2.log")
    assert third.returncode == 0, third.stderr
    new_pid = read_pid(str(project / "d2.pid"))
    assert new_pid not in (None, pid) and pid_is_alive(new_pid or 0)


def test_file_name_expansions(project: Path) -> None:
    host = socket.gethostname()
    done = detach(project, "-n", "d3@%h", "--pidfile=%n-%h.pid", "--logfile=%n-%i%I.log")
    assert done.returncode == 0, done.stderr
    assert (project / f"d3-{host}.pid").exists()
    wait_for_text(project / "d3-0.log", " ready.")  # main process: %i is 0, %I is empty


def test_expand_filename_abbreviations() -> None:
    node = "w1@george.example.com"
    assert expand_filename("%p|%n|%h|%d", node) == f"{node}|w1|george.example.com|example.com"
    assert expand_filename("%n%I.log", node) == "w1.log"
    assert expand_filename("%n%I.log", node, index=2) == "w1-2.log"
    assert expand_filename("%n-%i.log", node) == "w1-0.log"
    assert expand_filename("%n-%i.log", node, index=3) == "w1-3.log"
    assert expand_filename("100%%-%x", node) == "100%-%x"


def test_start_up_error_is_reported_by_the_starting_command(project: Path) -> None:
    done = run_cli(
        ["-A", "tasks", "-b", "nosuch://host", "worker", "-D", "--pidfile=x.pid"], project
    )
    assert done.returncode != 0
    assert "nosuch://host" in done.stderr
    assert not (project / "x.pid").exists()


def test_unknown_user_or_group_is_a_clear_error(project: Path) -> None:
    done = detach(project, "--uid", "no-such-user-celeriac")
    assert done.returncode != 0 and "no such user: 'no-such-user-celeriac'" in done.stderr
    done = detach(project, "--gid", "no-such-group-celeriac")
    assert done.returncode != 0 and "no such group: 'no-such-group-celeriac'" in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root may switch users")
def test_switching_user_needs_root(project: Path) -> None:
    done = detach(project, "--uid", "0")
    assert done.returncode != 0 and "can only switch user when" in done.stderr


def test_bad_umask_is_a_clear_error(project: Path) -> None:
    done = detach(project, "--umask", "9x")
    assert done.returncode != 0 and "--umask must be an octal number" in done.stderr


def test_executable_runs_the_daemon_under_another_interpreter(project: Path) -> None:
    wrapper = project / "python-wrapper"
    marker = project / "wrapper-used"
    wrapper.write_text(f'#!/bin/sh\ntouch {marker}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    done = detach(
        project, "-n", "d4@%h", "--pidfile=d4.pid", "--logfile=d4.log", f"--executable={wrapper}"
    )
    assert done.returncode == 0, done.stderr
    assert marker.exists()
    pid = read_pid(str(project / "d4.pid"))
    assert pid is not None and pid_is_alive(pid)
    assert send_add(project, 1, 1) == "2"
    os.kill(pid, signal.SIGTERM)
    assert wait_gone(pid) and not (project / "d4.pid").exists()
