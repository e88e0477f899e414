"""``--autoscale=MAX,MIN``: grow a pool under load and shrink it when idle, within bounds.

Any pool that implements :class:`Scalable` can be autoscaled (threads today; prefork once it
offers the same four members). Once a second the :class:`Autoscaler` compares the work the
pool holds (running plus waiting) with its size:

* more work than workers, below MAX: grow at once, to cover the work (at most to MAX);
* fewer jobs than workers, above MIN, for ``keepalive`` seconds in a row: shrink to the work
  (at least to MIN). Waiting out the keepalive keeps a bursty queue from thrashing.

As in Celery, the keepalive is 30 seconds unless the ``AUTOSCALE_KEEPALIVE`` environment
variable says otherwise.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Autoscaler", "Scalable", "parse_autoscale"]

logger = logging.getLogger("celeriac.worker.autoscale")

#: Seconds between two looks at the pool.
INTERVAL = 1.0
#: Celery's default keepalive (seconds a pool stays oversized before it shrinks).
DEFAULT_KEEPALIVE = 30.0


@runtime_checkable
class Scalable(Protocol):
    """What a pool offers the autoscaler (counts may be a moment stale; that is fine)."""

    @property
    def size(self) -> int:
        """Workers (threads, processes) the pool has now."""

    @property
    def busy(self) -> int:
        """Workers running a job now."""

    @property
    def waiting(self) -> int:
        """Jobs submitted and not yet started."""

    def grow(self, n: int) -> None:
        """Add ``n`` workers."""

    def shrink(self, n: int) -> None:
        """Retire ``n`` workers, each once it is idle (a running job is never cut short)."""


def parse_autoscale(value: str) -> tuple[int, int]:
    """``"MAX,MIN"`` or ``"MAX"`` as ``(max, min)``; MIN defaults to 1.

    Celery allows a MIN of 0; celeriac's pools keep at least one worker, so 0 means 1.

    Raises:
        ValueError: not one or two positive integers, or MIN above MAX.
    """
    high_text, _, low_text = value.partition(",")
    try:
        high = int(high_text)
        low = int(low_text) if low_text.strip() else 1
    except ValueError:
        raise ValueError(f"expected MAX,MIN (e.g. 10,3), got {value!r}") from None
    low = max(low, 1)
    if high < low:
        raise ValueError(f"MAX ({high}) must not be below MIN ({low})")
    return high, low


def keepalive_from_env() -> float:
    """``AUTOSCALE_KEEPALIVE`` (Celery's variable), else 30 seconds."""
    raw = os.environ.get("AUTOSCALE_KEEPALIVE")
    return float(raw) if raw else DEFAULT_KEEPALIVE


class Autoscaler:
    """Keeps ``pool``'s size between ``min_size`` and ``max_size``, following its load."""

    def __init__(
        self,
        pool: Scalable,
        *,
        max_size: int,
        min_size: int,
        keepalive: float = DEFAULT_KEEPALIVE,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.max_size = max_size
        self.min_size = min_size
        self.keepalive = keepalive
        self.interval = interval
        self._clock = clock
        self._spare_since: float | None = None  # when the pool last became oversized
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="Autoscaler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _serve(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.tick()
            except Exception:  # a failed look must not end autoscaling for good
                logger.exception("autoscaler: could not resize the pool")

    def tick(self) -> None:
        """Look at the pool once and grow or shrink it if it needs to."""
        size = self.pool.size
        work = self.pool.busy + self.pool.waiting
        if work > size and size < self.max_size:
            self._spare_since = None
            self._grow(size, min(work, self.max_size) - size)
        elif work < size and size > self.min_size:
            self._maybe_shrink(size, size - max(work, self.min_size))
        else:
            self._spare_since = None

    def _grow(self, size: int, n: int) -> None:
        logger.info("Scaling up %d workers (%d -> %d).", n, size, size + n)
        self.pool.grow(n)

    def _maybe_shrink(self, size: int, n: int) -> None:
        now = self._clock()
        if self._spare_since is None:
            self._spare_since = now
        if now - self._spare_since < self.keepalive:
            return
        logger.info("Scaling down %d workers (%d -> %d).", n, size, size - n)
        self.pool.shrink(n)
        self._spare_since = None
