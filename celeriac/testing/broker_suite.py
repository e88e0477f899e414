"""The conformance suite every broker passes, celeriac's own and third parties' alike.

Subclass :class:`BrokerConformance` in a test module and provide two pytest fixtures:

``broker``
    a fresh broker on isolated storage (its own file, database, key prefix or vhost);
    close it after the test.
``broker_factory``
    a callable ``broker_factory(options=None) -> Broker`` returning another instance on the
    *same* storage as ``broker`` (a second consumer, or one with a different
    ``visibility_timeout``); close what it made after the test.

``unique_queue`` (a fresh queue name per test) is provided here and may be overridden::

    class TestMyBroker(BrokerConformance):
        @pytest.fixture
        def broker(self, tmp_path):
            broker = MyBroker(f"my://{tmp_path}")
            yield broker
            broker.close()

        @pytest.fixture
        def broker_factory(self, broker):
            ...

Every wait in the suite is bounded, so a broken broker fails a test instead of hanging it.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from celeriac.brokers.base import Broker, Delivery, Outgoing, Subscription
from celeriac.message import Message

__all__ = ["BrokerConformance", "BrokerFactory", "claim_until", "message", "numbers"]

#: ``broker_factory(options=None)``: another instance on the same storage as ``broker``.
BrokerFactory = Callable[..., Broker]

#: How long the suite waits for something that should happen at once (seconds).
PROMPTLY = 1.0
#: The lease used by the tests where leases must lapse quickly (seconds).
SHORT_LEASE = 0.3


def message(number: int = 0, *, priority: int | None = None, **headers: Any) -> Message:
    """A small task-like message whose headers carry ``number`` (to check order and identity)."""
    properties: dict[str, Any] = {"correlation_id": f"id-{number}"}
    if priority is not None:
        properties["priority"] = priority
    return Message(
        body=f"[[{number}], {{}}, {{}}]".encode(),
        headers={"task": "tests.noop", "id": f"id-{number}", "n": number, **headers},
        properties=properties,
    )


def numbers(deliveries: Sequence[Delivery]) -> list[int]:
    """The ``n`` header of each delivery, in order."""
    return [int(delivery.message.headers["n"]) for delivery in deliveries]


def claim_until(
    broker: Broker, queues: Sequence[str], count: int, *, within: float, limit: int = 100
) -> list[Delivery]:
    """Claim until ``count`` messages arrived or ``within`` seconds passed."""
    deadline = time.monotonic() + within
    got: list[Delivery] = []
    while len(got) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        got += broker.claim(queues, limit=min(limit, count - len(got)), timeout=remaining)
    return got


class BrokerConformance:
    """The behaviour :class:`~celeriac.brokers.base.Broker` promises, one test per promise."""

    @pytest.fixture
    def unique_queue(self) -> str:
        """A queue name no other test uses."""
        return f"conformance-{uuid.uuid4().hex[:12]}"

    # --- publish and claim -----------------------------------------------------------------

    def test_round_trip_keeps_every_byte(self, broker: Broker, unique_queue: str) -> None:
        sent = [
            Message(
                body="héllo ☃ 日本語 \U0001f600".encode(),
                headers={
                    "task": "tests.unicode",
                    "id": "a",
                    "none": None,
                    "list": [1, "two", None, [3.5, True]],
                    "nested": {"a": {"b": [{"c": None}]}, "ключ": "значение"},
                    "empty": {},
                },
                properties={"correlation_id": "a", "reply_to": "r", "delivery_mode": 2},
                content_type="application/json",
                content_encoding="utf-8",
            ),
            Message(
                body=bytes(range(256)) * 4,
                headers={"task": "tests.binary", "id": "b"},
                properties={"priority": 3, "correlation_id": "b"},
                content_type="application/x-python-serialize",
                content_encoding="binary",
            ),
            Message(body=b"", headers={}, properties={}, content_type="text/plain"),
        ]
        broker.publish_many([Outgoing(unique_queue, m) for m in sent])
        got = claim_until(broker, [unique_queue], 3, within=PROMPTLY)
        assert sorted((d.message for d in got), key=repr) == sorted(sent, key=repr)
        for delivery in got:
            assert delivery.queue == unique_queue
            assert delivery.redelivered is False
            assert isinstance(delivery.tag, str)
            assert isinstance(delivery.message.body, bytes)
        broker.ack(got)

    def test_fifo_order(self, broker: Broker, unique_queue: str) -> None:
        for n in range(10):
            broker.publish(unique_queue, message(n))
        broker.publish_many([Outgoing(unique_queue, message(n)) for n in range(10, 30)])
        got: list[Delivery] = []
        for _ in range(10):  # batches of 3 must continue where the last one stopped
            got += broker.claim([unique_queue], limit=3, timeout=PROMPTLY)
        assert numbers(got) == list(range(30))
        broker.ack(got)

    def test_priority_order(self, broker: Broker, unique_queue: str) -> None:
        priorities = [9, 0, 5, None, 9, 5, 0, 5, None, 9]
        broker.publish_many(
            [Outgoing(unique_queue, message(n, priority=p)) for n, p in enumerate(priorities)]
        )
        got = claim_until(broker, [unique_queue], len(priorities), within=PROMPTLY)
        expected = sorted(range(len(priorities)), key=lambda n: (priorities[n] or 0, n))
        assert numbers(got) == expected
        broker.ack(got)

    def test_priority_order_within_one_claim_batch(self, broker: Broker, unique_queue: str) -> None:
        broker.publish_many([Outgoing(unique_queue, message(n, priority=9)) for n in range(3)])
        broker.publish(unique_queue, message(3, priority=0))
        got = broker.claim([unique_queue], limit=2, timeout=PROMPTLY)
        assert numbers(got) == [3, 0]
        broker.ack(got + claim_until(broker, [unique_queue], 2, within=PROMPTLY))

    def test_claim_limit(self, broker: Broker, unique_queue: str) -> None:
        broker.publish_many([Outgoing(unique_queue, message(n)) for n in range(10)])
        first = broker.claim([unique_queue], limit=3, timeout=PROMPTLY)
        assert numbers(first) == [0, 1, 2]
        rest = broker.claim([unique_queue], limit=100, timeout=PROMPTLY)
        assert numbers(rest) == list(range(3, 10))
        broker.ack(first + rest)

    def test_empty_claim_waits_its_timeout(self, broker: Broker, unique_queue: str) -> None:
        started = time.monotonic()
        assert broker.claim([unique_queue], limit=10, timeout=0.3) == []
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 0.3 + PROMPTLY
        started = time.monotonic()
        assert broker.claim([unique_queue], limit=10, timeout=0) == []
        assert time.monotonic() - started < PROMPTLY

    def test_claim_from_several_queues(self, broker: Broker, unique_queue: str) -> None:
        low, high, other = f"{unique_queue}.low", f"{unique_queue}.high", f"{unique_queue}.x"
        broker.publish_many(
            [
                Outgoing(low, message(0, priority=5)),
                Outgoing(high, message(1, priority=0)),
                Outgoing(other, message(2)),
                Outgoing(low, message(3, priority=5)),
                Outgoing(high, message(4, priority=0)),
            ]
        )
        got = claim_until(broker, [low, high], 4, within=PROMPTLY)
        assert numbers(got) == [1, 4, 0, 3]
        assert [d.queue for d in got] == [high, high, low, low]
        assert broker.claim([low, high], limit=10, timeout=0.1) == []
        assert broker.size(other) == 1
        broker.ack(got)

    def test_claim_names_a_queue_twice(self, broker: Broker, unique_queue: str) -> None:
        broker.publish_many([Outgoing(unique_queue, message(n)) for n in range(3)])
        got = broker.claim([unique_queue, unique_queue], limit=10, timeout=PROMPTLY)
        assert numbers(got) == [0, 1, 2]
        broker.ack(got)

    # --- waking up -------------------------------------------------------------------------

    def test_blocked_claim_wakes_on_publish(
        self, broker: Broker, broker_factory: BrokerFactory, unique_queue: str
    ) -> None:
        publisher = broker_factory()
        got: list[Delivery] = []
        woke: list[float] = []

        def consume() -> None:
            got.extend(broker.claim([unique_queue], limit=1, timeout=5.0))
            woke.append(time.monotonic())

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        time.sleep(0.2)  # let the claim block
        published = time.monotonic()
        publisher.publish(unique_queue, message(7))
        thread.join(5.0)
        assert numbers(got) == [7]
        assert woke[0] - published < PROMPTLY
        broker.ack(got)

    def test_idle_pickup_latency(
        self, broker: Broker, broker_factory: BrokerFactory, unique_queue: str
    ) -> None:
        publisher = broker_factory()
        rounds = 20
        received: dict[int, float] = {}
        arrived = threading.Semaphore(0)

        def consume() -> None:
            deadline = time.monotonic() + 30
            while len(received) < rounds and time.monotonic() < deadline:
                for delivery in broker.claim([unique_queue], limit=1, timeout=1.0):
                    received[numbers([delivery])[0]] = time.perf_counter()
                    broker.ack([delivery])
                    arrived.release()

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        latencies = []
        for n in range(rounds):
            time.sleep(0.03)  # the consumer goes idle again
            published = time.perf_counter()
            publisher.publish(unique_queue, message(n))
            assert arrived.acquire(timeout=2.0), f"message {n} was not picked up within 2s"
            latencies.append(received[n] - published)
        thread.join(5.0)
        assert statistics.median(latencies) < 0.05, f"median pick-up {statistics.median(latencies)}"

    # --- two consumers ---------------------------------------------------------------------

    def test_two_consumers_never_share_a_message(
        self, broker: Broker, broker_factory: BrokerFactory, unique_queue: str
    ) -> None:
        total = 500
        broker.publish_many([Outgoing(unique_queue, message(n)) for n in range(total)])
        seen: list[list[int]] = [[], []]
        consumers = [broker, broker_factory()]

        def consume(index: int) -> None:
            consumer = consumers[index]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got = consumer.claim([unique_queue], limit=7, timeout=0.3)
                if not got and consumer.size(unique_queue) == 0:
                    return
                seen[index] += numbers(got)
                consumer.ack(got)

        threads = [threading.Thread(target=consume, args=(i,), daemon=True) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(40)
        everything = seen[0] + seen[1]
        assert len(everything) == total, "a message was lost or claimed twice"
        assert sorted(everything) == list(range(total))
        assert broker.size(unique_queue) == 0

    # --- settling --------------------------------------------------------------------------

    def test_ack_removes(self, broker: Broker, unique_queue: str) -> None:
        broker.publish(unique_queue, message(1))
        got = broker.claim([unique_queue], limit=10, timeout=PROMPTLY)
        assert numbers(got) == [1]
        assert broker.size(unique_queue) == 0  # claimed messages are not waiting
        broker.ack(got)
        broker.ack(got)  # acking twice is harmless
        assert broker.size(unique_queue) == 0
        broker.reject(got, requeue=True)  # settling a settled message does nothing
        assert broker.claim([unique_queue], limit=10, timeout=0.1) == []

    def test_reject_with_requeue_redelivers(self, broker: Broker, unique_queue: str) -> None:
        broker.publish_many([Outgoing(unique_queue, message(n)) for n in (1, 2)])
        first = broker.claim([unique_queue], limit=1, timeout=PROMPTLY)
        assert numbers(first) == [1]
        broker.reject(first, requeue=True)
        assert broker.size(unique_queue) == 2
        got = claim_until(broker, [unique_queue], 2, within=PROMPTLY)
        assert sorted(numbers(got)) == [1, 2]
        by_number = {numbers([d])[0]: d for d in got}
        assert by_number[1].redelivered is True
        assert by_number[2].redelivered is False
        assert by_number[1].message == first[0].message
        broker.ack(got)

    def test_reject_without_requeue_drops(self, broker: Broker, unique_queue: str) -> None:
        broker.publish_many([Outgoing(unique_queue, message(n)) for n in (1, 2)])
        got = broker.claim([unique_queue], limit=2, timeout=PROMPTLY)
        broker.reject(got, requeue=False)
        assert broker.size(unique_queue) == 0
        assert broker.claim([unique_queue], limit=10, timeout=0.1) == []

    # --- leases ----------------------------------------------------------------------------

    def test_lapsed_lease_comes_back_redelivered(
        self, broker_factory: BrokerFactory, unique_queue: str
    ) -> None:
        short = {"visibility_timeout": SHORT_LEASE}
        holder, other = broker_factory(options=short), broker_factory(options=short)
        holder.publish(unique_queue, message(1))
        stale = holder.claim([unique_queue], limit=1, timeout=PROMPTLY)
        assert numbers(stale) == [1]
        # The holder goes silent (no renew): the lease lapses and the message returns.
        again = other.claim([unique_queue], limit=1, timeout=SHORT_LEASE + 3.0)
        assert numbers(again) == [1]
        assert again[0].redelivered is True
        assert again[0].message == stale[0].message
        # The old holder's settles name a lease it lost: they must not touch the new one.
        holder.ack(stale)
        holder.reject(stale, requeue=False)
        holder.renew(stale)
        other.reject(again, requeue=True)
        back = other.claim([unique_queue], limit=1, timeout=PROMPTLY)
        assert numbers(back) == [1], "a stale ack removed a message another consumer held"
        other.ack(back)

    def test_renew_keeps_the_lease(self, broker_factory: BrokerFactory, unique_queue: str) -> None:
        lease = SHORT_LEASE * 2  # renewed every SHORT_LEASE / 3: a slow machine keeps margin
        options = {"visibility_timeout": lease}
        holder, other = broker_factory(options=options), broker_factory(options=options)
        holder.publish(unique_queue, message(1))
        held = holder.claim([unique_queue], limit=1, timeout=PROMPTLY)
        assert numbers(held) == [1]
        until = time.monotonic() + lease * 2.5  # well past the first lease
        while time.monotonic() < until:
            holder.renew(held)
            assert other.claim([unique_queue], limit=1, timeout=SHORT_LEASE / 3) == []
        holder.ack(held)
        assert other.claim([unique_queue], limit=1, timeout=lease * 1.5) == []

    # --- delayed messages ------------------------------------------------------------------

    def test_delayed_message_waits_for_its_eta(self, broker: Broker, unique_queue: str) -> None:
        eta = time.time() + 0.3
        broker.publish(unique_queue, message(1), eta=eta)
        broker.publish(unique_queue, message(2), eta=time.time() - 10)  # past eta: ready now
        assert numbers(broker.claim([unique_queue], limit=10, timeout=0)) == [2]
        assert broker.size(unique_queue) == 1
        assert broker.claim([unique_queue], limit=10, timeout=0) == []
        assert time.time() < eta, "too slow to check that the message waited"
        got = broker.claim([unique_queue], limit=10, timeout=3.0)
        assert numbers(got) == [1]
        # Allow for clock granularity, but never much before the eta.
        assert time.time() >= eta - 0.02
        assert got[0].redelivered is False
        broker.ack(got)

    # --- administration --------------------------------------------------------------------

    def test_purge_removes_ready_and_delayed(self, broker: Broker, unique_queue: str) -> None:
        other = f"{unique_queue}.other"
        broker.publish_many([Outgoing(unique_queue, message(n)) for n in range(4)])
        broker.publish_many(
            [Outgoing(unique_queue, message(n), eta=time.time() + 60) for n in (10, 11)]
        )
        broker.publish(other, message(20))
        held = broker.claim([unique_queue], limit=1, timeout=PROMPTLY)
        assert broker.purge(unique_queue) == 5
        assert broker.size(unique_queue) == 0
        assert broker.purge(unique_queue) == 0
        assert broker.size(other) == 1
        # The claimed message survived the purge and can still be settled.
        broker.reject(held, requeue=True)
        assert numbers(broker.claim([unique_queue], limit=10, timeout=PROMPTLY)) == [0]

    def test_size_counts_ready_and_delayed(self, broker: Broker, unique_queue: str) -> None:
        assert broker.size(unique_queue) == 0
        broker.publish_many([Outgoing(unique_queue, message(n)) for n in range(3)])
        broker.publish(unique_queue, message(3), eta=time.time() + 60)
        assert broker.size(unique_queue) == 4
        held = broker.claim([unique_queue], limit=1, timeout=PROMPTLY)
        assert broker.size(unique_queue) == 3
        broker.ack(held)
        assert broker.size(unique_queue) == 3

    # --- dead letters ----------------------------------------------------------------------

    def test_dead_letter_and_requeue(self, broker: Broker, unique_queue: str) -> None:
        sent = message(1, extra={"k": [None, "é"]})
        broker.publish(unique_queue, sent)
        held = broker.claim([unique_queue], limit=1, timeout=PROMPTLY)
        broker.dead_letter(held[0], "NotRegistered('tests.noop')")
        assert broker.size(unique_queue) == 0
        assert broker.claim([unique_queue], limit=1, timeout=0.1) == []
        letters = [d for d in broker.dead_letters() if d.queue == unique_queue]
        assert len(letters) == 1
        assert letters[0].reason == "NotRegistered('tests.noop')"
        assert letters[0].message == sent
        assert abs(letters[0].time - time.time()) < 60
        assert broker.requeue_dead_letters([letters[0].id]) == 1
        assert all(d.id != letters[0].id for d in broker.dead_letters())
        assert broker.requeue_dead_letters([letters[0].id]) == 0
        again = broker.claim([unique_queue], limit=1, timeout=PROMPTLY)
        assert [d.message for d in again] == [sent]
        assert again[0].redelivered is True
        broker.ack(again)

    def test_requeue_all_dead_letters(self, broker: Broker, unique_queue: str) -> None:
        broker.publish_many([Outgoing(unique_queue, message(n)) for n in range(3)])
        held = claim_until(broker, [unique_queue], 3, within=PROMPTLY)
        for delivery in held:
            broker.dead_letter(delivery, f"reason {numbers([delivery])[0]}")
        listed = broker.dead_letters(limit=2)
        assert len(listed) == 2
        assert [d.reason for d in listed] == ["reason 0", "reason 1"]  # oldest first
        assert broker.requeue_dead_letters() == 3
        assert broker.dead_letters() == []
        back = claim_until(broker, [unique_queue], 3, within=PROMPTLY)
        assert sorted(numbers(back)) == [0, 1, 2]
        broker.ack(back)

    # --- broadcast and direct (remote control) ---------------------------------------------

    def test_fanout_reaches_every_live_subscriber(
        self, broker: Broker, broker_factory: BrokerFactory, unique_queue: str
    ) -> None:
        exchange = f"{unique_queue}.pidbox"
        other = broker_factory()
        with (
            broker.fanout_subscribe(exchange, f"a@{unique_queue}") as first,
            other.fanout_subscribe(exchange, f"b@{unique_queue}") as second,
            broker.fanout_subscribe(f"{exchange}.other", f"c@{unique_queue}") as elsewhere,
        ):
            broker.fanout_publish(exchange, message(1))
            broker.fanout_publish(exchange, message(2))
            for subscription in (first, second):
                got = _get_until(subscription, 2, within=PROMPTLY)
                assert numbers_of(got) == [1, 2]
                assert got[0].body == message(1).body
                assert got[0].properties.get("correlation_id") == "id-1"
            assert elsewhere.get(0.1) == []

    def test_fanout_is_missed_by_later_subscribers(self, broker: Broker, unique_queue: str) -> None:
        exchange = f"{unique_queue}.pidbox"
        broker.fanout_publish(exchange, message(1))  # nobody listens: lost, no error
        with broker.fanout_subscribe(exchange, f"a@{unique_queue}") as late:
            assert late.get(0.2) == []
            broker.fanout_publish(exchange, message(2))
            assert numbers_of(_get_until(late, 1, within=PROMPTLY)) == [2]

    def test_direct_routes_by_routing_key(
        self, broker: Broker, broker_factory: BrokerFactory, unique_queue: str
    ) -> None:
        exchange = f"reply.{unique_queue}.pidbox"
        with (
            broker.direct_subscribe(exchange, "k1", f"k1.{exchange}", expires=10) as one,
            broker.direct_subscribe(exchange, "k2", f"k2.{exchange}", expires=10) as two,
        ):
            publisher = broker_factory()
            publisher.direct_publish(exchange, "k1", message(1))
            publisher.direct_publish(exchange, "k2", message(2))
            publisher.direct_publish(exchange, "k1", message(3))
            publisher.direct_publish(exchange, "nobody", message(4))  # unroutable: dropped
            assert numbers_of(_get_until(one, 2, within=PROMPTLY)) == [1, 3]
            assert numbers_of(_get_until(two, 1, within=PROMPTLY)) == [2]
            assert one.get(0.1) == [] and two.get(0.1) == []
        broker.direct_publish(exchange, "k1", message(5))  # closed: dropped, no error

    def test_subscription_get_waits_its_timeout(self, broker: Broker, unique_queue: str) -> None:
        with broker.direct_subscribe("reply.x", unique_queue, unique_queue) as queue:
            started = time.monotonic()
            assert queue.get(0.3) == []
            assert 0.25 <= time.monotonic() - started < 0.3 + PROMPTLY

    def test_blocked_get_wakes_on_publish(
        self, broker: Broker, broker_factory: BrokerFactory, unique_queue: str
    ) -> None:
        exchange = f"{unique_queue}.pidbox"
        publisher = broker_factory()
        with broker.fanout_subscribe(exchange, f"a@{unique_queue}") as subscription:
            timer = threading.Timer(0.2, lambda: publisher.fanout_publish(exchange, message(7)))
            timer.start()
            try:
                started = time.monotonic()
                got = subscription.get(5.0)
                assert numbers_of(got) == [7]
                assert time.monotonic() - started < 0.2 + PROMPTLY
            finally:
                timer.join()


def numbers_of(messages: Sequence[Message]) -> list[int]:
    """The ``n`` header of each message, in order."""
    return [int(m.headers["n"]) for m in messages]


def _get_until(subscription: Subscription, count: int, *, within: float) -> list[Message]:
    deadline = time.monotonic() + within
    got: list[Message] = []
    while len(got) < count and time.monotonic() < deadline:
        got += subscription.get(max(deadline - time.monotonic(), 0.0))
    return got
