"""arq on Redis (asyncio; runs in its own virtual environment for its redis-py pin)."""

from __future__ import annotations

from typing import Any

from systems.base import REDIS_DB, AsyncSystem, bin_path, count_redis_keys, flush_redis

SOURCE = f"""
import asyncio

from arq.connections import RedisSettings

REDIS = RedisSettings(host="127.0.0.1", port=6379, database={REDIS_DB})
# WARNING level, as every system: arq logs two lines per job at INFO.
LOGGING = {{
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {{"console": {{"class": "logging.StreamHandler"}}}},
    "loggers": {{"arq": {{"handlers": ["console"], "level": "WARNING"}}}},
}}


async def noop(ctx):
    done()


async def sleep(ctx):
    await asyncio.sleep(0.1)
    done()


class WorkerSettings:
    functions = [noop, sleep]
    redis_settings = REDIS
    keep_result = {{keep}}  # 0: results not kept


class IOWorkerSettings:  # arq reads a settings class's own attributes, not inherited ones
    functions = [noop, sleep]
    redis_settings = REDIS
    keep_result = {{keep}}
    max_jobs = 100
"""


class ArqRedis(AsyncSystem):
    name = "arq-redis"
    library = "arq"
    broker = "redis"
    broker_port = 6379
    io_pool = "asyncio, max_jobs=100"
    call_api = 'await pool.enqueue_job("noop")'

    def task_source(self) -> str:
        return SOURCE.replace("{keep}", "3600" if self.ctx.results else "0")

    async def connect(self) -> Any:
        from arq import create_pool

        assert self.tasks is not None
        return await create_pool(self.tasks.REDIS)

    async def send(self, task: str) -> None:
        await self.client.enqueue_job(task)

    async def disconnect(self) -> None:
        await self.client.aclose()

    def worker_argv(self, io: bool) -> list[str]:
        settings = "IOWorkerSettings" if io else "WorkerSettings"
        return [
            bin_path("arq"),
            f"benchtasks.{settings}",
            "--custom-log-dict",
            "benchtasks.LOGGING",
        ]

    def reset(self) -> None:
        flush_redis()

    def results_stored(self) -> int | None:
        return count_redis_keys("arq:result:*")
