"""The RabbitMQ broker's own promises: Celery's declarations, routing through exchanges,
quorum queues, publisher confirms and the delay cascade's routing keys."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from celeriac.brokers import amqp_topology as topo
from celeriac.brokers.amqp import AMQPBroker
from celeriac.brokers.base import Outgoing
from celeriac.config import Settings
from celeriac.routing import Exchange, Queue
from celeriac.testing.broker_suite import claim_until, message, numbers
from tests.amqp.rabbit import url_for


def _settings(**values: object) -> Settings:
    conf = Settings()
    for name, value in values.items():
        conf[name] = value
    return conf


@pytest.fixture
def make(vhost: str) -> Iterator[object]:
    made: list[AMQPBroker] = []

    def build(**settings: object) -> AMQPBroker:
        broker = AMQPBroker(url_for(vhost), conf=_settings(**settings))
        made.append(broker)
        return broker

    yield build
    for broker in made:
        broker.close()


def test_declarations_match_celerys(vhost: str, make) -> None:
    """A queue Celery declared first is accepted as is (no 'inequivalent arg')."""
    import celery
    from kombu import Exchange as KExchange
    from kombu import Queue as KQueue

    app = celery.Celery(broker=url_for(vhost))
    app.conf.task_queues = [
        KQueue("c-default", KExchange("c-default"), routing_key="c-default"),
        KQueue("c-email", KExchange("c-tasks", type="topic"), routing_key="email.#"),
    ]
    app.conf.task_queue_max_priority = 10
    with app.connection_for_write() as conn:
        for queue in app.amqp.queues.values():
            queue(conn.default_channel).declare()
    broker = make(
        task_queues=[
            Queue("c-default", Exchange("c-default"), routing_key="c-default"),
            Queue("c-email", Exchange("c-tasks", type="topic"), routing_key="email.#"),
        ],
        task_queue_max_priority=10,
    )
    broker.publish_many([Outgoing("c-default", message(1)), Outgoing("c-email", message(2))])
    got = claim_until(broker, ["c-default", "c-email"], 2, within=2.0)
    assert sorted(numbers(got)) == [1, 2]
    broker.ack(got)


def test_topic_and_fanout_routing(make) -> None:
    queues = [
        Queue("t-email", Exchange("t-tasks", type="topic"), routing_key="email.#"),
        Queue("t-sms", Exchange("t-tasks", type="topic"), routing_key="sms.*"),
        Queue("f-one", Exchange("t-fan", type="fanout")),
        Queue("f-two", Exchange("t-fan", type="fanout")),
    ]
    broker = make(task_queues=queues)
    for name in ("t-email", "t-sms", "f-one", "f-two"):
        broker.declare(name)
    broker.publish_many(
        [
            Outgoing("t-email", message(1), exchange="t-tasks", routing_key="email.welcome.x"),
            Outgoing("t-sms", message(2), exchange="t-tasks", routing_key="sms.short"),
            Outgoing("t-sms", message(3), exchange="t-tasks", routing_key="sms.too.long"),
            Outgoing("f-one", message(4)),
        ]
    )
    got = claim_until(broker, ["t-email", "t-sms", "f-one", "f-two"], 4, within=2.0)
    by_queue = sorted((d.queue, numbers([d])[0]) for d in got)
    assert by_queue == [("f-one", 4), ("f-two", 4), ("t-email", 1), ("t-sms", 2)]
    assert {d.delivery_info["exchange"] for d in got} == {"t-tasks", "t-fan"}
    broker.ack(got)


def test_quorum_queue_round_trip(make) -> None:
    broker = make(task_create_missing_queue_type="quorum")
    broker.publish_many([Outgoing("q-quorum", message(n)) for n in range(3)])
    got = claim_until(broker, ["q-quorum"], 3, within=3.0)
    assert numbers(got) == [0, 1, 2]
    broker.ack(got)


def test_publish_returns_once_the_server_has_it(make) -> None:
    producer, observer = make(), make()
    producer.publish("confirmed", message(1))
    assert observer.size("confirmed") == 1  # another connection sees it at once


def test_delay_routing_keys() -> None:
    assert topo.delay_seconds(time.time() + 0.2, time.time()) == 1
    assert topo.delay_seconds(100.0, 200.0) == 0
    key = topo.delay_routing_key(5, "default")
    assert key.split(".")[-1] == "default"
    assert key.split(".")[:-1] == list(format(5, "028b"))
    assert topo.delay_routing_key(2**40, "q").startswith(".".join(["1"] * 28))


def test_long_countdown_waits_in_the_cascade(vhost: str, make) -> None:
    import amqp

    broker = make()
    broker.publish("later", message(1), eta=time.time() + 3600)
    assert broker.size("later") == 0
    connection = amqp.Connection("127.0.0.1:5672", virtual_host=vhost)
    connection.connect()
    try:
        channel = connection.channel()
        # 3600 s = 0b111000010000: the message waits first at level 11 (2048 s).
        waiting = channel.queue_declare(topo.level_name(11), passive=True).message_count
    finally:
        connection.close()
    assert waiting == 1


def test_queue_length_through_app_connection(vhost: str) -> None:
    from celeriac import Celery

    app = Celery("conn", broker=url_for(vhost))
    try:
        for n in range(3):
            app.send_task("conn.add", (n, n), queue="conn-lengths")
        with app.connection_or_acquire() as conn:
            declared = conn.default_channel.queue_declare(queue="conn-lengths", passive=True)
            assert declared.message_count == 3
            assert conn.default_channel.queue_purge("conn-lengths") == 3
    finally:
        app.close()
