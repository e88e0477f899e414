"""Per-task rate limits (``rate_limit='10/s'``): messages over the rate wait, none is dropped.

Each task name gets a schedule of evenly spaced slots at its rate; a message takes the next
free slot and runs then. As in Celery, limits are per worker, not across the cluster.
"""

from __future__ import annotations

import functools
import re
import threading
import time

from celeriac.exceptions import ImproperlyConfigured

__all__ = ["RateLimiter", "parse_rate"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*$")


@functools.lru_cache(maxsize=256)  # the same few strings, parsed once, not per message
def parse_rate(value: str | float | int | None) -> float | None:
    """Tasks per second for ``'10/s'``, ``'100/m'``, ``'1000/h'`` or a number (per second).

    None, 0 and '0' mean no limit.

    Raises:
        ImproperlyConfigured: the text is not a rate.
    """
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) or None
    match = _RATE.match(value)
    if match is None:
        raise ImproperlyConfigured(
            f"Invalid rate limit {value!r}: expected a number of tasks per second, "
            "or 'N/s', 'N/m', 'N/h'"
        )
    amount, unit = float(match.group(1)), match.group(2) or "s"
    return amount / _UNITS[unit] if amount else None


class RateLimiter:
    """Hands out run times: each call reserves the next slot of that task's schedule."""

    def __init__(self) -> None:
        self._next_slot: dict[str, float] = {}
        self._lock = threading.Lock()

    def delay_for(self, name: str, rate: float) -> float:
        """Seconds until this message of task ``name`` may run (0: now)."""
        now = time.monotonic()
        with self._lock:
            slot = max(now, self._next_slot.get(name, now))
            self._next_slot[name] = slot + 1.0 / rate
        return slot - now
