"""celeriac on RabbitMQ (results, for W2r, on Redis as for Celery's row), ``-P threads -c 2``."""

from __future__ import annotations

from systems._celeriac import CeleriacBase
from systems.base import (
    QUEUE,
    REDIS_URL,
    amqp_url,
    count_redis_keys,
    delete_amqp_queues,
    flush_redis,
)


class CeleriacRabbit(CeleriacBase):
    name = "celeriac-rabbitmq"
    broker = "rabbitmq"
    broker_port = 5672
    urls = f", broker={amqp_url()!r}, backend={REDIS_URL!r}"

    def reset(self) -> None:
        delete_amqp_queues([QUEUE])
        flush_redis()

    def results_stored(self) -> int | None:
        return count_redis_keys("celery-task-meta-*")
