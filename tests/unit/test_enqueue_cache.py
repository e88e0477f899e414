"""The app remembers each task's resolved calling options between sends.

Whatever changes what a send resolves to (a setting, a route, a task attribute, a calling
option, the worker's name) must be seen by the next send, and the cheap paths (a call
without options, a call without arguments) must build the very message the full path
builds.
"""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery, group, serialization
from celeriac.app import PendingSend
from celeriac.config import Settings
from celeriac.message import Message
from celeriac.protocol import MessageTemplate, build_task_message, parse_task
from celeriac.routing import Queue
from celeriac.serialization import dumps, dumps_empty_call, register
from celeriac.utils.saferepr import saferepr

EMPTY_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def take(app: Celery, queue: str) -> Message:
    """The one message waiting on ``queue``."""
    [delivery] = app.broker.claim([queue], limit=10, timeout=0)
    app.broker.ack([delivery])
    return delivery.message


@pytest.fixture
def noop(memory_app: Celery) -> Any:
    @memory_app.task
    def noop(*args: Any, **kwargs: Any) -> None: ...

    return noop


def test_settings_version_counts_every_write() -> None:
    conf = Settings()
    seen = [conf.version]

    def changed() -> bool:
        seen.append(conf.version)
        return seen[-1] != seen[-2]

    conf.task_default_queue = "a"
    assert changed()
    conf["task_serializer"] = "pickle"
    assert changed()
    conf.update(task_default_priority=3)
    assert changed()
    del conf.task_default_queue
    assert changed()
    conf.add_defaults({"task_default_queue": "b"})
    assert changed()
    conf.popitem()
    assert changed()
    conf.clear()
    assert changed()
    _ = conf.task_routes, conf.task_default_queue
    assert not changed()


def test_a_setting_changed_after_sends_applies_to_the_next(memory_app: Celery, noop: Any) -> None:
    noop.delay()
    assert take(memory_app, "celery").headers["timelimit"] == [None, None]
    memory_app.conf.task_default_queue = "second"
    memory_app.conf.update(task_time_limit=30, task_serializer="pickle")
    noop.delay()
    message = take(memory_app, "second")
    assert message.headers["timelimit"] == [30, None]
    assert message.content_type == "application/x-python-serialize"
    memory_app.conf.task_default_priority = 7
    noop.delay()
    assert take(memory_app, "second").properties["priority"] == 7


def test_task_routes_and_queues_changed_after_sends(memory_app: Celery, noop: Any) -> None:
    noop.delay()
    take(memory_app, "celery")
    memory_app.conf.task_routes = {noop.name: {"queue": "routed", "priority": 2}}
    noop.delay()
    assert take(memory_app, "routed").properties["priority"] == 2
    memory_app.conf.task_routes = None
    memory_app.conf.task_queues = [Queue("only")]
    memory_app.conf.task_create_missing_queues = False
    with pytest.raises(Exception, match="missing from task_queues"):
        noop.delay()


def test_a_task_attribute_changed_after_sends(memory_app: Celery, noop: Any) -> None:
    noop.delay()
    take(memory_app, "celery")
    noop.queue, noop.priority, noop.soft_time_limit = "own", 4, 5
    noop.delay()
    message = take(memory_app, "own")
    assert message.properties["priority"] == 4
    assert message.headers["timelimit"] == [None, 5]
    noop.expires = 60
    noop.delay()
    assert take(memory_app, "own").headers["expires"] is not None


def test_call_options_do_not_leak_into_plain_calls(memory_app: Celery, noop: Any) -> None:
    noop.apply_async(queue="other", priority=9, serializer="pickle", delivery_mode=1)
    message = take(memory_app, "other")
    assert message.properties["priority"] == 9
    assert message.properties["delivery_mode"] == 1
    assert message.content_type == "application/x-python-serialize"
    noop.delay()
    message = take(memory_app, "celery")
    assert "priority" not in message.properties
    assert message.properties["delivery_mode"] == 2
    assert message.content_type == "application/json"


def test_delivery_mode_none_is_not_the_setting(memory_app: Celery, noop: Any) -> None:
    memory_app.conf.task_default_delivery_mode = "transient"
    noop.delay()
    assert take(memory_app, "celery").properties["delivery_mode"] == 1
    noop.apply_async(delivery_mode=None)  # as before: None means persistent
    assert take(memory_app, "celery").properties["delivery_mode"] == 2


def test_unhashable_options_and_argument_routers(memory_app: Celery, noop: Any) -> None:
    noop.apply_async(queue=Queue("q1", queue_arguments={"x-max-priority": 10}))
    take(memory_app, "q1")

    def by_argument(name: str, args: Any, kwargs: Any, options: Any, **_: Any) -> Any:
        return {"queue": f"q{args[0]}"} if args else None

    memory_app.conf.task_routes = [by_argument]
    noop.delay(2)
    noop.delay(3)
    take(memory_app, "q2")
    take(memory_app, "q3")


def test_eager_setting_changed_after_sends(memory_app: Celery, noop: Any) -> None:
    noop.delay()
    take(memory_app, "celery")
    memory_app.conf.task_always_eager = True
    assert noop.delay().successful()
    assert memory_app.broker.size("celery") == 0


def test_the_worker_name_becomes_the_origin(memory_app: Celery, noop: Any) -> None:
    noop.delay()
    assert take(memory_app, "celery").headers["origin"].startswith("gen")
    memory_app._worker_hostname = "w1@host"  # type: ignore[attr-defined]
    noop.delay()
    assert take(memory_app, "celery").headers["origin"] == "w1@host"


def test_bulk_sends_share_resolution_but_not_options(memory_app: Celery, noop: Any) -> None:
    sends = [
        PendingSend(noop.name, (i,), {}, f"id-{i}", {"priority": i % 2 or None}) for i in range(4)
    ]
    memory_app.send_tasks(sends)
    deliveries = memory_app.broker.claim(["celery"], limit=10, timeout=0)
    priorities = {d.message.headers["id"]: d.message.properties.get("priority") for d in deliveries}
    assert priorities == {"id-0": None, "id-1": 1, "id-2": None, "id-3": 1}
    result = group(noop.s(i) for i in range(3)).apply_async()
    members = memory_app.broker.claim(["celery"], limit=10, timeout=0)
    assert sorted(m.message.headers["group_index"] for m in members) == [0, 1, 2]
    assert {m.message.headers["group"] for m in members} == {result.id}


@pytest.mark.parametrize("args", [(), [], None])
@pytest.mark.parametrize("kwargs", [{}, None])
def test_empty_calls_build_the_same_message(args: Any, kwargs: Any) -> None:
    template = MessageTemplate(name="t.noop", origin="gen1@h")
    built = template.build("id-1", args, kwargs, reply_to="r")
    body, content_type, encoding = dumps([[], {}, EMPTY_EMBED], "json")
    assert (built.body, built.content_type, built.content_encoding) == (
        body,
        content_type,
        encoding,
    )
    assert built.headers["argsrepr"] == saferepr(()) == "()"
    assert built.headers["kwargsrepr"] == saferepr({}) == "{}"
    full = build_task_message(name="t.noop", task_id="id-1", origin="gen1@h", reply_to="r")
    assert (built.body, built.headers, built.properties) == (
        full.body,
        full.headers,
        full.properties,
    )


def test_empty_workflow_values_are_not_taken_for_none() -> None:
    message = build_task_message(name="t", task_id="i", callbacks=[], chord={})
    embed = {"callbacks": [], "errbacks": None, "chain": None, "chord": {}}
    assert message.body == dumps([[], {}, embed], "json")[0]
    assert parse_task(message).decode_body(None)[2]["callbacks"] == []


def test_the_empty_body_follows_a_codec_registered_later(monkeypatch: pytest.MonkeyPatch) -> None:
    for table in ("_BY_NAME", "_BY_CONTENT_TYPE"):  # the test's codec stays in the test
        monkeypatch.setattr(serialization, table, dict(getattr(serialization, table)))
    assert dumps_empty_call("json")[0].startswith(b"[[]")
    register("upper-test", lambda obj: repr(obj).upper(), lambda data: data, "x/upper-test")
    first = dumps_empty_call("upper-test")
    register("upper-test", lambda obj: "other", lambda data: data, "x/upper-test")
    assert dumps_empty_call("upper-test")[0] == b"other" != first[0]
