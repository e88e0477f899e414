"""A single timer thread running callbacks at given times (rate-limited messages)."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Timer"]

logger = logging.getLogger("celeriac.worker")


class Timer:
    """Calls each scheduled callback once its time has come, on one background thread."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name="Timer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._counter), callback))
            self._cond.notify()

    def __len__(self) -> int:
        return len(self._heap)

    def stop(self) -> None:
        """Run every callback still waiting (now), then end the thread."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()

    def _serve(self) -> None:
        while True:
            callback = self._next_due()
            if callback is None:
                return
            try:
                callback()
            except Exception:
                logger.exception("Timer callback failed")

    def _next_due(self) -> Callable[[], None] | None:
        with self._cond:
            while True:
                if self._heap and (self._stopped or self._heap[0][0] <= time.monotonic()):
                    return heapq.heappop(self._heap)[2]
                if self._stopped:
                    return None
                timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                self._cond.wait(timeout)
