"""The in-process broker: for tests and single-process experiments.

Every :class:`MemoryBroker` in a process that names the same URL (``memory://`` and
``memory://localhost/`` are the same default) shares one state, guarded by one
:class:`threading.Condition`: a publish wakes blocked claims at once, and a claim with nothing
ready sleeps until the earliest delayed message is due or the earliest lease lapses.

Headers and properties are stored as kombu-dialect JSON and parsed again on every claim, so a
message behaves as it would on a real broker: what cannot travel fails at publish, and a
consumer that mutates a delivered message does not change what a later claim sees.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from celeriac.brokers.base import (
    Broker,
    DeadLetter,
    Delivery,
    ExchangeType,
    Outgoing,
    Subscription,
)
from celeriac.exceptions import EncodeError
from celeriac.message import Message
from celeriac.serialization import json_dumps, json_loads

__all__ = ["MemoryBroker"]

#: Longest single condition wait (seconds): ``Condition.wait`` refuses an infinite timeout.
MAX_WAIT = 60.0


@dataclass(slots=True)
class _Entry:
    """One stored message and where it is in its life (ready, delayed or leased)."""

    seq: int  # publication order; kept across requeues so a message keeps its place
    queue: str
    priority: int
    headers: str
    properties: str
    body: bytes
    content_type: str
    content_encoding: str
    redelivered: bool = False
    tag: str = ""  # set while leased
    lease_until: float = 0.0  # time.monotonic() deadline while leased

    def delivery(self) -> Delivery:
        message = Message(
            body=self.body,
            headers=json_loads(self.headers),
            properties=json_loads(self.properties),
            content_type=self.content_type,
            content_encoding=self.content_encoding,
        )
        return Delivery(message, self.queue, self.tag, self.redelivered)


@dataclass(slots=True)
class _DeadEntry:
    entry: _Entry
    reason: str
    time: float


@dataclass
class _State:
    """Everything the brokers of one URL share; every field is guarded by ``cond``."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    #: queue -> heap of (priority, seq, entry); seq is unique, so entries are never compared.
    ready: dict[str, list[tuple[int, int, _Entry]]] = field(default_factory=dict)
    #: heap of (eta as UNIX seconds, seq, entry).
    delayed: list[tuple[float, int, _Entry]] = field(default_factory=list)
    #: tag -> entry, for every leased message.
    leased: dict[str, _Entry] = field(default_factory=dict)
    #: heap of (lease_until, tag); stale items (renewed or settled leases) are skipped lazily.
    lease_heap: list[tuple[float, str]] = field(default_factory=list)
    dead: dict[str, _DeadEntry] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=itertools.count)
    #: fanout exchange -> its live subscriptions.
    fanout: dict[str, set[_MemorySubscription]] = field(default_factory=dict)
    #: (direct exchange, routing key) -> the transient queues bound with that key.
    bindings: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    #: transient direct queue name -> the subscription reading it.
    direct: dict[str, _MemorySubscription] = field(default_factory=dict)

    def clear(self) -> None:
        self.fanout.clear()
        self.bindings.clear()
        self.direct.clear()
        self.ready.clear()
        self.delayed.clear()
        self.leased.clear()
        self.lease_heap.clear()
        self.dead.clear()

    # --- moving messages between states (caller holds cond) --------------------------------

    def make_ready(self, entry: _Entry) -> None:
        entry.tag, entry.lease_until = "", 0.0
        heap = self.ready.setdefault(entry.queue, [])
        heapq.heappush(heap, (entry.priority, entry.seq, entry))

    def release_due(self) -> None:
        """Move due delayed messages to their queues and lapsed leases back, redelivered."""
        now = time.time()
        while self.delayed and self.delayed[0][0] <= now:
            self.make_ready(heapq.heappop(self.delayed)[2])
        now = time.monotonic()
        while self.lease_heap and self.lease_heap[0][0] <= now:
            _, tag = heapq.heappop(self.lease_heap)
            entry = self.leased.get(tag)
            # A renewed lease left an older heap item behind; only a lapsed one counts.
            if entry is not None and entry.lease_until <= now:
                del self.leased[tag]
                entry.redelivered = True
                self.make_ready(entry)

    def take(self, queues: Sequence[str], limit: int, lease_until: float) -> list[_Entry]:
        """Lease up to ``limit`` ready entries, lowest (priority, seq) first across ``queues``."""
        heaps = [heap for heap in (self.ready.get(q) for q in queues) if heap]
        taken: list[_Entry] = []
        while heaps and len(taken) < limit:
            best = min(heaps, key=lambda heap: heap[0][:2])
            entry = heapq.heappop(best)[2]
            if not best:
                heaps.remove(best)
            entry.tag = f"{entry.seq}:{secrets.token_hex(6)}"
            entry.lease_until = lease_until
            self.leased[entry.tag] = entry
            heapq.heappush(self.lease_heap, (lease_until, entry.tag))
            taken.append(entry)
        return taken

    def seconds_to_next_event(self) -> float | None:
        """Seconds until a delayed message is due or a lease lapses (None: nothing pending)."""
        waits = []
        if self.delayed:
            waits.append(self.delayed[0][0] - time.time())
        if self.lease_heap:
            waits.append(self.lease_heap[0][0] - time.monotonic())
        return max(min(waits), 0.0) if waits else None

    def busy(self, queue: str) -> bool:
        """Whether ``queue`` has ready, delayed or leased messages."""
        return (
            bool(self.ready.get(queue))
            or any(item[2].queue == queue for item in self.delayed)
            or any(entry.queue == queue for entry in self.leased.values())
        )


class _MemorySubscription(Subscription):
    """A transient queue in the shared state; it waits on the state's condition."""

    def __init__(self, state: _State, on_close: Any) -> None:
        self._state = state
        self._on_close = on_close
        self.pending: deque[Message] = deque()

    def get(self, timeout: float) -> list[Message]:
        state = self._state
        deadline = time.monotonic() + timeout
        with state.cond:
            while not self.pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                state.cond.wait(min(remaining, MAX_WAIT))
            taken = list(self.pending)
            self.pending.clear()
            return taken

    def close(self) -> None:
        with self._state.cond:
            self._on_close()
            self.pending.clear()


def _copy(message: Message) -> Message:
    """What a subscriber receives: a copy, as if the message had travelled through JSON."""
    try:
        headers, properties = json_dumps(message.headers), json_dumps(message.properties)
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"Message headers or properties cannot be sent: {exc}") from exc
    return Message(
        bytes(message.body),
        json_loads(headers),
        json_loads(properties),
        message.content_type,
        message.content_encoding,
    )


_REGISTRY: dict[str, _State] = {}
_REGISTRY_LOCK = threading.Lock()


def _storage_key(url: str) -> str:
    """``memory://``, ``memory://localhost`` and ``memory://localhost/`` share one key."""
    rest = url.partition("://")[2].split("?", 1)[0]
    host, _, path = rest.partition("/")
    return f"{host or 'localhost'}/{path.strip('/')}"


def _state_for(url: str) -> _State:
    key = _storage_key(url)
    with _REGISTRY_LOCK:
        state = _REGISTRY.get(key)
        if state is None:
            state = _REGISTRY[key] = _State()
        return state


def _entry_for(item: Outgoing, seq: int) -> _Entry:
    message = item.message
    try:
        headers, properties = json_dumps(message.headers), json_dumps(message.properties)
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"Message headers or properties cannot be stored: {exc}") from exc
    return _Entry(
        seq=seq,
        queue=item.queue,
        priority=message.priority,
        headers=headers,
        properties=properties,
        body=bytes(message.body),
        content_type=message.content_type,
        content_encoding=message.content_encoding,
    )


class MemoryBroker(Broker):
    """In-process broker; instances with the same URL share their queues.

    Args:
        url: ``memory://`` or ``memory://name`` (a separate set of queues per name).
        options: ``visibility_timeout`` sets this instance's lease length (seconds).
    """

    schemes: ClassVar[tuple[str, ...]] = ("memory",)

    def __init__(self, url: str = "memory://", *, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        self._state = _state_for(url)

    @classmethod
    def reset_all(cls) -> None:
        """Empty every memory broker of this process (for test isolation).

        Existing instances stay usable and see the emptied state.
        """
        with _REGISTRY_LOCK:
            states = list(_REGISTRY.values())
        for state in states:
            with state.cond:
                state.clear()
                state.cond.notify_all()

    # --- producing -------------------------------------------------------------------------

    def publish_many(self, items: Sequence[Outgoing]) -> None:
        """Store the messages; delayed ones wait in a heap until their ``eta``."""
        state = self._state
        entries = [(item.eta, _entry_for(item, 0)) for item in items]
        now = time.time()
        with state.cond:
            for eta, entry in entries:
                entry.seq = next(state.counter)
                if eta is not None and eta > now:
                    heapq.heappush(state.delayed, (eta, entry.seq, entry))
                else:
                    state.make_ready(entry)
            state.cond.notify_all()

    # --- consuming -------------------------------------------------------------------------

    def _claim(self, queues: list[str], limit: int, timeout: float) -> list[Delivery]:
        """Lease up to ``limit`` ready messages; wait on the condition while none is ready."""
        state = self._state
        deadline = time.monotonic() + timeout
        with state.cond:
            while True:
                state.release_due()
                lease_until = time.monotonic() + self.lease_seconds
                taken = state.take(queues, limit, lease_until)
                if taken:
                    return [entry.delivery() for entry in taken]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                next_event = state.seconds_to_next_event()
                if next_event is not None:
                    remaining = min(remaining, next_event)
                state.cond.wait(min(remaining, MAX_WAIT))

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Forget the messages this instance still holds (a lapsed lease's tag is ignored)."""
        self._settle(deliveries, requeue=False)

    def reject(self, deliveries: Sequence[Delivery], *, requeue: bool) -> None:
        """Drop the messages, or with ``requeue`` put them back in their place, redelivered."""
        self._settle(deliveries, requeue=requeue)

    def _settle(self, deliveries: Sequence[Delivery], *, requeue: bool) -> None:
        state = self._state
        with state.cond:
            for delivery in deliveries:
                entry = state.leased.pop(delivery.tag, None)
                if entry is not None and requeue:
                    entry.redelivered = True
                    state.make_ready(entry)
            state.cond.notify_all()

    def renew(self, deliveries: Sequence[Delivery]) -> None:
        """Push the leases' expiry ``lease_seconds`` into the future."""
        state = self._state
        with state.cond:
            lease_until = time.monotonic() + self.lease_seconds
            for delivery in deliveries:
                entry = state.leased.get(delivery.tag)
                if entry is not None:
                    entry.lease_until = lease_until
                    heapq.heappush(state.lease_heap, (lease_until, delivery.tag))

    # --- dead letters ----------------------------------------------------------------------

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move a held message to the dead letters (nothing happens if its lease lapsed)."""
        state = self._state
        with state.cond:
            entry = state.leased.pop(delivery.tag, None)
            if entry is not None:
                state.dead[str(next(state.counter))] = _DeadEntry(entry, reason, time.time())
            state.cond.notify_all()

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters first."""
        with self._state.cond:
            items = list(itertools.islice(self._state.dead.items(), max(limit, 0)))
        return [
            DeadLetter(key, dead.entry.queue, dead.reason, dead.time, dead.entry.delivery().message)
            for key, dead in items
        ]

    def requeue_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Put dead letters back at the end of their queues, marked redelivered."""
        state = self._state
        with state.cond:
            keys = list(state.dead) if ids is None else [k for k in ids if k in state.dead]
            for key in keys:
                entry = state.dead.pop(key).entry
                entry.seq, entry.redelivered = next(state.counter), True
                state.make_ready(entry)
            state.cond.notify_all()
        return len(keys)

    # --- broadcast and direct --------------------------------------------------------------

    def fanout_publish(
        self,
        exchange: str,
        message: Message,
        *,
        routing_key: str = "",
        exchange_type: ExchangeType = "fanout",
    ) -> None:
        """Append a copy to every live subscription of ``exchange``.

        No exchange routing here: every subscriber gets it, whatever ``exchange_type``.
        """
        copy = _copy(message)
        state = self._state
        with state.cond:
            for subscription in state.fanout.get(exchange, ()):
                subscription.pending.append(copy)
            state.cond.notify_all()

    def fanout_subscribe(
        self,
        exchange: str,
        queue: str,
        *,
        binding_key: str = "",
        exchange_type: ExchangeType = "fanout",
        message_ttl: float | None = None,
        expires: float | None = None,
    ) -> Subscription:
        """A subscription that sees what is published to ``exchange`` from now on.

        Every message of ``exchange`` comes, whatever ``binding_key``; nothing is kept
        for a subscriber, so ``message_ttl`` and ``expires`` have nothing to bound.
        """
        state = self._state

        def unsubscribe() -> None:
            state.fanout.get(exchange, set()).discard(subscription)

        subscription = _MemorySubscription(state, unsubscribe)
        with state.cond:
            state.fanout.setdefault(exchange, set()).add(subscription)
        return subscription

    def direct_publish(self, exchange: str, routing_key: str, message: Message) -> None:
        """Append a copy to each queue bound with ``routing_key`` (none bound: dropped)."""
        copy = _copy(message)
        state = self._state
        with state.cond:
            for queue in state.bindings.get((exchange, routing_key), ()):
                subscription = state.direct.get(queue)
                if subscription is not None:
                    subscription.pending.append(copy)
            state.cond.notify_all()

    def direct_subscribe(
        self, exchange: str, routing_key: str, queue: str, *, expires: float | None = None
    ) -> Subscription:
        """Bind ``queue`` and read it; it lives until closed (``expires`` is moot in-process)."""
        state = self._state
        key = (exchange, routing_key)

        def unbind() -> None:
            state.bindings.get(key, set()).discard(queue)
            if state.direct.get(queue) is subscription:
                del state.direct[queue]

        subscription = _MemorySubscription(state, unbind)
        with state.cond:
            state.bindings.setdefault(key, set()).add(queue)
            state.direct[queue] = subscription
        return subscription

    # --- administration --------------------------------------------------------------------

    def purge(self, queue: str) -> int:
        """Drop the ready and delayed messages of ``queue`` (leased ones stay)."""
        state = self._state
        with state.cond:
            count = len(state.ready.pop(queue, []))
            kept = [item for item in state.delayed if item[2].queue != queue]
            count += len(state.delayed) - len(kept)
            heapq.heapify(kept)
            state.delayed = kept
            state.cond.notify_all()
        return count

    def size(self, queue: str) -> int:
        """Ready plus delayed messages of ``queue``."""
        state = self._state
        with state.cond:
            delayed = sum(1 for item in state.delayed if item[2].queue == queue)
            return len(state.ready.get(queue, ())) + delayed

    def join(self, queue: str, timeout: float = 10.0) -> None:
        """Wait until ``queue`` has no ready, delayed or leased message.

        Raises:
            TimeoutError: the queue was still busy after ``timeout`` seconds.
        """
        state = self._state
        deadline = time.monotonic() + timeout
        with state.cond:
            while state.busy(queue):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"Queue {queue!r} still busy after {timeout}s")
                state.cond.wait(min(remaining, MAX_WAIT))
