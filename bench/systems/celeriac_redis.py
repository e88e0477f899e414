"""celeriac on Redis (broker and, for W2r, result backend), ``-P threads -c 2``."""

from __future__ import annotations

from systems._celeriac import CeleriacBase
from systems.base import REDIS_URL, count_redis_keys, flush_redis


class CeleriacRedis(CeleriacBase):
    name = "celeriac-redis"
    broker = "redis"
    broker_port = 6379
    urls = f", broker={REDIS_URL!r}, backend={REDIS_URL!r}"

    def reset(self) -> None:
        flush_redis()

    def results_stored(self) -> int | None:
        return count_redis_keys("celery-task-meta-*")
