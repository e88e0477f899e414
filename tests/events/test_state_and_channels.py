"""The pieces under the process tests: Redis event channels and the cluster State.

The Redis checks use database 1 under a key prefix of their own (deleted afterwards) and
look at the raw pub/sub channel names, which Celery's monitors subscribe to by pattern.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from celeriac import Celery
from celeriac.brokers.redis import RedisBroker
from celeriac.events.event import event_message, events_from_message
from tests.brokers.test_conformance_redis import delete_prefixed

REDIS_URL = "redis://127.0.0.1:6379/1"


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"evs-{uuid.uuid4().hex[:8]}:"
    yield prefix
    delete_prefixed(REDIS_URL, prefix)


def _message(type_: str) -> object:
    return event_message({"type": type_, "hostname": "a@b"}, hostname="a@b", serializer="json")


def test_redis_publishes_on_kombus_channel_and_subscribes_by_pattern(prefix: str) -> None:
    broker = RedisBroker(REDIS_URL, options={"global_keyprefix": prefix})
    raw = redis.Redis.from_url(REDIS_URL).pubsub()
    raw.psubscribe(f"{prefix}/1.celeryev/*")
    try:
        with (
            broker.fanout_subscribe("celeryev", "celeryev.all", binding_key="#") as every,
            broker.fanout_subscribe("celeryev", "celeryev.w", binding_key="worker.#") as workers,
        ):
            broker.fanout_publish(
                "celeryev", _message("task-succeeded"), routing_key="task.succeeded"
            )  # type: ignore[arg-type]
            broker.fanout_publish(
                "celeryev", _message("worker-heartbeat"), routing_key="worker.heartbeat"
            )  # type: ignore[arg-type]
            got = _drain(every, 2)
            assert [e["type"] for m in got for e in events_from_message(m)] == [
                "task-succeeded",
                "worker-heartbeat",
            ]
            assert [e["type"] for m in _drain(workers, 1) for e in events_from_message(m)] == [
                "worker-heartbeat"
            ]
        channels = _channels(raw, 2)
        assert channels == [
            f"{prefix}/1.celeryev/task.succeeded",
            f"{prefix}/1.celeryev/worker.heartbeat",
        ]
    finally:
        raw.close()
        broker.close()


def _drain(subscription: object, count: int) -> list[object]:
    got: list[object] = []
    deadline = time.monotonic() + 5
    while len(got) < count and time.monotonic() < deadline:
        got += subscription.get(0.2)  # type: ignore[attr-defined]
    return got


def _channels(pubsub: object, count: int) -> list[str]:
    found: list[str] = []
    deadline = time.monotonic() + 5
    while len(found) < count and time.monotonic() < deadline:
        reply = pubsub.get_message(timeout=0.2)  # type: ignore[attr-defined]
        if reply and reply["type"] == "pmessage":
            found.append(reply["channel"].decode())
    return found


def test_state_follows_tasks_and_workers() -> None:
    state = Celery("s", broker="memory://", set_as_current=False).events.State()
    now = time.time()
    state.event({"type": "worker-online", "hostname": "w@h", "freq": 2.0, "timestamp": now})
    for offset, type_, fields in [
        (0.1, "task-received", {"name": "t.add", "args": "(1, 2)"}),
        (0.2, "task-started", {}),
        (0.3, "task-succeeded", {"result": "3", "runtime": 0.01}),
        (0.4, "task-received", {}),  # late: must not undo the result
    ]:
        state.event(
            {"type": type_, "uuid": "id1", "hostname": "w@h", "timestamp": now + offset, **fields}
        )
    task = state.tasks["id1"]
    assert task.state == "SUCCESS" and task.result == "3" and task.name == "t.add"
    assert task.worker is not None and task.worker.hostname == "w@h"
    assert state.task_types() == ["t.add"]
    assert [uuid for uuid, _ in state.tasks_by_type("t.add")] == ["id1"]
    assert [worker.hostname for worker in state.alive_workers()] == ["w@h"]
    state.event({"type": "worker-offline", "hostname": "w@h", "timestamp": now + 1})
    assert state.alive_workers() == []
    assert state.event_count == 6 and state.task_count == 1
