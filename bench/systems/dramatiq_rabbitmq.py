"""Dramatiq on RabbitMQ (results, for W2r, on Redis)."""

from __future__ import annotations

from systems._dramatiq import DramatiqBase
from systems.base import QUEUE, amqp_url, delete_amqp_queues, flush_redis


class DramatiqRabbit(DramatiqBase):
    name = "dramatiq-rabbitmq"
    broker = "rabbitmq"
    broker_port = 5672
    broker_module = "dramatiq.brokers.rabbitmq"
    broker_class = "RabbitmqBroker"
    broker_url = amqp_url()

    def reset(self) -> None:
        # Dramatiq's queue, its delay queue and its dead-letter queue.
        delete_amqp_queues([QUEUE, f"{QUEUE}.DQ", f"{QUEUE}.XQ"])
        flush_redis()
