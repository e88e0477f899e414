"""Dramatiq on any broker: the shared part of the dramatiq_* adapters."""

from __future__ import annotations

from typing import ClassVar

from systems.base import QUEUE, REDIS_URL, System, bin_path, count_redis_keys, send_loop

SOURCE = """
import time

import dramatiq
from {broker_module} import {broker_class}

broker = {broker_class}(url={broker_url!r})
OPTIONS = {{"store_results": True}} if {results} else {{}}
if {results}:
    from dramatiq.results import Results
    from dramatiq.results.backends.redis import RedisBackend

    broker.add_middleware(Results(backend=RedisBackend(url={results_url!r})))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name={queue!r}, **OPTIONS)
def noop():
    done()


@dramatiq.actor(queue_name={queue!r}, **OPTIONS)
def sleep():
    time.sleep(0.1)
    done()
"""


class DramatiqBase(System):
    library = "dramatiq"
    bulk_api = "group(noop.message() for _ in range(N)).run()"
    call_api = "noop.send()"
    io_pool = "threads, -p 1 -t 100"
    broker_module: ClassVar[str]
    broker_class: ClassVar[str]
    broker_url: ClassVar[str]

    def task_source(self) -> str:
        return SOURCE.format(
            broker_module=self.broker_module,
            broker_class=self.broker_class,
            broker_url=self.broker_url,
            results=self.ctx.results,
            results_url=REDIS_URL,
            queue=QUEUE,
        )

    def enqueue(self, task: str, count: int, deadline: float) -> int:
        return send_loop(getattr(self.tasks, task).send, count, deadline)

    def enqueue_bulk(self, count: int) -> int:
        from dramatiq import group

        assert self.tasks is not None
        group(self.tasks.noop.message() for _ in range(count)).run()
        return count

    def worker_argv(self, io: bool) -> list[str]:
        # Dramatiq's defaults on this machine: one process per core, 8 threads each.
        processes, threads = ("1", "100") if io else ("2", "8")
        return [bin_path("dramatiq"), "benchtasks", "-p", processes, "-t", threads]

    def results_stored(self) -> int | None:
        # Result keys are hashed names; everything in the database outside the broker's
        # "dramatiq:" namespace is a result.
        return count_redis_keys("*") - count_redis_keys("dramatiq:*")
