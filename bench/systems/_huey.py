"""Huey on any storage: the shared part of the huey_* adapters."""

from __future__ import annotations

from systems.base import System, bin_path, send_loop

SOURCE = """
import os
import time

if os.environ.get("BENCH_GEVENT"):  # greenlet workers: Huey asks the program to patch first
    from gevent import monkey

    monkey.patch_all()

from huey import {cls}

huey = {cls}({queue!r}, {storage}, results={results}, store_none=True)


@huey.task()
def noop():
    done()


@huey.task()
def sleep():
    time.sleep(0.1)
    done()
"""


class HueyBase(System):
    library = "huey"
    io_pool = "greenlet, -w 100"
    call_api = "noop()"

    def enqueue(self, task: str, count: int, deadline: float) -> int:
        return send_loop(getattr(self.tasks, task), count, deadline)

    def worker_argv(self, io: bool) -> list[str]:
        kind, workers = ("greenlet", "100") if io else ("process", "2")
        return [bin_path("huey_consumer"), "benchtasks.huey", "-k", kind, "-w", workers, "-q"]

    def worker_env(self, io: bool) -> dict[str, str]:
        return {"BENCH_GEVENT": "1"} if io else {}
