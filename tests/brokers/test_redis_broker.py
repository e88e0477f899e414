"""What the Redis broker promises beyond the conformance suite.

Celery's key layout byte for byte, the atomic claim across processes, leases against
SIGKILL and renewal, delayed messages, priorities, options, URLs, and a Redis restart.
Shared server: 127.0.0.1:6379, database 10, a fresh ``global_keyprefix`` per test (its
keys are deleted afterwards). Tests that stop or reconfigure Redis use a private
``redis-server`` (:mod:`tests.redis_server`).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from celeriac.brokers import broker_for_url
from celeriac.brokers.base import Delivery, Outgoing
from celeriac.brokers.redis import RedisBroker, parse_envelope
from celeriac.exceptions import ImproperlyConfigured, OperationalError
from celeriac.message import Message
from celeriac.protocol import build_task_message
from celeriac.testing.broker_suite import claim_until, message, numbers
from tests.brokers.test_conformance_redis import URL, delete_prefixed
from tests.helpers import WorkerProcess, write_module
from tests.redis_server import free_port, private_redis, private_sentinel

SEP = "\x06\x16"
Make = Callable[..., RedisBroker]


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"rb-{uuid.uuid4().hex[:10]}:"
    yield prefix
    delete_prefixed(URL, prefix)


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(URL)
    yield client
    client.close()


@pytest.fixture
def make(prefix: str) -> Iterator[Make]:
    """``make(**options)``: a broker on database 10 under this test's prefix."""
    made: list[RedisBroker] = []

    def factory(url: str = URL, **options: Any) -> RedisBroker:
        broker = RedisBroker(url, options={"global_keyprefix": prefix, **options})
        made.append(broker)
        return broker

    yield factory
    for broker in made:
        broker.close()


def task(number: int, **options: Any) -> Message:
    """A real Celery-shaped task message whose first argument is ``number``."""
    return build_task_message(
        name="tests.add", task_id=str(uuid.uuid4()), args=(number,), reply_to="r", **options
    )


def first_args(deliveries: list[Delivery]) -> list[int]:
    return [int(d.message.headers["argsrepr"].strip("(),")) for d in deliveries]


# --- the wire layout -------------------------------------------------------------------------


def test_envelope_layout_is_kombus(make: Make, raw: redis.Redis, prefix: str) -> None:
    broker = make()
    sent = task(1)
    broker.publish("layout", sent)
    broker.publish("layout", task(2, priority=5))
    [text] = raw.lrange(f"{prefix}layout", 0, -1)
    envelope = json.loads(text)
    assert list(envelope) == ["body", "content-encoding", "content-type", "headers", "properties"]
    assert envelope["content-encoding"] == "utf-8"
    assert envelope["content-type"] == "application/json"
    assert envelope["headers"] == sent.headers
    import base64

    assert base64.b64decode(envelope["body"]) == sent.body
    properties = envelope["properties"]
    assert list(properties) == [
        "correlation_id",
        "reply_to",
        "delivery_mode",
        "delivery_info",
        "priority",
        "body_encoding",
        "delivery_tag",
    ]
    assert properties["correlation_id"] == sent.headers["id"]
    assert properties["reply_to"] == "r"
    assert properties["delivery_mode"] == 2
    assert properties["delivery_info"] == {"exchange": "", "routing_key": "layout"}
    assert properties["priority"] == 0
    assert properties["body_encoding"] == "base64"
    assert str(uuid.UUID(properties["delivery_tag"])) == properties["delivery_tag"]
    # Written compactly (orjson); kombu's own JSON reader takes it as it is.
    from kombu.utils.json import loads as kombu_loads

    assert kombu_loads(text) == envelope
    # priority 5 -> step 3 -> kombu's key name
    [high] = raw.lrange(f"{prefix}layout{SEP}3", 0, -1)
    assert json.loads(high)["properties"]["priority"] == 5
    member = f"layout{SEP}{SEP}layout".encode()
    assert raw.smembers(f"{prefix}_kombu.binding.layout") == {member}
    assert raw.smembers(f"{prefix}_kombu.binding_permanent.layout") == {member}


def test_envelope_matches_what_celery_writes(make: Make, raw: redis.Redis, prefix: str) -> None:
    from celery import Celery as RealCelery

    celery = RealCelery("wire", broker=URL)
    celery.conf.broker_transport_options = {"global_keyprefix": prefix}
    try:
        result = celery.send_task("tests.add", args=(1,), queue="wire", priority=4)
    finally:
        celery.close()
    [theirs_text] = raw.lrange(f"{prefix}wire{SEP}3", 0, -1)
    theirs = json.loads(theirs_text)
    # celeriac reads Celery's envelope back as the message Celery meant...
    message, redelivered = parse_envelope(theirs_text)
    assert redelivered is False
    assert message.headers["id"] == result.id
    assert message.properties["priority"] == 4
    assert "delivery_tag" not in message.properties
    # ... and writes the same envelope for it: same keys in the same order, same values
    # except the fresh delivery tag.
    make().publish("wire", message)
    [ours_text] = raw.lrange(f"{prefix}wire{SEP}3", 0, 0)
    ours = json.loads(ours_text)
    assert list(ours) == list(theirs)
    assert list(ours["properties"]) == list(theirs["properties"])
    assert ours["headers"] == theirs["headers"]
    assert ours["body"] == theirs["body"]
    assert ours["properties"]["delivery_tag"] != theirs["properties"]["delivery_tag"]
    ours["properties"].pop("delivery_tag")
    theirs["properties"].pop("delivery_tag")
    assert ours == theirs
    assert raw.smembers(f"{prefix}_kombu.binding.wire") == {f"wire{SEP}{SEP}wire".encode()}


def test_claim_records_kombus_unacked_entry(make: Make, raw: redis.Redis, prefix: str) -> None:
    broker = make(visibility_timeout=30)
    broker.publish("held", task(1))
    [text] = raw.lrange(f"{prefix}held", 0, -1)
    before = time.time()
    [delivery] = broker.claim(["held"], limit=5, timeout=1)
    stored = raw.hget(f"{prefix}unacked", delivery.tag)
    assert isinstance(stored, bytes)
    assert json.loads(stored) == [json.loads(text), "", "held"]
    assert stored == b"[" + text + b', "", "held"]'  # the envelope's bytes, untouched
    delivered = raw.zscore(f"{prefix}unacked_index", delivery.tag)
    lease = raw.zscore(f"{prefix}_celeriac.leases", delivery.tag)
    assert delivered is not None and lease is not None
    assert before - 1 <= delivered <= time.time() + 1
    assert lease == pytest.approx(delivered + 30, abs=0.01)
    broker.ack([delivery])
    assert raw.hlen(f"{prefix}unacked") == 0
    assert raw.zcard(f"{prefix}unacked_index") == 0
    assert raw.zcard(f"{prefix}_celeriac.leases") == 0


def test_requeue_marks_redelivered_and_goes_to_the_tail(
    make: Make, raw: redis.Redis, prefix: str
) -> None:
    broker = make()
    broker.publish_many([Outgoing("rq", task(n)) for n in (1, 2)])
    first = broker.claim(["rq"], limit=1, timeout=1)
    broker.reject(first, requeue=True)
    newest, oldest = raw.lrange(f"{prefix}rq", 0, -1)
    assert json.loads(newest)["properties"]["delivery_info"] == {
        "redelivered": True,
        "exchange": "",
        "routing_key": "rq",
    }
    assert b"redelivered" not in oldest
    got = claim_until(broker, ["rq"], 2, within=1)
    assert first_args(got) == [2, 1]
    assert [d.redelivered for d in got] == [False, True]
    broker.ack(got)


# --- atomic claim across processes -----------------------------------------------------------

CONSUMER = """
import json, sys, time
from celeriac.brokers.redis import RedisBroker
url, prefix, queue, out = sys.argv[1:5]
broker = RedisBroker(url, options={"global_keyprefix": prefix})
broker.claim([queue], limit=1, timeout=0)
print("ready", flush=True)
seen = []
deadline = time.monotonic() + 60
idle = 0
while time.monotonic() < deadline and (idle < 3 or not seen):
    got = broker.claim([queue], limit=7, timeout=0.3)
    idle = 0 if got else idle + 1
    seen += [d.message.headers["n"] for d in got]
    broker.ack(got)
with open(out, "w") as f:
    json.dump(seen, f)
"""


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def test_three_processes_claim_each_message_exactly_once(
    make: Make, prefix: str, tmp_path: Path
) -> None:
    total = 3000
    outs = [tmp_path / f"seen-{i}.json" for i in range(3)]
    procs = [spawn(CONSUMER, URL, prefix, "race", str(out)) for out in outs]
    try:
        for proc in procs:  # all three idle and waiting before the first publish
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        publisher = make()
        for start in range(0, total, 100):
            publisher.publish_many(
                [Outgoing("race", message(n)) for n in range(start, start + 100)]
            )
        for proc in procs:
            proc.wait(90)
            assert proc.returncode == 0, proc.stdout.read() if proc.stdout else ""
    finally:
        for proc in procs:
            stop(proc)
    seen = [n for out in outs for n in json.loads(out.read_text())]
    assert len(seen) == total, "a message was lost or claimed twice"
    assert sorted(seen) == list(range(total))
    assert all(json.loads(out.read_text()) for out in outs), "a consumer got nothing"


HOLDER = """
import sys, time
from celeriac.brokers.redis import RedisBroker
url, prefix, queue = sys.argv[1:4]
broker = RedisBroker(url, options={"global_keyprefix": prefix, "visibility_timeout": 1.0})
got = broker.claim([queue], limit=100, timeout=5)
print("claimed", len(got), flush=True)
time.sleep(60)
"""


def test_sigkilled_consumers_messages_come_back_after_the_lease(make: Make, prefix: str) -> None:
    broker = make(visibility_timeout=1.0)
    broker.publish_many([Outgoing("killed", message(n)) for n in range(10)])
    holder = spawn(HOLDER, URL, prefix, "killed")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "claimed 10"
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        killed_at = time.monotonic()
        assert broker.size("killed") == 0
        got = claim_until(broker, ["killed"], 10, within=10)
        assert sorted(numbers(got)) == list(range(10))
        assert all(d.redelivered for d in got)
        # The lease (1 s) plus one restore sweep (about 1 s), not Celery's hour.
        assert time.monotonic() - killed_at < 5
        broker.ack(got)
    finally:
        stop(holder)


def test_renewed_message_is_never_restored(make: Make, raw: redis.Redis, prefix: str) -> None:
    holder, other = make(visibility_timeout=0.5), make(visibility_timeout=0.5)
    holder.publish("long", message(1))
    held = holder.claim(["long"], limit=1, timeout=1)
    until = time.monotonic() + 2.5  # five lease lengths
    while time.monotonic() < until:
        holder.renew(held)
        assert other.claim(["long"], limit=1, timeout=0.15) == []
    # The Celery-visible score moved too: a Celery worker with the same timeout keeps off.
    score = raw.zscore(f"{prefix}unacked_index", held[0].tag)
    assert score is not None and time.time() - score < 0.5
    holder.ack(held)


def test_celery_held_message_is_restored_after_the_visibility_timeout(
    make: Make, raw: redis.Redis, prefix: str
) -> None:
    """An entry written the way a Celery worker writes it, its worker gone."""
    broker = make(visibility_timeout=2)
    broker.publish("foreign", message(2))
    [text] = raw.lrange(f"{prefix}foreign", 0, -1)
    raw.delete(f"{prefix}foreign")
    broker.publish("foreign", message(3))  # waiting in the list already
    now = time.time()
    for tag, age in (("old-celery-tag", 10), ("young-celery-tag", 0)):
        entry = b"[" + text + b', "", "foreign"]'
        raw.hset(f"{prefix}unacked", tag, entry)
        raw.zadd(f"{prefix}unacked_index", {tag: now - age})
    got = broker.claim(["foreign"], limit=10, timeout=2)
    # The old one went back to the head (kombu's RPUSH) and is taken first.
    assert numbers(got) == [2, 3]
    assert [d.redelivered for d in got] == [True, False]
    assert raw.hexists(f"{prefix}unacked", "young-celery-tag")
    broker.ack(got)
    # With no visibility_timeout set, a Celery-held entry is judged by Celery's hour.
    patient = make()
    raw.zadd(f"{prefix}unacked_index", {"young-celery-tag": now - 600})
    assert patient.claim(["foreign"], limit=10, timeout=1.2) == []
    assert raw.hexists(f"{prefix}unacked", "young-celery-tag")


# --- delayed messages ------------------------------------------------------------------------


def test_delayed_messages_wait_in_a_sorted_set(make: Make, raw: redis.Redis, prefix: str) -> None:
    broker = make()
    eta = time.time() + 0.5
    broker.publish("later", message(1), eta=eta)
    assert raw.llen(f"{prefix}later") == 0
    [(member, score)] = raw.zrange(f"{prefix}_celeriac.delayed.later", 0, -1, withscores=True)
    assert member.startswith(b"0|{")
    assert score == pytest.approx(eta)
    assert broker.size("later") == 1
    assert broker.claim(["later"], limit=5, timeout=0.2) == []
    got = broker.claim(["later"], limit=5, timeout=3)
    assert numbers(got) == [1]
    assert time.time() >= eta - 0.01
    assert raw.zcard(f"{prefix}_celeriac.delayed.later") == 0
    broker.ack(got)


def test_delayed_messages_run_once_with_three_consumers_racing(make: Make) -> None:
    consumers = [make() for _ in range(3)]
    due = time.time() + 0.5
    consumers[0].publish_many(
        [Outgoing("dueq", message(n), eta=due + n / 1000) for n in range(300)]
    )
    seen: list[list[int]] = [[], [], []]

    def consume(index: int) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum(map(len, seen)) < 300:
            got = consumers[index].claim(["dueq"], limit=10, timeout=0.3)
            assert all(time.time() >= due - 0.01 for _ in got)
            seen[index] += numbers(got)
            consumers[index].ack(got)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    everything = [n for part in seen for n in part]
    assert sorted(everything) == list(range(300))


def test_many_delayed_messages_do_not_slow_claims(
    make: Make, raw: redis.Redis, prefix: str
) -> None:
    broker = make()

    def claim_times() -> float:
        times = []
        for n in range(30):
            broker.publish("busy", message(n))
            started = time.perf_counter()
            got = broker.claim(["busy"], limit=10, timeout=1)
            times.append(time.perf_counter() - started)
            broker.ack(got)
        return statistics.median(times)

    baseline = claim_times()
    far = time.time() + 3600
    for start in range(0, 10_000, 1000):
        broker.publish_many(
            [Outgoing("busy", message(n), eta=far + n) for n in range(start, start + 1000)]
        )
    assert raw.zcard(f"{prefix}_celeriac.delayed.busy") == 10_000
    assert broker.size("busy") == 10_000
    loaded = claim_times()
    assert loaded < baseline * 3 + 0.002, f"claims took {loaded:.6f}s, {baseline:.6f}s before"
    assert broker.purge("busy") == 10_000


def test_eta_layout_celery_puts_eta_messages_on_the_list(
    make: Make, raw: redis.Redis, prefix: str
) -> None:
    broker = make(eta_layout="celery")
    eta = time.time() + 60
    sent = task(1)
    broker.publish("celeryeta", sent, eta=eta)
    assert raw.llen(f"{prefix}celeryeta") == 1  # where a Celery worker finds it
    assert raw.zcard(f"{prefix}_celeriac.delayed.celeryeta") == 0
    # A celeriac worker that claims it republishes it with its eta: that one must wait in
    # the delayed key, or the worker would take it again at once.
    [held] = broker.claim(["celeryeta"], limit=1, timeout=1)
    broker.publish("celeryeta", held.message, eta=eta)
    broker.ack([held])
    assert raw.llen(f"{prefix}celeryeta") == 0
    assert raw.zcard(f"{prefix}_celeriac.delayed.celeryeta") == 1


# --- priorities ------------------------------------------------------------------------------


def test_priorities_follow_celerys_steps(make: Make, raw: redis.Redis, prefix: str) -> None:
    broker = make()
    broker.publish_many([Outgoing("prio", message(p, priority=p)) for p in range(9, -1, -1)])
    keys = sorted(key.decode() for key in raw.keys(f"{prefix}prio*"))
    assert keys == [f"{prefix}prio", *(f"{prefix}prio{SEP}{s}" for s in (3, 6, 9))]
    got = claim_until(broker, ["prio"], 10, within=2)
    # 0-2 share step 0, 3-5 step 3, 6-8 step 6; the claim takes exact order within a step.
    assert numbers(got) == list(range(10))
    broker.ack(got)


def test_ten_priority_steps_give_exact_order(make: Make) -> None:
    broker = make(priority_steps=list(range(10)))
    broker.publish_many([Outgoing("exact", message(p, priority=p)) for p in range(9, -1, -1)])
    got = claim_until(broker, ["exact"], 10, within=2)
    assert numbers(got) == list(range(10))
    broker.ack(got)


def test_higher_priority_first_across_queues(make: Make) -> None:
    broker = make()
    broker.publish_many(
        [
            Outgoing("qa", message(1, priority=9)),
            Outgoing("qb", message(2, priority=9)),
            Outgoing("qb", message(3, priority=0)),
        ]
    )
    got = claim_until(broker, ["qa", "qb"], 3, within=2)
    assert numbers(got)[0] == 3
    broker.ack(got)


# --- options and URLs ------------------------------------------------------------------------


def test_global_keyprefix_isolates(make: Make, raw: redis.Redis, prefix: str) -> None:
    mine = make()
    other_prefix = f"rb-other-{uuid.uuid4().hex[:8]}:"
    other = RedisBroker(URL, options={"global_keyprefix": other_prefix})
    try:
        mine.publish("shared-name", message(1))
        other.publish("shared-name", message(2))
        assert other.size("shared-name") == 1
        assert numbers(mine.claim(["shared-name"], limit=10, timeout=1)) == [1]
        assert all(key.startswith(prefix.encode()) for key in raw.keys(f"{prefix}*"))
        assert raw.keys("shared-name*") == []
    finally:
        other.close()
        delete_prefixed(URL, other_prefix)


def test_unknown_option_names_the_closest() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"'visiblity_timeout'.*'visibility_timeout'"):
        RedisBroker(URL, options={"visiblity_timeout": 10})
    with pytest.raises(ImproperlyConfigured, match="priority_steps"):
        RedisBroker(URL, options={"priority_steps": [3, 0]})
    with pytest.raises(ImproperlyConfigured, match="queue_order_strategy"):
        RedisBroker(URL, options={"queue_order_strategy": "random"})
    with pytest.raises(ImproperlyConfigured, match="ack_emulation"):
        RedisBroker(URL, options={"ack_emulation": False})
    with pytest.raises(ImproperlyConfigured, match="ssl_certfile"):
        RedisBroker("rediss://localhost/0", options={"broker_use_ssl": {"ssl_certfle": "x"}})
    # A Celery configuration loads unchanged: kombu-only options are accepted.
    broker = RedisBroker(
        URL,
        options={"polling_interval": 1, "fanout_prefix": True, "unacked_mutex_expire": 300},
    )
    assert broker.lease_seconds == 60.0
    broker.close()


def test_options_reach_redis_py() -> None:
    broker = RedisBroker(
        "redis://:secret@127.0.0.1:6379/10",
        options={
            "socket_timeout": 7,
            "socket_connect_timeout": 3,
            "client_name": "celeriac-test",
            "max_connections": 4,
            "health_check_interval": 10,
            "visibility_timeout": 120,
        },
    )
    kwargs = broker._pool.connection_kwargs
    assert kwargs["password"] == "secret"
    assert kwargs["db"] == 10
    assert kwargs["socket_timeout"] == 7
    assert kwargs["socket_connect_timeout"] == 3
    assert kwargs["client_name"] == "celeriac-test"
    assert broker._pool.max_connections == 4
    assert broker.lease_seconds == 120
    assert broker.foreign_visibility_timeout == 120
    assert broker.describe() == "redis://:**@127.0.0.1:6379/10"
    broker.close()


def test_tls_options_from_broker_use_ssl() -> None:
    import ssl

    broker = RedisBroker(
        "redis://127.0.0.1:6379/0",
        options={"broker_use_ssl": {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/ca"}},
    )
    assert broker._pool.connection_class is redis.SSLConnection
    assert broker._pool.connection_kwargs["ssl_cert_reqs"] == "required"
    assert broker._pool.connection_kwargs["ssl_ca_certs"] == "/ca"
    broker.close()
    broker = RedisBroker("rediss://127.0.0.1:6380/0?ssl_cert_reqs=CERT_NONE")
    assert broker._pool.connection_class is redis.SSLConnection
    assert broker._pool.connection_kwargs["ssl_cert_reqs"] == "none"
    broker.close()


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("redis://localhost:notaport/0", {}, "Invalid Redis broker URL"),
        ("redis://localhost:6379/abc", {}, "database must be a number"),
        ("redis+socket://", {}, "socket's path"),
        ("redis+socket:///tmp/x.sock?db=2", {}, "virtual_host"),
        ("sentinel://localhost:26379", {}, "master_name"),
        ("sentinel://localhost:26379;redis://x", {"master_name": "m"}, "not sentinel://"),
        ("redis-cluster://localhost", {}, "Unknown broker URL"),
    ],
)
def test_bad_urls_are_refused(url: str, options: dict[str, Any], match: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=match):
        broker_for_url(url, options=options)


def test_missing_redis_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "celeriac.brokers.redis")
    with pytest.raises(ImproperlyConfigured, match=r"pip install celeriac\[redis\]"):
        broker_for_url("redis://localhost/0")


def test_schemes_dispatch_to_the_redis_broker() -> None:
    for url, options in (
        ("redis://localhost/0", {}),
        ("rediss://localhost/0", {}),
        ("redis+socket:///tmp/redis.sock?virtual_host=3", {}),
        ("sentinel://h1:26379;sentinel://h2:26380", {"master_name": "mymaster"}),
    ):
        broker = broker_for_url(url, options=options)
        assert isinstance(broker, RedisBroker)
        broker.close()


def test_redis_down_raises_operational_error() -> None:
    broker = RedisBroker(
        f"redis://127.0.0.1:{free_port()}/0", options={"socket_connect_timeout": 1}
    )
    try:
        for call in (
            broker.connect,
            lambda: broker.publish("q", message(1)),
            lambda: broker.publish_many([Outgoing("q", message(1))]),
            lambda: broker.claim(["q"], limit=1, timeout=0.1),
            lambda: broker.size("q"),
            lambda: broker.dead_letters(),
        ):
            with pytest.raises(OperationalError, match=r"Connection refused|Error") as info:
                call()
            assert isinstance(info.value.__cause__, redis.RedisError)
    finally:
        broker.close()


# --- private servers -------------------------------------------------------------------------


def test_restarted_server_is_survived(tmp_path: Path) -> None:
    with private_redis(tmp_path, appendonly=True) as server:
        broker = RedisBroker(server.url(0), options={"visibility_timeout": 1.0})
        try:
            broker.publish_many([Outgoing("survive", message(n)) for n in range(50)])
            held = broker.claim(["survive"], limit=10, timeout=1)  # acks_late: not acked yet
            assert len(held) == 10
            server.restart()
            got: list[Delivery] = []
            errors = 0
            deadline = time.monotonic() + 20
            while len(got) < 50 and time.monotonic() < deadline:
                try:
                    batch = broker.claim(["survive"], limit=100, timeout=0.5)
                except OperationalError:
                    errors += 1  # the worker logs these and retries; a stale socket may fail
                    time.sleep(0.1)
                    continue
                broker.ack(batch)
                got += batch
            assert sorted(numbers(got)) == list(range(50)), "a message was lost"
            assert sum(d.redelivered for d in got) == 10  # the held ones, after their lease
            assert errors == 0, "the broker did not reconnect by itself"
            broker.publish("survive", message(99))  # publishing works again too
            assert broker.size("survive") == 1
        finally:
            broker.close()


def test_unix_socket_url(tmp_path: Path) -> None:
    with private_redis(tmp_path, unixsocket=True) as server:
        url = f"redis+socket://{server.socket_path}?virtual_host=3"
        broker = broker_for_url(url)
        try:
            broker.connect()
            broker.publish("sock", message(1))
            assert server.client(3).llen("sock") == 1
            got = broker.claim(["sock"], limit=1, timeout=1)
            assert numbers(got) == [1]
            broker.ack(got)
        finally:
            broker.close()


def test_without_client_tracking_an_idle_claim_still_wakes(tmp_path: Path) -> None:
    """A server that refuses CLIENT TRACKING (an ACL here, a proxy elsewhere): polling."""
    with private_redis(tmp_path) as server:
        admin = server.client()
        admin.execute_command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "&*", "+@all")
        admin.execute_command("ACL", "SETUSER", "limited", "-client|tracking")
        admin.close()
        url = f"redis://limited:pw@127.0.0.1:{server.port}/0"
        consumer, publisher = RedisBroker(url), RedisBroker(url)
        try:
            got: list[Delivery] = []
            thread = threading.Thread(
                target=lambda: got.extend(consumer.claim(["poll"], limit=1, timeout=5))
            )
            thread.start()
            time.sleep(0.2)
            published = time.monotonic()
            publisher.publish("poll", message(1))
            thread.join(6)
            assert numbers(got) == [1]
            assert time.monotonic() - published < 0.5
            assert [channel.can_track for channel in consumer._channels] == [False]
        finally:
            consumer.close()
            publisher.close()


def test_connect_checks_the_server(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        broker = RedisBroker(server.url(0))
        try:
            broker.connect()
        finally:
            broker.close()


RESTART_TASKS = """
import os
import celeriac

app = celeriac.Celery("restart", broker=os.environ["RESTART_URL"])
app.conf.update(task_acks_late=True, broker_transport_options={"visibility_timeout": 2.0})


@app.task(name="restart.mark")
def mark(n):
    with open(os.environ["RESTART_MARKS"], "a") as marks:
        marks.write(f"{n}\\n")
"""


def test_worker_survives_a_redis_restart_and_loses_nothing(tmp_path: Path) -> None:
    total = 300
    marks = tmp_path / "marks.txt"
    marks.touch()

    def done() -> set[int]:
        return {int(line) for line in marks.read_text().split()}

    with private_redis(tmp_path, appendonly=True) as server:
        env = {"RESTART_URL": server.url(0), "RESTART_MARKS": str(marks)}
        write_module(tmp_path, "restart_tasks", RESTART_TASKS)
        client = RedisBroker(server.url(0))
        try:
            with WorkerProcess("restart_tasks", tmp_path, "-P", "threads", "-c", "4", env=env):
                for n in range(total):
                    task_id = str(uuid.uuid4())
                    client.publish(
                        "celery",
                        build_task_message(name="restart.mark", task_id=task_id, args=(n,)),
                    )
                    if n == total // 2:
                        server.restart()  # mid-run: messages ready, held and in flight
                deadline = time.monotonic() + 60
                while len(done()) < total and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert done() == set(range(total)), f"lost: {sorted(set(range(total)) - done())}"
        finally:
            client.close()


def test_a_forked_child_uses_its_own_connections(make: Make) -> None:
    """A prefork pool's children inherit the broker: they must not share its sockets."""
    broker = make(socket_timeout=3)  # a stolen reply shows up as a timeout, not a hang
    broker.publish("fork", message(1))
    broker.ack(broker.claim(["fork"], limit=1, timeout=1))
    inherited = {id(broker._direct._local.conn), id(broker._local.channel.conn)}
    pid = os.fork()
    if pid == 0:  # the child: publish and claim on the inherited instance
        code = 1
        try:
            for n in range(300):
                broker.publish("fork-child", message(n))
            got = claim_until(broker, ["fork-child"], 300, within=5)
            broker.ack(got)
            own = {id(broker._direct._local.conn), id(broker._local.channel.conn)}
            code = 0 if numbers(got) == list(range(300)) else 3
            code = code or (4 if own & inherited else 0)
        finally:
            os._exit(code)
    for n in range(300):  # meanwhile the parent keeps using its own connections
        broker.publish("fork-parent", message(n))
    got = claim_until(broker, ["fork-parent"], 300, within=5)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert numbers(got) == list(range(300))


def test_sentinel_url_finds_the_master(tmp_path: Path) -> None:
    with private_redis(tmp_path) as master, private_sentinel(tmp_path, master) as port:
        # The first sentinel listed is down: the broker asks the next one.
        url = f"sentinel://127.0.0.1:{free_port()}/2;sentinel://127.0.0.1:{port}/2"
        broker = broker_for_url(url, options={"master_name": "mymaster"})
        try:
            broker.connect()
            broker.publish("sentinel", message(1))
            assert master.client(2).llen("sentinel") == 1
            got = broker.claim(["sentinel"], limit=1, timeout=1)
            assert numbers(got) == [1]
            broker.ack(got)
        finally:
            broker.close()


def test_a_consumer_that_got_work_stops_being_notified(make: Make) -> None:
    """A worker whose prefetch window fills may not claim for minutes: no pile-up meanwhile."""
    consumer, publisher = make(), make()
    got: list[Delivery] = []
    thread = threading.Thread(
        target=lambda: got.extend(consumer.claim(["quiet"], limit=1, timeout=5))
    )
    thread.start()
    time.sleep(0.2)  # idle and armed
    publisher.publish("quiet", message(1))
    thread.join(5)
    assert numbers(got) == [1]
    [channel] = consumer._channels
    assert channel.armed is None
    for n in range(50):
        publisher.publish("quiet", message(n))
    notified = 0
    while channel.sub.can_read(0.2):
        channel.sub.read_response()
        notified += 1
    # At most one publish can overtake the tracking-off command in flight.
    assert notified <= 1, f"{notified} notifications while busy"
    consumer.ack(got)


def test_an_idle_consumer_woken_by_a_publish_claims_in_two_round_trips(make: Make) -> None:
    """Woken, it claims with tracking off (its own pops notify nobody), then re-arms with
    one claim and sleeps until the next publish: no spurious wake-up in between."""
    consumer, publisher = make(), make()
    assert consumer.claim(["lone"], limit=4, timeout=0.05) == []  # armed, idle
    rounds = 0
    real_round = consumer._round

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal rounds
        rounds += 1
        return real_round(*args, **kwargs)

    consumer._round = counted  # type: ignore[method-assign]
    for n in range(3):
        timer = threading.Timer(0.1, publisher.publish, ("lone", message(n)))
        timer.start()
        got = consumer.claim(["lone"], limit=4, timeout=5)
        timer.join()
        assert numbers(got) == [n]
        assert consumer.claim(["lone"], limit=3, timeout=0.3) == []  # re-arms, then sleeps
        consumer.ack(got)
    assert rounds <= 3 * 2 + 1, f"{rounds} claim round trips for 3 messages"


def test_a_delay_falling_due_wakes_a_consumer_claiming_in_short_calls(make: Make) -> None:
    """The due time known from an earlier call still bounds the sleep of later ones."""
    consumer, publisher = make(), make()
    assert consumer.claim(["soon"], limit=1, timeout=0.05) == []
    eta = time.time() + 0.6
    publisher.publish("soon", message(1), eta=eta)
    got: list[Delivery] = []
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        got = consumer.claim(["soon"], limit=1, timeout=0.25)
    assert numbers(got) == [1]
    assert time.time() < eta + 1.0
    consumer.ack(got)


def test_round_robin_alternates_queues_within_a_step(make: Make) -> None:
    fair, fixed = make(), make(queue_order_strategy="priority")
    fair.publish_many([Outgoing(q, message(n)) for n in range(4) for q in ("rr-a", "rr-b")])
    queues = ["rr-a", "rr-b"]
    assert [fair.claim(queues, limit=1, timeout=1)[0].queue for _ in range(4)] == [
        "rr-a",
        "rr-b",
        "rr-a",
        "rr-b",
    ]
    assert [fixed.claim(queues, limit=1, timeout=1)[0].queue for _ in range(2)] == [
        "rr-a",
        "rr-a",
    ]
