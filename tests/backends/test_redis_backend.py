"""RedisBackend beyond the conformance suite: Celery compatibility both ways (raw keys and
values, TTLs, pub/sub wake-ups), waiting across processes and threads, reconnects, the chord
counters, connection errors, options and URL dispatch.

Redis runs on 127.0.0.1:6379; everything happens in DB 12 under a fresh key prefix per test.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import celeriac
from celeriac import states
from celeriac.backends import StoreRequest, backend_for_url
from celeriac.backends import redis as redis_module
from celeriac.backends.base import ChordPart, RecordWrite, replaces
from celeriac.backends.redis import SETTING_OPTIONS, RedisBackend, key_prefix
from celeriac.exceptions import (
    ContentDisallowed,
    ImproperlyConfigured,
    OperationalError,
    TimeoutError,
)
from celeriac.serialization import dumps
from tests.backends.test_conformance_redis import REDIS_URL, delete_prefixed, redis_client

celery = pytest.importorskip("celery")  # a dev dependency: present in every test run
from celery.result import AsyncResult, GroupResult  # noqa: E402

ALL_STATES = sorted(states.ALL_STATES | {"PROGRESS"})


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    client = redis_client()
    yield client
    client.close()


@pytest.fixture
def prefix(raw: redis.Redis) -> Iterator[str]:
    """A fresh global_keyprefix; its keys are deleted after the test."""
    value = f"celeriac-test-{uuid.uuid4().hex[:12]}:"
    yield value
    delete_prefixed(raw, value)


@pytest.fixture
def make(prefix: str) -> Iterator[Any]:
    """Makes RedisBackends on DB 12 under the test's prefix (closed after the test)."""
    made: list[RedisBackend] = []

    def factory(url: str = REDIS_URL, **kwargs: Any) -> RedisBackend:
        options = {"global_keyprefix": prefix, **kwargs.pop("options", {})}
        made.append(RedisBackend(url, options=options, **kwargs))
        return made[-1]

    yield factory
    for backend in made:
        backend.close()


@pytest.fixture
def backend(make: Any) -> RedisBackend:
    backend: RedisBackend = make()
    return backend


@pytest.fixture
def celery_app(prefix: str) -> Iterator[Any]:
    """A real Celery app whose result backend is the same Redis DB and prefix."""
    app = celery.Celery("compat", broker="memory://", backend=REDIS_URL, set_as_current=False)
    app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    yield app
    app.backend.result_consumer.stop()
    app.close()


def new_id() -> str:
    return str(uuid.uuid4())


def child_env() -> dict[str, str]:
    root = str(Path(celeriac.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


# --- key names and the global key prefix -----------------------------------------------------


@pytest.mark.parametrize(
    "global_prefix", [None, "", "app", "app:", "app_", "app-", "app.", "app/", "a:b", "x y"]
)
def test_global_keyprefix_rule_matches_celery(global_prefix: str | None) -> None:
    app = celery.Celery("keys", broker="memory://", backend=REDIS_URL, set_as_current=False)
    options = {} if global_prefix is None else {"global_keyprefix": global_prefix}
    app.conf.result_backend_transport_options = options
    ours = RedisBackend(REDIS_URL, options=options)
    try:
        theirs = app.backend
        assert ours.task_key("t-1").encode() == theirs.get_key_for_task("t-1")
        assert ours.group_key("g-1").encode() == theirs.get_key_for_group("g-1")
        assert ours.group_key("g-1", ".j").encode() == theirs.get_key_for_group("g-1", ".j")
    finally:
        ours.close()
        app.close()


def test_key_prefix_examples() -> None:
    assert key_prefix(None) == key_prefix("") == ""
    assert key_prefix("p") == "p_"
    assert [key_prefix(f"p{end}") for end in ":_-."] == ["p:", "p_", "p-", "p."]


# --- Celery compatibility: celeriac writes, Celery reads -------------------------------------


def test_celery_reads_a_success_stored_by_celeriac(backend: RedisBackend, celery_app: Any) -> None:
    task_id = new_id()
    backend.store_result(task_id, {"answer": [4, 2]}, states.SUCCESS)
    result = AsyncResult(task_id, app=celery_app)
    assert result.get(timeout=5) == {"answer": [4, 2]}
    assert result.state == "SUCCESS"
    assert result.date_done is not None


def test_celery_reads_a_failure_stored_by_celeriac(backend: RedisBackend, celery_app: Any) -> None:
    task_id = new_id()
    backend.store_result(task_id, KeyError("missing"), states.FAILURE, traceback="Traceback x")
    result = AsyncResult(task_id, app=celery_app)
    with pytest.raises(KeyError, match="missing"):
        result.get(timeout=5)
    assert result.state == "FAILURE"
    assert result.traceback == "Traceback x"


def test_celery_get_wakes_on_celeriac_publish(backend: RedisBackend, celery_app: Any) -> None:
    task_id = new_id()
    result = AsyncResult(task_id, app=celery_app)
    timer = threading.Timer(0.3, backend.store_result, (task_id, "late", states.SUCCESS))
    started = time.monotonic()
    timer.start()
    try:
        # Celery's get() subscribes to the key's channel and is woken by our PUBLISH.
        assert result.get(timeout=5, interval=5) == "late"
    finally:
        timer.join()
    assert time.monotonic() - started < 1.5


def test_celery_restores_a_group_saved_by_celeriac(backend: RedisBackend, celery_app: Any) -> None:
    group_id, child = new_id(), new_id()
    backend.save_group(group_id, [[group_id, None], [[[child, None], None]]])
    restored = GroupResult.restore(group_id, app=celery_app)
    assert restored is not None
    assert restored.id == group_id
    assert [r.id for r in restored.results] == [child]


# --- Celery compatibility: Celery writes, celeriac reads -------------------------------------


def test_celeriac_reads_results_stored_by_celery(backend: RedisBackend, celery_app: Any) -> None:
    done, failed = new_id(), new_id()
    celery_app.backend.store_result(done, {"x": [1, 2]}, states.SUCCESS)
    celery_app.backend.mark_as_failure(failed, ValueError("bad", 3), traceback="Trace")
    metas = backend.get_many([done, failed])
    assert (metas[done]["status"], metas[done]["result"]) == ("SUCCESS", {"x": [1, 2]})
    assert metas[done]["date_done"] is not None
    assert type(metas[failed]["result"]) is ValueError
    assert metas[failed]["result"].args == ("bad", 3)
    assert metas[failed]["traceback"] == "Trace"


def test_celeriac_wait_for_wakes_on_celery_publish(backend: RedisBackend, celery_app: Any) -> None:
    task_id = new_id()
    store = threading.Timer(
        0.2, celery_app.backend.store_result, (task_id, "from celery", states.SUCCESS)
    )
    started = time.monotonic()
    store.start()
    try:
        meta = backend.wait_for(task_id, timeout=10, interval=60)
    finally:
        store.join()
    assert meta["result"] == "from celery"
    assert time.monotonic() - started < 1.0


def test_celeriac_restores_a_group_saved_by_celery(backend: RedisBackend, celery_app: Any) -> None:
    group_id, child = new_id(), new_id()
    group = GroupResult(group_id, [AsyncResult(child, app=celery_app)], app=celery_app)
    group.save(backend=celery_app.backend)
    meta = backend.restore_group(group_id)
    assert meta is not None
    assert meta["result"] == [[group_id, None], [[[child, None], None]]]


# --- Celery compatibility: the raw values and TTLs -------------------------------------------


def test_raw_values_match_celerys(backend: RedisBackend, celery_app: Any, raw: Any) -> None:
    ours, theirs = new_id(), new_id()
    request = {"parent_id": "p-1", "group_id": "g-1"}
    backend.store_result(ours, [1, "a"], states.SUCCESS, request=_Request(**request))
    celery_app.backend.store_result(
        theirs, [1, "a"], states.SUCCESS, request=_CeleryRequest(theirs, **request)
    )
    mine = json.loads(raw.get(backend.task_key(ours)))
    celerys = json.loads(raw.get(celery_app.backend.get_key_for_task(theirs)))
    assert set(mine) == set(celerys)
    for field in ("status", "result", "traceback", "children", "parent_id", "group_id"):
        assert mine[field] == celerys[field], field
    assert (mine["task_id"], celerys["task_id"]) == (ours, theirs)
    assert mine["date_done"].endswith("+00:00") and celerys["date_done"].endswith("+00:00")


def test_raw_failure_matches_celerys(backend: RedisBackend, celery_app: Any, raw: Any) -> None:
    ours, theirs = new_id(), new_id()
    backend.store_result(ours, ValueError("bad", 3), states.FAILURE, traceback="T")
    celery_app.backend.mark_as_failure(theirs, ValueError("bad", 3), traceback="T")
    mine = json.loads(raw.get(backend.task_key(ours)))
    celerys = json.loads(raw.get(celery_app.backend.get_key_for_task(theirs)))
    assert mine["result"] == celerys["result"]
    expected = {"exc_type": "ValueError", "exc_message": ["bad", 3], "exc_module": "builtins"}
    assert mine["result"] == expected


@pytest.mark.parametrize("expires", [3600, 86400, None])
def test_ttl_matches_celerys(make: Any, prefix: str, raw: Any, expires: int | None) -> None:
    backend = make(expires=expires)
    app = celery.Celery("ttl", broker="memory://", backend=REDIS_URL, set_as_current=False)
    app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    app.conf.result_expires = expires
    try:
        ours, theirs = new_id(), new_id()
        backend.store_result(ours, 1, states.SUCCESS)
        app.backend.store_result(theirs, 1, states.SUCCESS)
        assert raw.ttl(backend.task_key(ours)) == raw.ttl(app.backend.get_key_for_task(theirs))
        assert raw.ttl(backend.task_key(ours)) == (expires or -1)
    finally:
        app.close()


@pytest.mark.parametrize("expires", [0, None, 120])
def test_ttl_of_results_and_groups(make: Any, raw: Any, expires: int | None) -> None:
    backend = make(expires=expires)
    task_id, group_id = new_id(), new_id()
    backend.store_result(task_id, 1, states.SUCCESS)
    backend.store_results([StoreRequest(task_id + "-b", 2, states.STARTED)])
    backend.save_group(group_id, [[group_id, None], []])
    expected = expires or -1
    assert raw.ttl(backend.task_key(task_id)) == expected
    assert raw.ttl(backend.task_key(task_id + "-b")) == expected
    assert raw.ttl(backend.group_key(group_id)) == expected


def test_celery_does_not_overwrite_celeriacs_success(
    backend: RedisBackend, celery_app: Any
) -> None:
    task_id = new_id()
    backend.store_result(task_id, "first", states.SUCCESS)
    celery_app.backend.mark_as_failure(task_id, RuntimeError("duplicate"))
    assert backend.get_task_meta(task_id)["result"] == "first"


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_celeriac_does_not_overwrite_celerys_success(
    make: Any, prefix: str, serializer: str
) -> None:
    app = celery.Celery("dup", broker="memory://", backend=REDIS_URL, set_as_current=False)
    app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    app.conf.result_serializer = serializer
    app.conf.result_accept_content = [serializer]
    backend = make(serializer=serializer, accept=[serializer])
    try:
        task_id = new_id()
        app.backend.store_result(task_id, "first", states.SUCCESS)
        backend.store_result(task_id, RuntimeError("duplicate"), states.FAILURE)
        backend.store_result(task_id, {"pid": 1}, states.STARTED)
        assert backend.get_task_meta(task_id)["result"] == "first"
    finally:
        app.close()


# --- the never-replace rule in Lua -----------------------------------------------------------


@pytest.mark.parametrize("serializer", ["json", "pickle", "msgpack"])
def test_lua_replaces_matches_python(make: Any, serializer: str) -> None:
    backend = make(serializer=serializer, accept=None)
    pairs = [(stored, new) for stored in ALL_STATES for new in ALL_STATES]
    ids = [new_id() for _ in pairs]
    backend.store_results(
        [
            StoreRequest(task_id, "old", stored)
            for task_id, (stored, _) in zip(ids, pairs, strict=True)
        ]
    )
    backend.store_results(
        [StoreRequest(task_id, "new", new) for task_id, (_, new) in zip(ids, pairs, strict=True)]
    )
    metas = backend.get_many(ids)
    for task_id, (stored, new) in zip(ids, pairs, strict=True):
        expected = new if replaces(stored, new) else stored
        assert metas[task_id]["status"] == expected, (serializer, stored, new)


def test_unreadable_stored_value_is_replaced(backend: RedisBackend, raw: Any) -> None:
    task_id = new_id()
    raw.set(backend.task_key(task_id), b"not a record")
    backend.store_result(task_id, 1, states.SUCCESS)
    assert backend.get_task_meta(task_id)["result"] == 1


def test_status_found_in_json_with_another_key_order(backend: RedisBackend, raw: Any) -> None:
    task_id = new_id()
    record = {"result": 1, "status": "SUCCESS", "task_id": task_id, "traceback": None}
    raw.set(backend.task_key(task_id), json.dumps(record))
    backend.store_result(task_id, 2, states.FAILURE)
    assert backend.get_task_meta(task_id)["result"] == 1


def test_pickle_protocol_2_status_is_read(make: Any, raw: Any) -> None:
    backend = make(serializer="pickle", accept=None)
    task_id = new_id()
    record = {"status": "SUCCESS", "result": 1, "traceback": None, "task_id": task_id}
    raw.set(backend.task_key(task_id), pickle.dumps(record, protocol=2))
    backend.store_result(task_id, 2, states.FAILURE)
    assert backend.get_task_meta(task_id)["result"] == 1


def test_pickled_record_is_refused_by_a_json_backend(make: Any) -> None:
    task_id = new_id()
    make(serializer="pickle", accept=None).store_result(task_id, 1, states.SUCCESS)
    with pytest.raises(ContentDisallowed):
        make().get_task_meta(task_id)


# --- storing in one round trip ---------------------------------------------------------------


def test_store_results_is_one_command(backend: RedisBackend, monkeypatch: Any) -> None:
    calls: list[Any] = []
    execute, send = backend._client.execute_command, backend._direct.send

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return execute(*args, **kwargs)

    def counting_direct(*args: Any) -> Any:
        calls.append(args[0])
        return send(*args)

    monkeypatch.setattr(backend._client, "execute_command", counting)
    monkeypatch.setattr(backend._direct, "send", counting_direct)
    ids = [new_id() for _ in range(100)]
    backend.store_results(
        [StoreRequest(task_id, i, states.SUCCESS) for i, task_id in enumerate(ids)]
    )
    assert calls == ["EVALSHA"]
    calls.clear()
    backend.store_result(new_id(), 1, states.SUCCESS)
    assert calls == ["EVALSHA"]
    calls.clear()
    assert [m["result"] for m in backend.get_many(ids).values()] == list(range(100))
    assert calls == ["MGET"]


def test_store_publishes_on_the_key_channel(backend: RedisBackend, raw: Any) -> None:
    task_id = new_id()
    pubsub = raw.pubsub()
    pubsub.subscribe(backend.task_key(task_id))
    try:
        assert pubsub.get_message(timeout=1)["type"] == "subscribe"
        backend.store_result(task_id, 7, states.SUCCESS)
        message = pubsub.get_message(timeout=1)
        assert message["channel"] == backend.task_key(task_id).encode()
        assert message["data"] == raw.get(backend.task_key(task_id))
        backend.store_result(task_id, 8, states.FAILURE)  # ignored: no publish either
        assert pubsub.get_message(timeout=0.2) is None
    finally:
        pubsub.close()


def test_too_large_value_is_refused_before_sending(backend: RedisBackend) -> None:
    from celeriac.exceptions import BackendStoreError

    huge = RecordWrite("t", states.SUCCESS, b"x", "application/json", "utf-8", None)
    huge = huge._replace(payload=_Huge())  # type: ignore[arg-type]
    with pytest.raises(BackendStoreError, match="too large"):
        backend._store([huge])


class _Huge(bytes):
    def __len__(self) -> int:
        return redis_module.MAX_VALUE_SIZE + 1


# --- waiting: other processes, many threads, reconnects --------------------------------------

#: Run by a separate interpreter: store a SUCCESS for argv[3] after argv[4] seconds and print
#: the time just before the store.
STORE_LATER = textwrap.dedent(
    """
    import sys, time
    from celeriac.backends.redis import RedisBackend

    backend = RedisBackend(sys.argv[1], options={"global_keyprefix": sys.argv[2]})
    backend.get_task_meta("warm-up")
    time.sleep(float(sys.argv[4]))
    print(repr(time.time()), flush=True)
    backend.store_result(sys.argv[3], {"from": "child"}, "SUCCESS")
    """
)


def test_wait_for_wakes_on_a_store_by_another_process(backend: RedisBackend, prefix: str) -> None:
    task_id = new_id()
    child = subprocess.Popen(
        [sys.executable, "-c", STORE_LATER, REDIS_URL, prefix, task_id, "0.5"],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        # A huge interval: only the PUBLISH can wake the wait in time.
        meta = backend.wait_for(task_id, timeout=20, interval=3600)
        woke = time.time()
        out, _ = child.communicate(timeout=20)
    finally:
        child.kill()
        child.wait()
    assert meta["result"] == {"from": "child"}
    assert 0 <= woke - float(out.strip()) < 1.0


def test_many_threads_wait_on_one_connection(make: Any, raw: Any) -> None:
    name = f"celeriac-test-{uuid.uuid4().hex[:8]}"
    waiter = make(options={"redis_client_name": name})
    writer = make()
    ids = [new_id() for _ in range(10)]
    keys = ids * 3  # three threads per task id
    results: dict[int, Any] = {}

    def wait(n: int, task_id: str) -> None:
        results[n] = waiter.wait_for(task_id, timeout=10, interval=3600)["result"]

    threads = [threading.Thread(target=wait, args=(n, task_id)) for n, task_id in enumerate(keys)]
    for thread in threads:
        thread.start()
    _until(lambda: _subscriptions(raw, name) == len(ids))
    assert _pubsub_connections(raw, name) == 1
    writer.store_results([StoreRequest(task_id, task_id, states.SUCCESS) for task_id in ids])
    for thread in threads:
        thread.join(5)
    assert results == {n: task_id for n, task_id in enumerate(keys)}
    _until(lambda: _subscriptions(raw, name) == 0)  # unsubscribed when done


def test_wait_for_survives_a_dropped_pubsub_connection(
    make: Any, raw: Any, monkeypatch: Any
) -> None:
    name = f"celeriac-test-{uuid.uuid4().hex[:8]}"
    waiter = make(options={"redis_client_name": name})
    writer = make()
    task_id = new_id()
    listener = waiter._listener
    reconnect = listener._reconnect

    def store_then_connect() -> None:
        # Stored while the listener is disconnected: the PUBLISH is surely missed, so only
        # the MGET after the reconnect can wake the waiter.
        writer.store_result(task_id, "after the drop", states.SUCCESS)
        reconnect()

    box: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: box.update(meta=waiter.wait_for(task_id, timeout=10, interval=3600))
    )
    thread.start()
    _until(lambda: _subscriptions(raw, name) == 1)
    monkeypatch.setattr(listener, "_reconnect", store_then_connect)
    for client in raw.client_list():
        if client["name"] == name and int(client["sub"]):
            raw.client_kill_filter(_id=client["id"])
    thread.join(5)
    assert box["meta"]["result"] == "after the drop"
    _until(lambda: _subscriptions(raw, name) == 0)


def test_wait_for_times_out_while_subscribed(backend: RedisBackend) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        backend.wait_for(new_id(), timeout=0.3, interval=3600)
    assert 0.29 <= time.monotonic() - started < 1.0


def test_progress_updates_do_not_end_the_wait(make: Any) -> None:
    waiter, writer = make(), make()
    task_id = new_id()

    def progress() -> None:
        for n in range(3):
            time.sleep(0.05)
            writer.store_result(task_id, {"done": n}, "PROGRESS")
        writer.store_result(task_id, "end", states.SUCCESS)

    thread = threading.Thread(target=progress)
    thread.start()
    try:
        assert waiter.wait_for(task_id, timeout=5, interval=3600)["result"] == "end"
    finally:
        thread.join()


def test_close_drops_the_pubsub_connection_and_it_reopens(make: Any, raw: Any) -> None:
    name = f"celeriac-test-{uuid.uuid4().hex[:8]}"
    backend = make(options={"redis_client_name": name})
    threads_before = threading.active_count()
    with pytest.raises(TimeoutError):
        backend.wait_for(new_id(), timeout=0.05)
    assert threading.active_count() == threads_before  # waiters read; no background thread
    assert _connections(raw, name) == 2  # the pool's and the pub/sub one
    backend.close()
    _until(lambda: _connections(raw, name) == 0)
    task_id = new_id()
    thread = threading.Timer(0.1, make().store_result, (task_id, 1, states.SUCCESS))
    thread.start()
    assert backend.wait_for(task_id, timeout=5, interval=3600)["result"] == 1  # usable again
    thread.join()


def test_close_keeps_the_connection_of_active_waiters(make: Any) -> None:
    waiter, writer = make(), make()
    task_id = new_id()
    box: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: box.update(meta=waiter.wait_for(task_id, timeout=5, interval=3600))
    )
    thread.start()
    _until(lambda: task_id.encode() in b"".join(waiter._listener._confirmed))
    waiter.close()  # another thread's close must not break this wait
    writer.store_result(task_id, "still woken", states.SUCCESS)
    thread.join(5)
    assert box["meta"]["result"] == "still woken"


def test_reader_role_passes_between_waiters(make: Any) -> None:
    # Waiters finish in another order than they started: whoever reads must hand over.
    waiter, writer = make(), make()
    ids = [new_id() for _ in range(6)]
    results: dict[str, Any] = {}

    def wait(task_id: str) -> None:
        results[task_id] = waiter.wait_for(task_id, timeout=10, interval=3600)["result"]

    threads = [threading.Thread(target=wait, args=(task_id,)) for task_id in ids]
    for thread in threads:
        thread.start()
    _until(lambda: len(waiter._listener._confirmed) == len(ids))
    for task_id in reversed(ids):
        writer.store_result(task_id, task_id, states.SUCCESS)
        time.sleep(0.02)
    for thread in threads:
        thread.join(5)
    assert results == {task_id: task_id for task_id in ids}


def test_change_token_moves_on_a_watched_publish(make: Any) -> None:
    waiter, writer = make(), make()
    task_id = new_id()
    thread = threading.Thread(target=lambda: waiter.wait_for(task_id, timeout=5, interval=3600))
    thread.start()
    _until(lambda: task_id.encode() in b"".join(waiter._listener._confirmed))
    token = waiter._change_token()
    writer.store_result(task_id, 1, states.SUCCESS)
    waiter._wait_change(token, 5)
    assert waiter._change_token() != token
    thread.join(5)


# --- chord counters --------------------------------------------------------------------------


def test_chord_completes_once_in_index_order(backend: RedisBackend, raw: Any) -> None:
    group_id = new_id()
    backend.set_chord_size(group_id, 3)
    assert backend.chord_part_done(group_id, "t2", states.SUCCESS, "c", index=2) is None
    assert backend.chord_part_done(group_id, "t0", states.SUCCESS, "a", index=0) is None
    parts = backend.chord_part_done(group_id, "t1", states.SUCCESS, "b", index=1)
    assert parts == [
        ChordPart("t0", "SUCCESS", "a"),
        ChordPart("t1", "SUCCESS", "b"),
        ChordPart("t2", "SUCCESS", "c"),
    ]
    assert raw.exists(*(backend.group_key(group_id, s) for s in (".j", ".t", ".s"))) == 0


def test_chord_parts_are_celerys(backend: RedisBackend, celery_app: Any, raw: Any) -> None:
    group_id = new_id()
    celery_app.backend.set_chord_size(group_id, 5)
    assert raw.get(backend.group_key(group_id, ".s")) == b"5"
    backend.chord_part_done(group_id, "t0", states.SUCCESS, {"v": 1}, index=0)
    backend.chord_part_done(group_id, "t1", states.FAILURE, KeyError("k"), index=1)
    members = raw.zrange(backend.group_key(group_id, ".j"), 0, -1, withscores=True)
    assert [score for _, score in members] == [0.0, 1.0]
    decoded = [celery_app.backend.decode(member) for member, _ in members]
    assert decoded[0] == [1, "t0", "SUCCESS", {"v": 1}]
    assert decoded[1][:3] == [1, "t1", "FAILURE"]
    assert decoded[1][3]["exc_type"] == "KeyError"
    assert raw.ttl(backend.group_key(group_id, ".j")) == 86400


def test_chord_failure_is_rebuilt(backend: RedisBackend) -> None:
    group_id = new_id()
    backend.set_chord_size(group_id, 2)
    backend.chord_part_done(group_id, "t0", states.FAILURE, ValueError("no"), index=0)
    parts = backend.chord_part_done(group_id, "t1", states.SUCCESS, 1, index=1)
    assert parts is not None
    assert type(parts[0].result) is ValueError and parts[0].result.args == ("no",)


def test_chord_extra_parts_and_size_fallback(backend: RedisBackend) -> None:
    group_id = new_id()
    assert backend.chord_part_done(group_id, "t0", states.SUCCESS, 0, index=0) is None
    assert backend.add_to_chord(group_id) == 1  # one part more than the header's 2
    assert backend.chord_part_done(group_id, "t1", states.SUCCESS, 1, index=1, size=2) is None
    parts = backend.chord_part_done(group_id, "t2", states.SUCCESS, 2, size=2)
    assert parts is not None and [part.result for part in parts] == [0, 1, 2]


def test_chord_without_size_never_completes(backend: RedisBackend) -> None:
    group_id = new_id()
    assert backend.chord_part_done(group_id, "t0", states.SUCCESS, 0, index=0) is None
    backend.delete_chord(group_id)


def test_unordered_chord_uses_a_list(make: Any, raw: Any) -> None:
    backend = make(options={"result_chord_ordered": False})
    group_id = new_id()
    backend.set_chord_size(group_id, 2)
    backend.chord_part_done(group_id, "t1", states.SUCCESS, 1, index=1)
    assert raw.type(backend.group_key(group_id, ".j")) == b"list"
    parts = backend.chord_part_done(group_id, "t0", states.SUCCESS, 0, index=0)
    assert parts is not None and [part.task_id for part in parts] == ["t1", "t0"]


#: Run by three interpreters at once: report every chord part call that completed a group.
CHORD_RACER = textwrap.dedent(
    """
    import json, sys, time
    from celeriac.backends.redis import RedisBackend

    url, prefix, groups, parts, me, racers, start = sys.argv[1:8]
    backend = RedisBackend(url, options={"global_keyprefix": prefix})
    backend.get_task_meta("warm-up")
    time.sleep(max(0.0, float(start) - time.time()))
    for group_id in groups.split(","):
        for index in range(int(me), int(parts), int(racers)):
            done = backend.chord_part_done(
                group_id, f"{group_id}-{index}", "SUCCESS", index, index=index
            )
            if done is not None:
                print(json.dumps([group_id, [part.result for part in done]]), flush=True)
    """
)


def test_chord_counter_is_exactly_once_across_processes(
    backend: RedisBackend, prefix: str, raw: Any
) -> None:
    groups = [new_id() for _ in range(40)]
    parts, racers = 30, 3
    for group_id in groups:
        backend.set_chord_size(group_id, parts)
    start = time.time() + 1.0
    argv = [sys.executable, "-c", CHORD_RACER, REDIS_URL, prefix, ",".join(groups), str(parts)]
    procs = [
        subprocess.Popen(
            [*argv, str(me), str(racers), repr(start)],
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for me in range(racers)
    ]
    completions: list[Any] = []
    winners: set[int] = set()
    try:
        for me, proc in enumerate(procs):
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0
            lines = [json.loads(line) for line in out.splitlines()]
            completions += lines
            winners |= {me} if lines else set()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert sorted(group for group, _ in completions) == sorted(groups)  # each exactly once
    assert all(results == list(range(parts)) for _, results in completions)
    assert raw.exists(*(backend.group_key(g, ".j") for g in groups)) == 0


# --- errors ----------------------------------------------------------------------------------


def test_connection_refused_is_operational_error_with_masked_url() -> None:
    backend = RedisBackend("redis://:s3cret@127.0.0.1:1/12")
    calls = [
        lambda: backend.store_result(new_id(), 1, states.SUCCESS),
        lambda: backend.get_task_meta(new_id()),
        lambda: backend.wait_for(new_id(), timeout=1),
        lambda: backend.save_group(new_id(), []),
        lambda: backend.restore_group(new_id()),
        lambda: backend.forget(new_id()),
        lambda: backend.chord_part_done(new_id(), "t", states.SUCCESS, 1),
    ]
    for call in calls:
        with pytest.raises(OperationalError) as info:
            call()
        message = str(info.value)
        assert "redis://:**@127.0.0.1:1/12" in message
        assert "s3cret" not in message
        assert isinstance(info.value.__cause__, redis.ConnectionError)
    backend.close()


def test_read_timeout_is_operational_error() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts connections, never answers
    port = silent.getsockname()[1]
    backend = RedisBackend(f"redis://127.0.0.1:{port}/12", options={"redis_socket_timeout": 0.2})
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError, match=f"127.0.0.1:{port}") as info:
            backend.get_task_meta(new_id())
        assert isinstance(info.value.__cause__, redis.TimeoutError)
        assert time.monotonic() - started < 5
    finally:
        backend.close()
        silent.close()


# --- options and URLs ------------------------------------------------------------------------


def test_unknown_option_names_the_closest_match() -> None:
    with pytest.raises(ImproperlyConfigured, match="'global_keyprefix'"):
        RedisBackend(REDIS_URL, options={"global_key_prefix": "x"})
    with pytest.raises(ImproperlyConfigured, match="'redis_socket_timeout'"):
        RedisBackend(REDIS_URL, options={"redis_socket_timout": 1})


def test_setting_options_reach_the_connections() -> None:
    options = {
        "redis_max_connections": 7,
        "redis_socket_timeout": 3.5,
        "redis_socket_connect_timeout": 1.5,
        "redis_retry_on_timeout": True,
        "redis_socket_keepalive": True,
        "redis_backend_health_check_interval": 10,
        "redis_client_name": "celeriac-results",
    }
    assert set(options) <= set(SETTING_OPTIONS)
    backend = RedisBackend(REDIS_URL, options=options)
    pool = backend._client.connection_pool
    assert pool.max_connections == 7
    kwargs = pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (3.5, 1.5)
    assert kwargs["retry_on_timeout"] is True and kwargs["socket_keepalive"] is True
    assert (kwargs["health_check_interval"], kwargs["client_name"]) == (10, "celeriac-results")
    assert kwargs["db"] == 12
    assert backend.get_task_meta(new_id())["status"] == "PENDING"  # and they work
    backend.close()


def test_ssl_options() -> None:
    backend = RedisBackend(
        REDIS_URL,
        options={"redis_backend_use_ssl": {"ssl_cert_reqs": "CERT_REQUIRED", "ssl_ca_certs": "/a"}},
    )
    pool = backend._client.connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert pool.connection_kwargs["ssl_cert_reqs"] == "required"
    assert pool.connection_kwargs["ssl_ca_certs"] == "/a"
    url = "rediss://:pw@example.com:6380/3?ssl_cert_reqs=CERT_NONE&ssl_ca_certs=%2Fca.pem"
    pool = RedisBackend(url)._client.connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert pool.connection_kwargs["ssl_cert_reqs"] == "none"
    assert pool.connection_kwargs["ssl_ca_certs"] == "/ca.pem"
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (3, "pw")
    with pytest.raises(ImproperlyConfigured, match="ssl_"):
        RedisBackend(REDIS_URL, options={"redis_backend_use_ssl": {"cert_reqs": "none"}})


def test_socket_url() -> None:
    backend = RedisBackend("redis+socket:///tmp/redis.sock?virtual_host=3")
    pool = backend._client.connection_pool
    assert pool.connection_class is redis.UnixDomainSocketConnection
    assert (pool.connection_kwargs["path"], pool.connection_kwargs["db"]) == ("/tmp/redis.sock", 3)


def test_sentinel_url() -> None:
    import redis.sentinel

    with pytest.raises(ImproperlyConfigured, match="master_name"):
        RedisBackend("sentinel://localhost:26379")
    backend = RedisBackend(
        "sentinel://:pw@s1:26379/2;sentinel://s2:26380/2", options={"master_name": "mymaster"}
    )
    pool = backend._client.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    assert pool.sentinel_manager.sentinels[1].connection_pool.connection_kwargs["port"] == 26380
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (2, "pw")


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1/12", "rediss://h/1", "redis+socket:///s", "sentinel://h:1"]
)
def test_backend_for_url_dispatches_redis_schemes(url: str) -> None:
    options = {"master_name": "m"} if url.startswith("sentinel") else {}
    assert type(backend_for_url(url, options=options)) is RedisBackend


def test_missing_redis_py_gives_the_install_hint() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["redis"] = None  # as if redis-py were not installed
        from celeriac.backends import backend_for_url
        from celeriac.exceptions import ImproperlyConfigured
        try:
            backend_for_url("redis://localhost/12")
        except ImproperlyConfigured as exc:
            print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=child_env(), check=True
    )
    assert "pip install celeriac[redis]" in out.stdout


def test_stored_value_is_plain_celery_json(backend: RedisBackend, raw: Any) -> None:
    task_id = new_id()
    backend.store_result(task_id, {"n": 1}, states.SUCCESS)
    payload, _, _ = dumps(backend.get_task_meta(task_id)["result"], "json")
    assert json.loads(raw.get(backend.task_key(task_id)))["result"] == json.loads(payload)


# --- helpers ---------------------------------------------------------------------------------


class _Request:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class _CeleryRequest:
    """The request attributes Celery's _get_result_meta reads."""

    def __init__(self, task_id: str, *, parent_id: str, group_id: str) -> None:
        self.id = task_id
        self.parent_id = parent_id
        self.group = group_id
        self.children: list[Any] = []
        self.ignore_result = False


def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _subscriptions(raw: Any, name: str) -> int:
    return sum(int(c["sub"]) for c in raw.client_list() if c["name"] == name)


def _pubsub_connections(raw: Any, name: str) -> int:
    return sum(1 for c in raw.client_list() if c["name"] == name and int(c["sub"]))


def _connections(raw: Any, name: str) -> int:
    return sum(1 for c in raw.client_list() if c["name"] == name)


def test_a_store_survives_the_server_forgetting_its_scripts(
    backend: RedisBackend, raw: Any
) -> None:
    backend.store_result(new_id(), 1, states.SUCCESS)  # the script is cached now
    raw.script_flush()  # what a restart does
    task_id = new_id()
    backend.store_result(task_id, 2, states.SUCCESS)
    assert backend.get_task_meta(task_id)["result"] == 2
