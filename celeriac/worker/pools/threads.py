"""The threads pool: a fixed set of threads taking jobs from one queue.

Good for I/O-bound tasks and for no-op throughput; CPU-bound Python code shares one core
because of the GIL (use prefork for that).
"""

from __future__ import annotations

import queue
import threading

from celeriac.worker.pools.base import Job, Pool, run_inline

__all__ = ["ThreadPool"]


_STOP = None


class ThreadPool(Pool):
    """``concurrency`` threads, each running one job at a time."""

    name = "threads"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.concurrency):
            thread = threading.Thread(
                target=self._serve, name=f"ThreadPoolWorker-{index + 1}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            run_inline(job)

    def stop(self, *, wait: bool) -> None:
        for _ in self._threads:
            self._jobs.put(_STOP)
        if wait:
            for thread in self._threads:
                thread.join()
        self._threads.clear()
