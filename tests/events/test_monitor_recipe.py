"""Celery's real-time monitoring recipe, as its guide writes it, with celery -> celeriac.

    with app.connection() as connection:
        recv = app.events.Receiver(connection, handlers={...})
        recv.capture(limit=None, timeout=None, wakeup=True)

Run as a separate process against a real ``-E`` worker, on SQLite and on Redis.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.events.support import Project, is_ping, project_on
from tests.helpers import write_module

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
    with project_on(request.param, tmp_path) as project:
        write_module(tmp_path, "recipe", RECIPE)
        yield project


def test_the_guides_monitor_announces_a_failed_task(project: Project) -> None:
    with project.process(sys.executable, "recipe.py", "60") as monitor:
        project.wait_listening(monitor, is_ping)
        with project.worker("-E", "-P", "threads", "-c", "1"):
            task_id = project.python("from proj import boom; print(boom.delay().id)")
            line = monitor.wait_for(lambda text: f"TASK FAILED: proj.boom[{task_id}]" in text)
    assert "TASK FAILED" in line
