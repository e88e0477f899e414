"""Huey on Redis (``RedisHuey``, blocking reads)."""

from __future__ import annotations

from systems._huey import SOURCE, HueyBase
from systems.base import QUEUE, REDIS_URL, flush_redis


class HueyRedis(HueyBase):
    name = "huey-redis"
    broker = "redis"
    broker_port = 6379

    def task_source(self) -> str:
        storage = f"url={REDIS_URL!r}"
        return SOURCE.format(
            cls="RedisHuey", queue=QUEUE, storage=storage, results=self.ctx.results
        )

    def reset(self) -> None:
        flush_redis()

    def results_stored(self) -> int | None:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            return int(client.hlen(f"huey.results.{QUEUE}"))
        finally:
            client.close()
