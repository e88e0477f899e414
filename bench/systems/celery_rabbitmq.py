"""Celery on RabbitMQ (results, for W2r, on Redis), prefork and threads pools."""

from __future__ import annotations

from systems._celery import CeleryBase
from systems.base import QUEUE, amqp_url, delete_amqp_queues, flush_redis


class CeleryRabbitPrefork(CeleryBase):
    name = "celery-rabbitmq-prefork"
    broker = "rabbitmq"
    broker_port = 5672
    pool = "prefork"
    io_pool_name = "gevent"
    io_pool = "gevent, -c 100"
    broker_url = amqp_url()

    def reset(self) -> None:
        delete_amqp_queues([QUEUE])
        flush_redis()


class CeleryRabbitThreads(CeleryRabbitPrefork):
    name = "celery-rabbitmq-threads"
    pool = "threads"
    io_pool_name = "threads"
    io_pool = "threads, -c 100"
