"""The broker conformance suite on RabbitMQ (127.0.0.1:5672, guest/guest).

The module works in a virtual host of its own, deleted when it ends. Every case of the
suite runs; a few promises mean something else on RabbitMQ, and those cases are adapted
here, each with the reason:

- priority: on RabbitMQ a higher number is taken first (9 before 0), as in Celery on
  RabbitMQ; celeriac's contract keeps each broker's meaning, so the three priority cases
  check the same ordering reversed;
- delayed messages wait in the server's delay cascade (shared per virtual host, see
  ``celeriac.brokers.amqp_topology``), not in their queue: ``size`` and ``purge`` see the
  ready messages only, as RabbitMQ's own queue length does (Celery's ``purge`` on RabbitMQ
  does not reach messages held for later either).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac.brokers.amqp import AMQPBroker
from celeriac.brokers.base import Broker, Outgoing
from celeriac.config import Settings
from celeriac.testing.broker_suite import (
    PROMPTLY,
    BrokerConformance,
    BrokerFactory,
    claim_until,
    message,
    numbers,
)
from tests.amqp.rabbit import delete_vhost, new_vhost, url_for


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    name = new_vhost("conformance")
    yield name
    delete_vhost(name)


def _settings() -> Settings:
    conf = Settings()
    conf.task_queue_max_priority = 9  # queues honour priorities, as a Celery app sets up
    return conf


class TestAMQPBroker(BrokerConformance):
    @pytest.fixture
    def broker_factory(self, vhost: str) -> Iterator[BrokerFactory]:
        made: list[Broker] = []

        def make(options: dict[str, Any] | None = None) -> Broker:
            broker = AMQPBroker(url_for(vhost), options=options, conf=_settings())
            made.append(broker)
            return broker

        yield make
        for broker in made:
            broker.close()

    @pytest.fixture
    def broker(self, broker_factory: BrokerFactory) -> Broker:
        broker = broker_factory()
        broker.connect()
        return broker

    # --- adapted: on RabbitMQ 9 is the highest priority ---------------------------------

    def test_priority_order(self, broker: Broker, unique_queue: str) -> None:
        priorities = [9, 0, 5, None, 9, 5, 0, 5, None, 9]
        broker.publish_many(
            [Outgoing(unique_queue, message(n, priority=p)) for n, p in enumerate(priorities)]
        )
        got = claim_until(broker, [unique_queue], len(priorities), within=PROMPTLY)
        expected = sorted(range(len(priorities)), key=lambda n: (-(priorities[n] or 0), n))
        assert numbers(got) == expected
        broker.ack(got)

    def test_priority_order_within_one_claim_batch(self, broker: Broker, unique_queue: str) -> None:
        broker.publish_many([Outgoing(unique_queue, message(n, priority=0)) for n in range(3)])
        broker.publish(unique_queue, message(3, priority=9))
        got = broker.claim([unique_queue], limit=2, timeout=PROMPTLY)
        assert numbers(got) == [3, 0]
        broker.ack(got + claim_until(broker, [unique_queue], 2, within=PROMPTLY))

    def test_claim_from_several_queues(self, broker: Broker, unique_queue: str) -> None:
        low, high, other = f"{unique_queue}.low", f"{unique_queue}.high", f"{unique_queue}.x"
        broker.publish_many(
            [
                Outgoing(low, message(0, priority=0)),
                Outgoing(high, message(1, priority=5)),
                Outgoing(other, message(2)),
                Outgoing(low, message(3, priority=0)),
                Outgoing(high, message(4, priority=5)),
            ]
        )
        got = claim_until(broker, [low, high], 4, within=PROMPTLY)
        assert numbers(got) == [1, 4, 0, 3]
        assert [d.queue for d in got] == [high, high, low, low]
        assert broker.claim([low, high], limit=10, timeout=0.1) == []
        assert broker.size(other) == 1
        broker.ack(got)

    # --- adapted: delayed messages wait in the delay cascade, outside their queue ---------

    def test_delayed_message_waits_for_its_eta(self, broker: Broker, unique_queue: str) -> None:
        eta = time.time() + 0.3
        broker.publish(unique_queue, message(1), eta=eta)
        broker.publish(unique_queue, message(2), eta=time.time() - 10)  # past eta: ready now
        assert numbers(broker.claim([unique_queue], limit=10, timeout=PROMPTLY)) == [2]
        assert broker.size(unique_queue) == 0  # waiting in the cascade, not in the queue
        assert broker.claim([unique_queue], limit=10, timeout=0) == []
        got = broker.claim([unique_queue], limit=10, timeout=3.0)
        assert numbers(got) == [1]
        assert time.time() >= eta - 0.02  # never before its eta (rounded up to the second)
        assert got[0].redelivered is False
        broker.ack(got)

    def test_purge_removes_ready_and_delayed(self, broker: Broker, unique_queue: str) -> None:
        other = f"{unique_queue}.other"
        broker.publish_many([Outgoing(unique_queue, message(n)) for n in range(4)])
        broker.publish_many(
            [Outgoing(unique_queue, message(n), eta=time.time() + 60) for n in (10, 11)]
        )
        broker.publish(other, message(20))
        held = broker.claim([unique_queue], limit=1, timeout=PROMPTLY)
        assert broker.purge(unique_queue) == 3  # the ready ones; the delayed two still wait
        assert broker.size(unique_queue) == 0
        assert broker.purge(unique_queue) == 0
        assert broker.size(other) == 1
        broker.reject(held, requeue=True)
        assert numbers(broker.claim([unique_queue], limit=10, timeout=PROMPTLY)) == [0]

    def test_size_counts_ready_and_delayed(self, broker: Broker, unique_queue: str) -> None:
        assert broker.size(unique_queue) == 0
        broker.publish_many([Outgoing(unique_queue, message(n)) for n in range(3)])
        broker.publish(unique_queue, message(3), eta=time.time() + 60)
        assert broker.size(unique_queue) == 3  # the delayed one waits in the cascade
        held = broker.claim([unique_queue], limit=1, timeout=PROMPTLY)
        assert broker.size(unique_queue) == 2
        broker.ack(held)
        assert broker.size(unique_queue) == 2

    # --- adapted: a requeued message may be on its way back to the consumer for a moment ---

    def test_reject_with_requeue_redelivers(self, broker: Broker, unique_queue: str) -> None:
        broker.publish_many([Outgoing(unique_queue, message(n)) for n in (1, 2)])
        first = broker.claim([unique_queue], limit=1, timeout=PROMPTLY)
        assert numbers(first) == [1]
        broker.reject(first, requeue=True)
        # RabbitMQ pushes the requeued message straight back to a consumer with room; while
        # it is on the wire neither the queue nor the consumer's buffer counts it, so the
        # count is read until it settles (within milliseconds) instead of once.
        deadline = time.monotonic() + PROMPTLY
        while broker.size(unique_queue) != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert broker.size(unique_queue) == 2
        got = claim_until(broker, [unique_queue], 2, within=PROMPTLY)
        assert sorted(numbers(got)) == [1, 2]
        by_number = {numbers([d])[0]: d for d in got}
        assert by_number[1].redelivered is True
        assert by_number[2].redelivered is False
        assert by_number[1].message == first[0].message
        broker.ack(got)
