"""``inspect``, ``control`` and ``status`` against real workers, on SQLite and on Redis.

Each test writes ``ctl.py`` into its temporary directory and starts ``celeriac worker``
processes from the command line. On SQLite the broker is the embedded file in that
directory; on Redis it is database 6 under a key prefix of the test's own (deleted after).
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.brokers.test_conformance_redis import delete_prefixed
from tests.helpers import WorkerProcess, run_cli, run_python, write_module

REDIS_URL = "redis://127.0.0.1:6379/6"
HOST = socket.gethostname()

TASKS = """
import os
import time

from celeriac import Celery

URL = os.environ.get("CTL_URL") or None
app = Celery("ctl", broker=URL, backend=URL)
if URL:
    options = {"global_keyprefix": os.environ["CTL_PREFIX"]}
    app.conf.broker_transport_options = options
    app.conf.result_backend_transport_options = options
app.conf.task_default_queue = os.environ["CTL_QUEUE"]


@app.task
def add(x, y):
    return x + y


@app.task
def sleepy(seconds):
    time.sleep(seconds)
    return seconds
"""


@dataclass
class Project:
    path: Path
    env: dict[str, str]
    queue: str

    def cli(self, *args: str, timeout: float = 30.0) -> tuple[int, str, str]:
        done = run_cli(["-A", "ctl", *args], self.path, env=self.env, timeout=timeout)
        return done.returncode, done.stdout, done.stderr

    def python(self, code: str) -> str:
        prelude = "import os\n" + "".join(
            f"os.environ[{k!r}] = {v!r}\n" for k, v in self.env.items()
        )
        return run_python(self.path, prelude + code).strip()

    def worker(self, name: str, *args: str) -> WorkerProcess:
        return WorkerProcess("ctl", self.path, "-n", f"{name}@%h", *args, env=self.env)


@pytest.fixture(params=["sqlite", "redis"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    write_module(tmp_path, "ctl", TASKS)
    queue = f"ctl-{uuid.uuid4().hex[:8]}"
    env = {"CTL_QUEUE": queue}
    if request.param == "redis":
        prefix = f"ctl-{uuid.uuid4().hex[:8]}:"
        env.update(CTL_URL=REDIS_URL, CTL_PREFIX=prefix)
        yield Project(tmp_path, env, queue)
        delete_prefixed(REDIS_URL, prefix)
    else:
        yield Project(tmp_path, env, queue)


def test_ping_status_and_every_inspect_command(project: Project) -> None:
    with project.worker("one", "-P", "threads", "-c", "2") as worker:
        node = f"one@{HOST}"
        code, out, _ = project.cli("inspect", "ping")
        assert code == 0
        assert out == f"->  {node}: OK\n        pong\n\n1 node online.\n"
        code, out, _ = project.cli("status")
        assert (code, out) == (0, f"->  {node}: OK\n\n1 node online.\n")
        replies = {}
        for command in ("active", "reserved", "scheduled", "registered", "revoked", "stats"):
            code, out, err = project.cli("inspect", command, "-j")
            assert code == 0, err
            replies[command] = json.loads(out)[node]
        assert replies["active"] == replies["reserved"] == replies["scheduled"] == []
        assert replies["revoked"] == []
        assert "ctl.add" in replies["registered"] and "ctl.sleepy" in replies["registered"]
        stats = replies["stats"]
        assert stats["pid"] == worker.pid and stats["pool"]["max-concurrency"] == 2
        assert set(stats) >= {"total", "rusage", "broker", "prefetch_count", "uptime"}
        code, out, _ = project.cli("inspect", "active_queues", "-j")
        assert [queue["name"] for queue in json.loads(out)[node]] == [project.queue]
        code, out, _ = project.cli("inspect", "registered")
        assert f"->  {node}: OK\n    * ctl.add\n    * ctl.sleepy\n" in out
        code, out, _ = project.cli("inspect", "query_task", "nope", "-j")
        assert json.loads(out) == {node: {}}
        code, out, _ = project.cli("inspect", "conf", "-j")
        assert json.loads(out)[node]["task_default_queue"] == project.queue


def test_active_reserved_query_and_stats_totals(project: Project) -> None:
    with project.worker("one", "-P", "threads", "-c", "1"):
        out = project.python(
            "import time, json\n"
            "from ctl import app, add, sleepy\n"
            "running, waiting = sleepy.delay(6), sleepy.delay(0)\n"
            "for _ in range(50):\n"
            "    active = app.control.inspect().active() or {}\n"
            "    if any(active.values()): break\n"
            "    time.sleep(0.1)\n"
            "reserved = app.control.inspect().reserved()\n"
            "query = app.control.inspect().query_task(running.id, waiting.id)\n"
            "running.get(timeout=20); waiting.get(timeout=20)\n"
            "stats = app.control.inspect().stats()\n"
            "print(json.dumps([running.id, waiting.id, active, reserved, query, stats]))\n"
        )
    running, waiting, active, reserved, query, stats = json.loads(out)
    [(node, [info])] = active.items()
    assert info["id"] == running and info["name"] == "ctl.sleepy" and info["args"] == [6]
    assert info["time_start"] > 0 and info["delivery_info"]["routing_key"] == project.queue
    assert [item["id"] for item in reserved[node]] == [waiting]
    assert query[node][running][0] == "active" and query[node][waiting][0] == "reserved"
    assert stats[node]["total"] == {"ctl.sleepy": 2}


def test_control_commands(project: Project) -> None:
    with project.worker("one", "-P", "threads", "-c", "2") as worker:
        node = f"one@{HOST}"
        expected = {
            ("rate_limit", "ctl.add", "10/m"): "new rate limit set successfully",
            ("time_limit", "ctl.add", "10", "20"): "time limits set successfully",
            ("pool_grow", "2"): "pool will grow",
            ("pool_shrink", "1"): "pool will shrink",
            ("add_consumer", "extra"): "add consumer extra",
            ("cancel_consumer", "extra"): "no longer consuming from extra",
            ("revoke", "id-1"): "tasks {'id-1'} flagged as revoked",
        }
        for args, text in expected.items():
            code, out, err = project.cli("control", *args)
            assert (code, out) == (0, f"->  {node}: OK\n        {text}\n"), err
        code, out, _ = project.cli("control", "rate_limit", "ctl.nope", "1/s")
        assert out == f"->  {node}: ERROR\n        unknown task\n"
        code, out, _ = project.cli("inspect", "registered", "-j")
        assert "ctl.add [rate_limit=10/m]" in json.loads(out)[node]
        assert project.cli("inspect", "revoked", "-j")[1] == json.dumps({node: ["id-1"]}) + "\n"
        stats = json.loads(project.cli("inspect", "stats", "-j")[1])[node]
        assert stats["pool"]["max-concurrency"] == 3
        worker.wait_for_output("New rate limit for tasks of type ctl.add: 10/m.")


def test_revoke_before_it_runs(project: Project) -> None:
    with project.worker("one", "-P", "threads") as worker:
        out = project.python(
            "import time\n"
            "from ctl import app, add\n"
            "result = add.apply_async((1, 2), countdown=2)\n"
            "replies = app.control.revoke(result.id, reply=True)\n"
            "time.sleep(3)\n"
            "print(result.id, result.state, replies)\n"
        )
        task_id, state, _ = out.split(" ", 2)
        assert state == "REVOKED"
        worker.wait_for_output(f"Discarding revoked task: ctl.add[{task_id}]")
    assert f"ctl.add[{task_id}] succeeded" not in worker.output


def test_terminate_a_running_task_under_prefork(project: Project) -> None:
    with project.worker("one", "-P", "prefork", "-c", "1") as worker:
        out = project.python(
            "import time\n"
            "from ctl import app, sleepy\n"
            "result = sleepy.delay(60)\n"
            "for _ in range(100):\n"
            "    if any((app.control.inspect().active() or {}).values()): break\n"
            "    time.sleep(0.1)\n"
            "result.revoke(terminate=True)\n"
            "try:\n"
            "    result.get(timeout=20)\n"
            "except Exception as exc:\n"
            "    print(result.id, result.state, type(exc).__name__)\n"
        )
        task_id, state, error = out.split()
        assert (state, error) == ("REVOKED", "TaskRevokedError")
        worker.wait_for_output(f"Terminating {task_id} (SIGTERM)")
        # The pool replaced the killed child: the worker keeps working.
        assert project.python("from ctl import add; print(add.delay(2, 3).get(timeout=20))") == "5"


def test_rate_limit_change_takes_effect(project: Project) -> None:
    with project.worker("one", "-P", "threads", "-c", "4"):
        code, _, _ = project.cli("control", "rate_limit", "ctl.add", "30/m")
        assert code == 0
        elapsed = float(
            project.python(
                "import time\n"
                "from ctl import add\n"
                "started = time.monotonic()\n"
                "results = [add.delay(n, n) for n in range(3)]\n"
                "[r.get(timeout=30) for r in results]\n"
                "print(time.monotonic() - started)\n"
            )
        )
    assert elapsed >= 3.0  # 30/m: one every 2 s, so the third waits about 4 s


def test_add_consumer_takes_a_new_queue(project: Project) -> None:
    other = f"{project.queue}-other"
    with project.worker("one", "-P", "threads"):
        code = (
            "import time\n"
            "from ctl import app, add\n"
            f"result = add.apply_async((20, 22), queue={other!r})\n"
            "time.sleep(1.5)\n"
            "before = result.state\n"
            f"app.control.add_consumer({other!r}, reply=True)\n"
            "print(before, result.get(timeout=20))\n"
        )
        assert project.python(code) == "PENDING 42"


def test_shutdown_stops_the_worker(project: Project) -> None:
    worker = project.worker("one", "-P", "threads").start()
    try:
        code, _, err = project.cli("control", "shutdown")
        # As in Celery, a worker told to shut down sends no reply.
        assert code == 69 and "No nodes replied within time constraint" in err
        assert worker.proc is not None and worker.proc.wait(20) == 0
        assert "Got shutdown from remote" in worker.output
    finally:
        worker.kill()


def test_no_reply_within_the_timeout(project: Project) -> None:
    started = time.monotonic()
    code, out, err = project.cli("inspect", "ping", "-t", "0.5")
    assert (code, out) == (69, "")
    assert err == "Error: No nodes replied within time constraint\n"
    assert (
        project.python("from ctl import app; print(app.control.inspect(timeout=0.3).ping())")
        == "None"
    )
    assert time.monotonic() - started < 30


def test_destination_picks_one_of_two_workers(project: Project) -> None:
    with project.worker("one", "-P", "threads"), project.worker("two", "-P", "threads"):
        _code, out, _ = project.cli("inspect", "ping", "-j")
        assert set(json.loads(out)) == {f"one@{HOST}", f"two@{HOST}"}
        _, out, _ = project.cli("inspect", "ping", "-j", "-d", f"two@{HOST}")
        assert json.loads(out) == {f"two@{HOST}": {"ok": "pong"}}
