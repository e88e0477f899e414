"""taskiq with taskiq-redis (``ListQueueBroker``; results in ``RedisAsyncResultBackend``)."""

from __future__ import annotations

from typing import Any

from systems.base import QUEUE, REDIS_URL, AsyncSystem, bin_path, count_redis_keys, flush_redis

SOURCE = f"""
import asyncio

from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

broker = ListQueueBroker({REDIS_URL!r}, queue_name={QUEUE!r})
if {{results}}:
    broker = broker.with_result_backend(
        RedisAsyncResultBackend({REDIS_URL!r}, prefix_str="bench-result")
    )


@broker.task
async def noop():
    done()


@broker.task
async def sleep():
    await asyncio.sleep(0.1)
    done()
"""


class TaskiqRedis(AsyncSystem):
    name = "taskiq-redis"
    library = "taskiq"
    broker = "redis"
    broker_port = 6379
    io_pool = "asyncio, --workers 1 --max-async-tasks 100"
    call_api = "await noop.kiq()"

    def task_source(self) -> str:
        return SOURCE.replace("{results}", str(self.ctx.results))

    async def connect(self) -> Any:
        assert self.tasks is not None
        await self.tasks.broker.startup()
        return self.tasks.broker

    async def send(self, task: str) -> None:
        assert self.tasks is not None
        await getattr(self.tasks, task).kiq()

    async def disconnect(self) -> None:
        await self.client.shutdown()

    def worker_argv(self, io: bool) -> list[str]:
        # taskiq's default is two worker processes, each running up to 100 async tasks.
        extra = ["--workers", "1", "--max-async-tasks", "100"] if io else ["--workers", "2"]
        return [bin_path("taskiq"), "worker", "benchtasks:broker", "--log-level", "WARNING", *extra]

    def reset(self) -> None:
        flush_redis()

    def results_stored(self) -> int | None:
        return count_redis_keys("bench-result:*")
