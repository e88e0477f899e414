"""Settling: storing results and acking/rejecting messages, batched on one thread.

Pool threads hand over what must be written; this thread writes everything that piled up
since its last round in one backend call and one broker call per kind. Under load that turns
thousands of small writes into a few large ones; when idle, a single item is written at once.
Results of a round are written before its acks, so with ``acks_late`` a message is never
acked before its result is stored.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from celeriac.backends.base import ChordPart, ChordPartDone, ResultBackend, StoreRequest
from celeriac.brokers.base import Broker, Delivery

__all__ = ["Settler"]

logger = logging.getLogger("celeriac.worker")

#: The most operations written in one round.
MAX_BATCH = 1000
#: Under load, how long a round waits for more operations before it writes.
LINGER = 0.001
#: Operations a second above which the settler counts as under load. A worker answering
#: sequential calls stays well below it (one or two operations per call).
BUSY_RATE = 4000.0
#: Pauses between attempts when the broker or backend refuses a write.
RETRY_DELAYS = (0.05, 0.2, 1.0, 2.0, 5.0)


@dataclass(slots=True)
class _Op:
    kind: str  # 'store' | 'chord' | 'ack' | 'reject' | 'requeue' | 'dead' | 'stop'
    delivery: Delivery | None = None
    store: StoreRequest | None = None
    reason: str = ""
    done: Callable[[], None] | None = None
    part: ChordPartDone | None = None
    completed: Callable[[list[ChordPart]], None] | None = None


class Settler:
    """Writes results and settles messages for a worker, in batches, on its own thread."""

    def __init__(self, broker: Broker, backend: ResultBackend | None) -> None:
        self._broker = broker
        self._backend = backend
        # Where the server waits for acks before delivering more, gathering would starve
        # the worker it is meant to spare.
        self._linger = 0.0 if broker.acks_gate_delivery else LINGER
        self._ops: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="Settler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # --- what pool threads call --------------------------------------------------------------

    def store(self, request: StoreRequest) -> None:
        if self._backend is not None:
            self._ops.put(_Op("store", store=request))

    def chord_part(self, part: ChordPartDone, completed: Callable[[list[ChordPart]], None]) -> None:
        """Record a finished chord header task with the round's other parts (one round
        trip); ``completed`` runs here with every part when this one completes its chord."""
        self._ops.put(_Op("chord", part=part, completed=completed))

    def ack(self, delivery: Delivery, done: Callable[[], None] | None = None) -> None:
        self._ops.put(_Op("ack", delivery, done=done))

    def reject(
        self, delivery: Delivery, *, requeue: bool, done: Callable[[], None] | None = None
    ) -> None:
        self._ops.put(_Op("requeue" if requeue else "reject", delivery, done=done))

    def dead_letter(
        self, delivery: Delivery, reason: str, done: Callable[[], None] | None = None
    ) -> None:
        self._ops.put(_Op("dead", delivery, reason=reason, done=done))

    def stop(self) -> None:
        """Write everything handed over so far, then end the thread."""
        self._ops.put(_Op("stop"))
        self._thread.join()

    # --- the thread --------------------------------------------------------------------------

    def _serve(self) -> None:
        pace = _Pace()
        while True:
            batch = [self._ops.get()]
            if self._linger and pace.busy():
                time.sleep(
                    self._linger
                )  # let the round gather more: fewer round trips and wake-ups
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._ops.get_nowait())
                except queue.Empty:
                    break
            pace.round(len(batch))
            self._write(batch)
            if any(op.kind == "stop" for op in batch):
                return

    def _write(self, batch: Sequence[_Op]) -> None:
        stores = [op.store for op in batch if op.kind == "store" and op.store is not None]
        if stores and self._backend is not None:
            backend = self._backend
            _persist("store results", lambda: backend.store_results(stores))
        self._record_chord_parts(batch)
        self._settle(batch, "ack", lambda ds: self._broker.ack(ds))
        self._settle(batch, "reject", lambda ds: self._broker.reject(ds, requeue=False))
        self._settle(batch, "requeue", lambda ds: self._broker.reject(ds, requeue=True))
        for op in batch:
            if op.kind == "dead" and op.delivery is not None:
                self._dead_letter(op.delivery, op.reason)
        for op in batch:
            if op.done is not None:
                op.done()

    def _record_chord_parts(self, batch: Sequence[_Op]) -> None:
        """Chord parts after the results (a body never runs before its header's results
        are stored) and before the acks (a part is never lost with its message acked)."""
        ops = [op for op in batch if op.kind == "chord" and op.part is not None]
        if not ops or self._backend is None:
            return
        backend = self._backend
        parts = [op.part for op in ops if op.part is not None]
        completed: list[list[ChordPart] | None] = []

        def record() -> None:
            completed[:] = backend.chord_parts_done(parts)

        _persist("record chord parts", record)
        for op, chord in zip(ops, completed, strict=False):
            if chord is not None and op.completed is not None:
                try:
                    op.completed(chord)
                except Exception:
                    logger.exception("Completing chord %s raised", op.part and op.part.group_id)

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        _persist("dead-letter", lambda: self._broker.dead_letter(delivery, reason))

    def _settle(
        self, batch: Sequence[_Op], kind: str, write: Callable[[list[Delivery]], None]
    ) -> None:
        deliveries = [op.delivery for op in batch if op.kind == kind and op.delivery is not None]
        if deliveries:
            _persist(kind, lambda: write(deliveries))


class _Pace:
    """How fast operations arrive, from the last round: its size over the time since the
    round before it began."""

    __slots__ = ("_last", "_rate")

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._rate = 0.0

    def round(self, size: int) -> None:
        now = time.monotonic()
        # A round of one: nothing piled up while the last round was written, so the
        # operations are a sequence of single calls (however quick), not a load.
        self._rate = size / max(now - self._last, 1e-6) if size > 1 else 0.0
        self._last = now

    def busy(self) -> bool:
        # A long pause since the last round means the load has gone, whatever it was.
        return self._rate > BUSY_RATE and time.monotonic() - self._last < 0.1


def _persist(what: str, write: Callable[[], Any]) -> None:
    """Run a write, retrying with pauses; after the last try, log and go on.

    A message whose ack could not be written comes back when its lease lapses, so it is
    redelivered rather than lost.
    """
    for delay in (*RETRY_DELAYS, None):
        try:
            write()
            return
        except Exception as exc:
            if delay is None:
                logger.error("Could not %s, giving up on this batch: %r", what, exc)
                return
            logger.warning("Could not %s (%r); retrying in %ss", what, exc, delay)
            time.sleep(delay)
