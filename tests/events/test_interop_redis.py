"""Events between the real Celery and celeriac on Redis (database 1, own key prefix).

``celery events --dump`` (Celery's own monitor) must show a celeriac worker's task events,
and celeriac's ``app.events.Receiver`` must see a Celery worker's. Both sides use one
``global_keyprefix`` (deleted afterwards), so the event channel is
``<prefix>/1.celeryev/<routing key>`` for both.
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

CELERY_PROJECT = """
import os

import celery

URL = os.environ["EV_URL"]
app = celery.Celery("proj", broker=URL, backend=URL)
app.conf.broker_transport_options = {"global_keyprefix": os.environ["EV_PREFIX"]}
app.conf.result_backend_transport_options = {"global_keyprefix": os.environ["EV_PREFIX"]}
app.conf.task_default_queue = os.environ["EV_QUEUE"]
app.conf.broker_connection_retry_on_startup = True


@app.task(name="proj.add")
def add(x, y):
    return x + y
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    prefix = f"evi-{uuid.uuid4().hex[:8]}:"
    env = {"EV_URL": REDIS_URL, "EV_PREFIX": prefix, "EV_QUEUE": f"evi-{uuid.uuid4().hex[:8]}"}
    project = make_project(tmp_path, env)
    write_module(tmp_path, "cproj", CELERY_PROJECT)
    yield project
    delete_prefixed(REDIS_URL, prefix)


def test_celery_events_dump_sees_a_celeriac_worker(project: Project) -> None:
    dump = project.process(sys.executable, "-m", "celery", "-A", "cproj", "events", "--dump")
    with dump:
        project.wait_listening(dump, is_ping)
        with project.worker("-E", "-P", "threads", "-n", "interop@%h"):
            task_id = project.python(
                "from proj import add; r = add.delay(2, 3); r.get(timeout=20); print(r.id)"
            )
            line = dump.wait_for(lambda text: "task succeeded" in text and task_id in text)
    assert line.startswith("interop@")
    assert f"proj.add({task_id}) args=(2, 3) kwargs={{}}" in line
    assert "result=5" in line
    assert any("task received" in text and task_id in text for text in dump.lines)
    assert any("task started" in text and task_id in text for text in dump.lines)


def test_celeriac_receiver_sees_a_celery_worker(project: Project) -> None:
    worker = project.process(
        sys.executable, "-m", "celery", "-A", "cproj", "worker", "-P", "solo", "-E",
        "-l", "info", "-n", f"real-{uuid.uuid4().hex[:6]}@%h", "--without-mingle",
        "--without-gossip",
    )  # fmt: skip
    with project.monitor() as monitor:
        project.wait_listening(monitor, is_ping)
        with worker:
            worker.wait_for(lambda text: " ready." in text, timeout=30)
            task_id = project.python(
                "from proj import add; r = add.delay(4, 5); print(r.get(timeout=20) and r.id)"
            )
            monitor.wait_event(lambda e: e["type"] == "task-succeeded" and e["uuid"] == task_id)
            online = monitor.wait_event(
                lambda e: e["type"] in ("worker-online", "worker-heartbeat")
            )
    events = monitor.of_task(task_id)
    assert [event["type"] for event in events] == [
        "task-received",
        "task-started",
        "task-succeeded",
    ]
    assert events[0]["name"] == "proj.add" and events[0]["args"] == "(4, 5)"
    assert events[-1]["result"] == "9"
    assert events[-1]["hostname"].startswith("real-")
    assert online["sw_ident"] == "py-celery"
