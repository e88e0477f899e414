"""Task and worker events from real ``celeriac worker -E`` processes, on SQLite and on Redis.

A monitor process (``app.events.Receiver``) prints what it receives; each test checks the
events of its tasks: their order, their fields (Celery's names), and the worker's own
``worker-online``/``worker-heartbeat``/``worker-offline``. On Redis the tests use database
1 under a key prefix of their own, deleted afterwards.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.events.support import Project, is_ping, project_on

STANDARD_FIELDS = {"type", "hostname", "timestamp", "utcoffset", "pid", "clock"}


@pytest.fixture(params=["sqlite", "redis"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    with project_on(request.param, tmp_path) as project:
        yield project


def _types(events: list[dict[str, object]]) -> list[object]:
    return [event["type"] for event in events]


def test_task_events_arrive_in_order_with_celerys_fields(project: Project) -> None:
    with project.monitor() as monitor:
        project.wait_listening(monitor, is_ping)
        with project.worker("-E", "-P", "threads", "-c", "2", "-n", "ev1@%h"):
            task_id = project.python("from proj import add; print(add.delay(2, 3).id)")
            monitor.wait_event(lambda e: e["type"] == "task-succeeded" and e["uuid"] == task_id)
    events = monitor.of_task(task_id)
    assert _types(events) == ["task-received", "task-started", "task-succeeded"]
    received, started, succeeded = events
    assert received["clock"] < started["clock"] < succeeded["clock"]
    for event in events:
        assert set(event) >= STANDARD_FIELDS, event
        assert event["hostname"].startswith("ev1@")
    assert received["name"] == "proj.add"
    assert received["args"] == "(2, 3)" and received["kwargs"] == "{}"
    assert received["retries"] == 0 and received["root_id"] == task_id
    assert received["parent_id"] is None and received["eta"] is None
    assert received["expires"] is None
    assert succeeded["result"] == "5"
    assert isinstance(succeeded["runtime"], float) and succeeded["runtime"] >= 0


def test_failed_retried_and_revoked_events(project: Project) -> None:
    with project.monitor() as monitor:
        project.wait_listening(monitor, is_ping)
        with project.worker("-E", "-P", "threads", "-c", "2"):
            ids = project.python(
                "import datetime as dt\n"
                "from proj import app, add, boom, flaky\n"
                "revoked = add.s(1, 1).freeze().id\n"
                "app.control.revoke(revoked)\n"
                "import time\n"
                "deadline = time.monotonic() + 10\n"
                "# Revoke and task travel on separate channels: send the task once the\n"
                "# worker knows the id, as a user revoking a waiting task would see it.\n"
                "while time.monotonic() < deadline:\n"
                "    known = app.control.inspect(timeout=0.5).revoked() or {}\n"
                "    if any(revoked in ids for ids in known.values()):\n"
                "        break\n"
                "past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=30)\n"
                "print(boom.delay().id, flaky.delay().id,\n"
                "      add.apply_async((1, 2), expires=past).id,\n"
                "      add.apply_async((1, 1), task_id=revoked).id)"
            ).split()
            failed_id, retried_id, expired_id, revoked_id = ids
            monitor.wait_event(lambda e: e["type"] == "task-failed" and e["uuid"] == failed_id)
            monitor.wait_event(lambda e: e["type"] == "task-succeeded" and e["uuid"] == retried_id)
            monitor.wait_event(lambda e: e["type"] == "task-revoked" and e["uuid"] == expired_id)
            monitor.wait_event(lambda e: e["type"] == "task-revoked" and e["uuid"] == revoked_id)
    failed = monitor.of_task(failed_id)[-1]
    assert failed["exception"] == "ValueError('boom')"
    assert "ValueError: boom" in failed["traceback"]
    retried = [e for e in monitor.of_task(retried_id) if e["type"] == "task-retried"]
    assert len(retried) == 1
    assert retried[0]["exception"] == "KeyError('again')"
    assert "Retry" in retried[0]["traceback"] or "KeyError" in retried[0]["traceback"]
    assert _types(monitor.of_task(retried_id)).count("task-received") == 2
    expired = monitor.of_task(expired_id)[-1]
    assert expired["expired"] is True and expired["terminated"] is False
    revoked = monitor.of_task(revoked_id)[-1]
    assert revoked["expired"] is False and revoked["signum"] is None


def test_worker_online_heartbeats_offline_and_no_task_events_without_e(project: Project) -> None:
    with project.monitor() as monitor:
        project.wait_listening(monitor, is_ping)
        worker = project.worker("--heartbeat-interval", "0.5", "-P", "threads", "-n", "hb@%h")
        with worker:
            monitor.wait_event(lambda e: e["type"] == "worker-online")
            task_id = project.python(
                "from proj import add; r = add.delay(1, 1); r.get(timeout=20); print(r.id)"
            )
            beats = monitor.wait_count("worker-heartbeat", 2, timeout=10)
        offline = monitor.wait_event(lambda e: e["type"] == "worker-offline")
    online = next(e for e in monitor.events() if e["type"] == "worker-online")
    for event in (online, *beats, offline):
        assert event["hostname"].startswith("hb@")
        assert event["freq"] == 0.5
        assert event["sw_ident"] == "py-celeriac" and event["sw_sys"]
        assert {"active", "processed", "loadavg", "sw_ver"} <= set(event)
    assert offline["processed"] >= 1
    assert monitor.of_task(task_id) == []  # no -E: no task events


def test_enable_and_disable_events_remotely(project: Project) -> None:
    with project.monitor() as monitor:
        project.wait_listening(monitor, is_ping)
        with project.worker("-P", "threads", "-n", "remote@%h"):
            replies = project.python(
                "from proj import app\n"
                "print(app.control.broadcast('enable_events', reply=True, timeout=5))"
            )
            assert "task events enabled" in replies
            on = project.python(
                "from proj import add; r = add.delay(3, 4); r.get(timeout=20); print(r.id)"
            )
            monitor.wait_event(lambda e: e["type"] == "task-succeeded" and e["uuid"] == on)
            replies = project.python(
                "from proj import app\n"
                "print(app.control.broadcast('disable_events', reply=True, timeout=5))"
            )
            assert "task events disabled" in replies
            off = project.python(
                "from proj import add; r = add.delay(5, 6); r.get(timeout=20); print(r.id)"
            )
            # The worker flushes task events before each heartbeat: once a heartbeat sent
            # after the task is in, its events would be too.
            after = time.time() + 0.3
            monitor.wait_event(
                lambda e: e["type"] == "worker-heartbeat" and e["local_received"] > after
            )
    assert monitor.of_task(off) == []


def test_custom_event_from_the_task_and_task_sent(project: Project) -> None:
    with project.monitor() as monitor:
        project.wait_listening(monitor, is_ping)
        with project.worker("-P", "threads"):
            ids = project.python(
                "from proj import app, progress\n"
                "app.conf.task_send_sent_event = True\n"
                "r = progress.delay(); r.get(timeout=20); print(r.id)"
            )
            custom = monitor.wait_event(lambda e: e["type"] == "task-progress")
            sent = monitor.wait_event(lambda e: e["type"] == "task-sent")
    assert custom["uuid"] == ids and custom["current"] == 1 and custom["total"] == 2
    assert custom["hostname"].startswith("celery@")
    assert sent["uuid"] == ids and sent["name"] == "proj.progress"
    assert sent["queue"] == project.env["EV_QUEUE"] and sent["args"] == "()"
    assert sent["hostname"].startswith("gen")


def test_events_dump_shows_a_workers_events(project: Project) -> None:
    dump = project.process(sys.executable, "-m", "celeriac", "-A", "proj", "events", "--dump")
    with dump:
        project.wait_listening(dump, is_ping)
        with project.worker("-E", "-P", "threads", "-n", "dumped@%h"):
            task_id = project.python(
                "from proj import add; r = add.delay(2, 3); r.get(timeout=20); print(r.id)"
            )
            line = dump.wait_for(lambda text: "task succeeded" in text and task_id in text)
        dump.wait_for(lambda text: "shutdown" in text)
    assert dump.lines[0].startswith("-> evdump: starting capture...")
    assert line.startswith("dumped@")
    assert f"task succeeded: proj.add({task_id}) args=(2, 3) kwargs={{}}" in line
    assert "result=5" in line and "runtime=" in line
    received = next(text for text in dump.lines if "task received" in text and task_id in text)
    assert "retries=0" in received
    assert any(text.startswith("dumped@") and "] started:" in text for text in dump.lines)
