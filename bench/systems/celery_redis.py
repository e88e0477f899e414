"""Celery on Redis (broker and, for W2r, result backend), prefork and threads pools."""

from __future__ import annotations

from systems._celery import CeleryBase
from systems.base import REDIS_URL, flush_redis


class CeleryRedisPrefork(CeleryBase):
    name = "celery-redis-prefork"
    broker = "redis"
    broker_port = 6379
    pool = "prefork"
    io_pool_name = "gevent"
    io_pool = "gevent, -c 100"
    broker_url = REDIS_URL

    def reset(self) -> None:
        flush_redis()


class CeleryRedisThreads(CeleryRedisPrefork):
    name = "celery-redis-threads"
    pool = "threads"
    io_pool_name = "threads"
    io_pool = "threads, -c 100"
