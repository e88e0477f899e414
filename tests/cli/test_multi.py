"""``celeriac multi``: real detached nodes sharing a broker (the embedded SQLite file, or Redis)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac.cli.multi import build_nodes, parse_args
from celeriac.worker.daemon import pid_is_alive, read_pid
from tests.broker_choice import BROKERS, on_broker
from tests.cli.test_detach import TASKS, kill_pidfile_owners, send_add, wait_for_text
from tests.helpers import run_cli, write_module

HOST = socket.gethostname()


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


def multi(project: Path, *args: str) -> tuple[int, str, str]:
    done = run_cli(["multi", *args], project, timeout=120)
    return done.returncode, done.stdout, done.stderr


def pids(project: Path, *names: str) -> list[int]:
    found = [read_pid(str(project / f"{name}.pid")) for name in names]
    assert None not in found, f"missing pidfile among {names}"
    return [pid for pid in found if pid is not None]


def test_start_show_tasks_stopwait(project: Path) -> None:
    code, out, err = multi(project, "start", "w1", "w2", "-A", "tasks", "-l", "INFO")
    assert code == 0, out + err
    assert out.startswith("celeriac multi v")
    assert "> Starting nodes...\n" in out
    assert f"\t> w1@{HOST}: OK\n" in out and f"\t> w2@{HOST}: OK\n" in out
    started = pids(project, "w1", "w2")
    assert all(pid_is_alive(pid) for pid in started)
    for name in ("w1", "w2"):
        wait_for_text(project / f"{name}.log", f"{name}@{HOST} ready.")
    assert [send_add(project, n, n) for n in range(4)] == ["0", "2", "4", "6"]

    code, out, _ = multi(project, "show", "w1", "w2", "-A", "tasks", "-l", "INFO")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert " -A tasks worker --detach -n w1@" in lines[0] and "--pidfile=w1.pid" in lines[0]
    assert "--logfile=w2%I.log" in lines[1] and lines[1].endswith("-l INFO")

    code, out, err = multi(project, "stopwait", "w1", "w2", "-A", "tasks", "-l", "INFO")
    assert code == 0, out + err
    assert "> Stopping nodes...\n" in out
    assert f"\t> w1@{HOST}: TERM -> {started[0]}\n" in out
    assert f"> Waiting for 2 nodes -> {started[0]}, {started[1]}\n" in out
    assert f"\t> w1@{HOST}: OK\n" in out and f"\t> w2@{HOST}: OK\n" in out
    assert not any(pid_is_alive(pid) for pid in started)
    assert not (project / "w1.pid").exists() and not (project / "w2.pid").exists()


def test_stop_sends_term_and_reports_down_nodes(project: Path) -> None:
    code, out, err = multi(project, "start", "w1", "-A", "tasks")
    assert code == 0, out + err
    [pid] = pids(project, "w1")
    code, out, _ = multi(project, "stop", "w1", "w2", "-A", "tasks")
    assert code == 0
    assert f"\t> w1@{HOST}: TERM -> {pid}\n" in out and f"\t> w2@{HOST}: DOWN\n" in out
    deadline = time.monotonic() + 20
    while pid_is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_is_alive(pid)


def test_number_form_and_kill(project: Path) -> None:
    code, out, err = multi(project, "start", "2", "-A", "tasks", "-c", "1")
    assert code == 0, out + err
    assert f"\t> celery1@{HOST}: OK\n" in out and f"\t> celery2@{HOST}: OK\n" in out
    started = pids(project, "celery1", "celery2")
    code, out, _ = multi(project, "kill", "2")
    assert code == 0
    assert f"\t> celery2@{HOST}: KILL -> {started[1]}\n" in out
    deadline = time.monotonic() + 20
    while any(pid_is_alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(pid_is_alive(pid) for pid in started)
    assert not list(project.glob("*.pid"))


def test_restart_replaces_the_processes(project: Path) -> None:
    assert multi(project, "start", "w1", "-A", "tasks")[0] == 0
    [before] = pids(project, "w1")
    code, out, err = multi(project, "restart", "w1", "-A", "tasks")
    assert code == 0, out + err
    [after] = pids(project, "w1")
    assert after != before and not pid_is_alive(before) and pid_is_alive(after)
    assert send_add(project, 20, 22) == "42"


def test_a_second_start_fails_while_the_node_runs(project: Path) -> None:
    assert multi(project, "start", "w1", "-A", "tasks")[0] == 0
    [pid] = pids(project, "w1")
    code, out, _ = multi(project, "start", "w1", "-A", "tasks")
    assert code == 1
    assert f"Seems we're already running? (pid: {pid})" in out and "FAILED" in out


def test_per_node_options_in_show(project: Path) -> None:
    _, out, _ = multi(project, "show", "w1", "w2", "-A", "tasks", "-c:w1", "3")
    w1, w2 = out.splitlines()
    assert w1.endswith(" -c 3") and " -c " not in w2
    _, out, _ = multi(project, "show", "3", "-c", "2", "-c:1-2", "5", "-Q:3", "slow")
    one, two, three = out.splitlines()
    assert " -n celery1@" in one and one.endswith("-c 5")
    assert two.endswith("-c 5") and three.endswith("-c 2 -Q slow")


def test_names_expand_get(project: Path) -> None:
    assert multi(project, "names", "3")[1].split() == [f"celery{n}@{HOST}" for n in (1, 2, 3)]
    assert multi(project, "expand", "%n.pid", "w1", "w2")[1].split() == ["w1.pid", "w2.pid"]
    code, out, _ = multi(project, "get", "w2", "w1", "w2", "-A", "tasks")
    assert code == 0 and f"-n w2@{HOST}" in out and len(out.splitlines()) == 1


def test_unknown_subcommand_lists_the_valid_ones(project: Path) -> None:
    code, _, err = multi(project, "satrt", "w1", "w2", "-A", "tasks", "-l", "INFO")
    assert code != 0
    assert "Unknown multi command 'satrt'. Did you mean 'start'?" in err
    assert "start, stop, stopwait, restart, kill, show, names, expand, get, help" in err


def test_parse_args_forms() -> None:
    parsed = parse_args(
        ["w1", "w2", "-A", "proj", "-lINFO", "--logfile=/var/log/%n%I.log", "-Q:w2", "q1,q2"]
    )
    assert parsed.names == ["w1", "w2"]
    w1, w2 = build_nodes(parsed, {})
    assert w1.argv[3:] == [
        "-A", "proj", "worker", "--detach", "-n", f"w1@{HOST}", "--pidfile=w1.pid",
        "--logfile=/var/log/w1%I.log", "-l", "INFO",
    ]  # fmt: skip
    assert w2.argv[-2:] == ["-Q", "q1,q2"] and w2.pidfile == "w2.pid"


def test_range_prefix_and_hostname() -> None:
    parsed = parse_args(["2", "--range-prefix=worker", "--hostname=example.com"])
    assert [node.name for node in build_nodes(parsed, {})] == [
        "worker1@example.com",
        "worker2@example.com",
    ]


@pytest.mark.parametrize("project", BROKERS, indirect=True)
def test_start_ping_stopwait_leaves_no_process(project: Path) -> None:
    code, out, err = multi(project, "start", "p1", "p2", "-A", "tasks", "-c", "1", "-l", "INFO")
    assert code == 0, out + err
    started = pids(project, "p1", "p2")
    for name in ("p1", "p2"):
        wait_for_text(project / f"{name}.log", f"{name}@{HOST} ready.")
    done = run_cli(["-A", "tasks", "inspect", "ping", "-t", "2"], project)
    assert done.returncode == 0, done.stderr
    assert f"->  p1@{HOST}: OK\n        pong\n" in done.stdout
    assert f"->  p2@{HOST}: OK\n        pong\n" in done.stdout
    assert "2 nodes online." in done.stdout
    stats = run_cli(["-A", "tasks", "inspect", "stats", "-j", "-t", "2"], project)
    children = [
        pid for node in json.loads(stats.stdout).values() for pid in node["pool"]["processes"]
    ]
    assert len(children) == 2
    code, out, err = multi(project, "stopwait", "p1", "p2", "-A", "tasks", "-c", "1", "-l", "INFO")
    assert code == 0, out + err
    assert not [pid for pid in [*started, *children] if pid_is_alive(pid)]
