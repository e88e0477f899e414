"""RQ on Redis: a pool of forking workers (``rq worker-pool``)."""

from __future__ import annotations

from typing import Any

from systems.base import (
    QUEUE,
    REDIS_URL,
    System,
    bin_path,
    count_redis_keys,
    flush_redis,
    send_loop,
)

SOURCE = f"""
import time

from redis import Redis
from rq import Queue

queue = Queue({QUEUE!r}, connection=Redis.from_url({REDIS_URL!r}))


def noop():
    done()


def sleep():
    time.sleep(0.1)
    done()
"""


class RqRedis(System):
    name = "rq-redis"
    library = "rq"
    broker = "redis"
    broker_port = 6379
    bulk_api = "queue.enqueue_many([Queue.prepare_data(noop) for _ in range(N)])"
    call_api = "queue.enqueue(noop)"
    io_pool = "worker-pool -n 100 (no I/O pool: one process per job)"

    def task_source(self) -> str:
        return SOURCE

    def _options(self) -> dict[str, Any]:
        # RQ always records the job; result_ttl=0 drops it (and its result) once finished.
        return {} if self.ctx.results else {"result_ttl": 0}

    def enqueue(self, task: str, count: int, deadline: float) -> int:
        assert self.tasks is not None
        func, options, queue = getattr(self.tasks, task), self._options(), self.tasks.queue
        return send_loop(lambda: queue.enqueue(func, **options), count, deadline)

    def enqueue_bulk(self, count: int) -> int:
        from rq import Queue

        assert self.tasks is not None
        options = self._options()
        jobs = [Queue.prepare_data(self.tasks.noop, **options) for _ in range(count)]
        self.tasks.queue.enqueue_many(jobs)
        return count

    def worker_argv(self, io: bool) -> list[str]:
        workers = "100" if io else "2"
        return [bin_path("rq"), "worker-pool", "-u", REDIS_URL, "-q", "-n", workers, QUEUE]

    def reset(self) -> None:
        flush_redis()

    def results_stored(self) -> int | None:
        return count_redis_keys("rq:results:*")
