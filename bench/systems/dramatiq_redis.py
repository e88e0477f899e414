"""Dramatiq on Redis (broker and, for W2r, result backend)."""

from __future__ import annotations

from systems._dramatiq import DramatiqBase
from systems.base import REDIS_URL, flush_redis


class DramatiqRedis(DramatiqBase):
    name = "dramatiq-redis"
    broker = "redis"
    broker_port = 6379
    broker_module = "dramatiq.brokers.redis"
    broker_class = "RedisBroker"
    broker_url = REDIS_URL

    def reset(self) -> None:
        flush_redis()
