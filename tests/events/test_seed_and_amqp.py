"""The tutorials' worker command with events, and events on RabbitMQ.

The seed command is the one our users' tutorials start workers with (gevent pool, task
events, a named queue), run on the embedded SQLite broker of the test's directory. The
RabbitMQ test runs in a virtual host of its own (deleted afterwards): ``celeryev`` is a
topic exchange there and the monitor's queue ``celeryev.<id>`` is bound with ``#``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.amqp.rabbit import delete_vhost, new_vhost, url_for
from tests.events.support import Project, is_ping, make_project
from tests.helpers import WorkerProcess


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Project:
    return make_project(tmp_path, {})


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    name = new_vhost("events")
    yield name
    delete_vhost(name)


def test_seed_command_starts_and_runs_a_task(sqlite_project: Project) -> None:
    project = sqlite_project
    with project.monitor() as monitor:
        project.wait_listening(monitor, is_ping)
        worker = WorkerProcess(
            "proj", project.path, "-P", "gevent", "-c", "4", "-E", "-Q", "primary_queue"
        )
        with worker:
            task_id = project.python(
                "from proj import add\n"
                "r = add.apply_async((20, 22), queue='primary_queue')\n"
                "assert r.get(timeout=20) == 42\n"
                "print(r.id)"
            )
            monitor.wait_event(lambda e: e["type"] == "task-succeeded" and e["uuid"] == task_id)
        assert "task events: ON" in worker.output
    types = [event["type"] for event in monitor.of_task(task_id)]
    assert types == ["task-received", "task-started", "task-succeeded"]


def test_task_and_worker_events_on_rabbitmq(tmp_path: Path, vhost: str) -> None:
    project = make_project(tmp_path, {"EV_URL": url_for(vhost), "EV_BACKEND": "", "EV_QUEUE": "ev"})
    dump = project.process(sys.executable, "-m", "celeriac", "-A", "proj", "events", "--dump")
    with project.monitor() as monitor, dump:
        project.wait_listening(monitor, is_ping)
        project.wait_listening(dump, is_ping)
        with project.worker("-E", "-P", "threads", "--heartbeat-interval", "0.5", "-n", "rab@%h"):
            task_id = project.python("from proj import add; print(add.delay(2, 3).id)")
            monitor.wait_event(lambda e: e["type"] == "task-succeeded" and e["uuid"] == task_id)
            monitor.wait_count("worker-heartbeat", 1)
            dump.wait_for(lambda text: "task succeeded" in text and task_id in text)
        monitor.wait_event(lambda e: e["type"] == "worker-offline")
    events = monitor.of_task(task_id)
    assert [event["type"] for event in events] == [
        "task-received",
        "task-started",
        "task-succeeded",
    ]
    assert events[0]["args"] == "(2, 3)" and events[-1]["result"] == "5"
    assert events[-1]["hostname"].startswith("rab@")
