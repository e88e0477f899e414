"""Celery on any broker: the shared part of the celery_* adapters."""

from __future__ import annotations

from typing import ClassVar

from systems.base import QUEUE, REDIS_URL, System, bin_path, count_redis_keys, send_loop

SOURCE = """
import time

from celery import Celery

app = Celery("benchtasks", broker={broker!r}, backend={backend!r})
app.conf.task_default_queue = {queue!r}
app.conf.task_ignore_result = {ignore}
app.conf.broker_connection_retry_on_startup = True


@app.task
def noop():
    done()


@app.task
def sleep():
    time.sleep(0.1)
    done()
"""


class CeleryBase(System):
    library = "celery"
    bulk_api = "group(noop.s() for _ in range(N)).apply_async()"
    call_api = "noop.delay()"
    pool: ClassVar[str]  # "prefork" or "threads": the pool for no-op tasks
    io_pool_name: ClassVar[str]  # "gevent" or "threads": the pool for W5, with -c 100
    broker_url: ClassVar[str]

    def task_source(self) -> str:
        # Results, when stored (W2r), go to Redis for every broker: Celery's usual pairing.
        backend = REDIS_URL if self.ctx.results else None
        return SOURCE.format(
            broker=self.broker_url, backend=backend, queue=QUEUE, ignore=not self.ctx.results
        )

    def enqueue(self, task: str, count: int, deadline: float) -> int:
        return send_loop(getattr(self.tasks, task).delay, count, deadline)

    def enqueue_bulk(self, count: int) -> int:
        from celery import group

        assert self.tasks is not None
        group(self.tasks.noop.s() for _ in range(count)).apply_async()
        return count

    def worker_argv(self, io: bool) -> list[str]:
        pool = self.io_pool_name if io else self.pool
        concurrency = "100" if io else "2"
        return [
            bin_path("celery"),
            "-A",
            "benchtasks",
            "worker",
            "-P",
            pool,
            "-c",
            concurrency,
            "-l",
            "warning",
        ]

    def results_stored(self) -> int | None:
        return count_redis_keys("celery-task-meta-*")
