"""Leases of the messages a worker holds: renewed while it lives, given back when it stops.

A message claimed from the broker is leased for ``visibility_timeout`` seconds. This keeps
renewing every lease the worker still holds (a third of the lease length apart), so a task
that runs longer than the lease is never handed to a second worker, while a dead worker's
messages come back as soon as their leases lapse.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from celeriac.brokers.base import Broker, Delivery

__all__ = ["Leases"]

logger = logging.getLogger("celeriac.worker")


class Leases:
    """The deliveries a worker holds, and a thread renewing their leases."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._held: dict[str, Delivery] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="Leases", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def hold(self, deliveries: Iterable[Delivery]) -> None:
        with self._lock:
            for delivery in deliveries:
                self._held[delivery.tag] = delivery

    def release(self, delivery: Delivery) -> None:
        with self._lock:
            self._held.pop(delivery.tag, None)

    def held(self) -> list[Delivery]:
        with self._lock:
            return list(self._held.values())

    def __len__(self) -> int:
        return len(self._held)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _renew_loop(self) -> None:
        interval = max(self._broker.lease_seconds / 3.0, 0.05)
        while not self._stopped.wait(interval):
            held = self.held()
            if not held:
                continue
            try:
                self._broker.renew(held)
            except Exception as exc:
                logger.warning("Could not renew the leases of %d messages: %r", len(held), exc)
