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
        self._busy = 0  # threads running a job; guarded by _lock (read by the autoscaler)
        self._lock = threading.Lock()
        self._named = 0  # threads started so far, for their names

    def start(self) -> None:
        self._add_threads(self.concurrency)

    def _add_threads(self, n: int) -> None:
        for _ in range(n):
            self._named += 1
            thread = threading.Thread(
                target=self._serve, name=f"ThreadPoolWorker-{self._named}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    # --- autoscaling (see celeriac.worker.autoscale.Scalable) --------------------------------

    @property
    def size(self) -> int:
        return self.concurrency

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def waiting(self) -> int:
        return self._jobs.qsize()

    def grow(self, n: int) -> None:
        # Forget the threads shrink() ended, or each scaling cycle would leave a few behind.
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        self.concurrency += n
        self._add_threads(n)

    def shrink(self, n: int) -> None:
        # Each stop marker ends one thread once the jobs queued before it have started.
        self.concurrency -= n
        for _ in range(n):
            self._jobs.put(_STOP)

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            with self._lock:
                self._busy += 1
            try:
                run_inline(job, soft_limit=True)
            finally:
                with self._lock:
                    self._busy -= 1

    def stop(self, *, wait: bool) -> None:
        for _ in self._threads:
            self._jobs.put(_STOP)
        if wait:
            for thread in self._threads:
                thread.join()
        self._threads.clear()
