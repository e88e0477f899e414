"""Sends on Redis through the remembered calling options: the same envelopes, the right keys.

Shared server: 127.0.0.1:6379, database 10, a fresh ``global_keyprefix`` per test (its keys
are deleted afterwards).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from celeriac import Celery, group
from celeriac.brokers.redis import RedisBroker
from celeriac.protocol import build_task_message
from tests.brokers.test_conformance_redis import URL, delete_prefixed


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"enq-{uuid.uuid4().hex[:10]}:"
    yield prefix
    delete_prefixed(URL, prefix)


@pytest.fixture
def app(prefix: str) -> Iterator[Celery]:
    app = Celery("enq", broker=URL, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    app.conf.task_ignore_result = True
    yield app
    app.close()


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(URL)
    yield client
    client.close()


def envelopes(raw: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(item) for item in reversed(raw.lrange(key, 0, -1))]


def test_delay_sends_the_envelope_of_a_message_built_in_full(
    app: Celery, raw: redis.Redis, prefix: str
) -> None:
    noop = app.task(name="enq.noop")(lambda: None)
    noop.apply_async(task_id="id-1")
    noop.apply_async(task_id="id-2")
    broker = app.broker
    assert isinstance(broker, RedisBroker)
    expected = build_task_message(
        name="enq.noop", task_id="id-2", reply_to=app.thread_oid, ignore_result=True
    )
    [_, sent] = envelopes(raw, prefix + "celery")
    [built] = [json.loads(broker.envelope("celery", expected)[0])]
    for envelope in (sent, built):
        envelope["properties"].pop("delivery_tag")
    assert sent == built


def test_queue_changes_take_effect_between_sends(
    app: Celery, raw: redis.Redis, prefix: str
) -> None:
    noop = app.task(name="enq.noop")(lambda: None)
    noop.delay()
    app.conf.task_default_queue = "enq-second"
    noop.delay()
    group((noop.s() for _ in range(3)), app=app).apply_async()
    app.conf.task_routes = {"enq.*": "enq-third"}
    app.send_task("enq.noop")
    assert raw.llen(prefix + "celery") == 1
    assert raw.llen(prefix + "enq-second") == 4
    assert raw.llen(prefix + "enq-third") == 1
    indexes = [e["headers"]["group_index"] for e in envelopes(raw, prefix + "enq-second")]
    assert indexes == [None, 0, 1, 2]
