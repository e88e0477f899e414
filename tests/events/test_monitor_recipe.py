"""Celery's real-time monitoring recipe, as its guide writes it, with celery -> celeriac.

    with app.connection() as connection:
        recv = app.events.Receiver(connection, handlers={...})
        recv.capture(limit=None, timeout=None, wakeup=True)

Run as a separate process against a real ``-E`` worker, on SQLite and on Redis.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers.test_conformance_redis import delete_prefixed
from tests.events.support import Project, is_ping, make_project
from tests.helpers import write_module

REDIS_URL = "redis://127.0.0.1:6379/1"

RECIPE = """
import sys

from proj import app


def my_monitor(app):
    state = app.events.State()

    def announce_failed_tasks(event):
        state.event(event)
        task = state.tasks.get(event["uuid"])
        print(f"TASK FAILED: {task.name}[{task.uuid}] {task.info()}", flush=True)

    def show_pings(event):
        state.event(event)
        if event["type"] == "custom-ping":
            print("custom ping", flush=True)

    with app.connection() as connection:
        recv = app.events.Receiver(
            connection,
            handlers={"task-failed": announce_failed_tasks, "*": show_pings},
        )
        try:
            recv.capture(limit=None, timeout=float(sys.argv[1]), wakeup=True)
        except TimeoutError:
            pass


if __name__ == "__main__":
    my_monitor(app)
"""


@pytest.fixture(params=["sqlite", "redis"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    env = {"EV_QUEUE": f"ev-{uuid.uuid4().hex[:8]}"}
    prefix = f"ev-{uuid.uuid4().hex[:8]}:"
    if request.param == "redis":
        env.update(EV_URL=REDIS_URL, EV_PREFIX=prefix)
    built = make_project(tmp_path, env)
    write_module(tmp_path, "recipe", RECIPE)
    yield built
    if request.param == "redis":
        delete_prefixed(REDIS_URL, prefix)


def test_the_guides_monitor_announces_a_failed_task(project: Project) -> None:
    with project.process(sys.executable, "recipe.py", "60") as monitor:
        project.wait_listening(monitor, is_ping)
        with project.worker("-E", "-P", "threads", "-c", "1"):
            task_id = project.python("from proj import boom; print(boom.delay().id)")
            line = monitor.wait_for(lambda text: f"TASK FAILED: proj.boom[{task_id}]" in text)
    assert "TASK FAILED" in line
