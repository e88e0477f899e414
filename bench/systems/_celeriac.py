"""celeriac on any broker: the shared part of the celeriac_* adapters."""

from __future__ import annotations

from typing import ClassVar

from systems.base import QUEUE, System, bin_path, send_loop

SOURCE = """
import time

from celeriac import Celery

app = Celery("benchtasks"{urls})
app.conf.task_default_queue = {queue!r}
app.conf.task_ignore_result = {ignore}


@app.task
def noop():
    done()


@app.task
def sleep():
    time.sleep(0.1)
    done()
"""


class CeleriacBase(System):
    library = "celeriac"
    bulk_api = "group(noop.s() for _ in range(N)).apply_async()"
    call_api = "noop.delay()"
    io_pool = "threads, -c 100"
    pool: ClassVar[str] = "threads"  # the pool for no-op tasks (W1-W4), with -c 2
    urls: ClassVar[str] = ""  # broker/backend arguments; none: the embedded SQLite file

    def task_source(self) -> str:
        return SOURCE.format(urls=self.urls, queue=QUEUE, ignore=not self.ctx.results)

    def enqueue(self, task: str, count: int, deadline: float) -> int:
        return send_loop(getattr(self.tasks, task).delay, count, deadline)

    def enqueue_bulk(self, count: int) -> int:
        from celeriac import group

        assert self.tasks is not None
        group(self.tasks.noop.s() for _ in range(count)).apply_async()
        return count

    def worker_argv(self, io: bool) -> list[str]:
        pool, concurrency = ("threads", "100") if io else (self.pool, "2")
        command = [bin_path("celeriac"), "-A", "benchtasks", "worker"]
        return [*command, "-P", pool, "-c", concurrency, "-l", "warning"]
