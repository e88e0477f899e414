"""The consuming side of the AMQP broker: basic.consume into a buffer that claim() reads.

One connection and channel per broker instance, and one reader thread that is the only
reader of its socket: it receives deliveries into the buffer, answers heartbeats, and
reconnects when the connection is lost. It reads in bulk (see
:mod:`~celeriac.brokers.amqp_frames`) and hands over everything one read brought at once,
waking a waiting claim once per read rather than once per message. Other threads only
*write* on the channel (acks, rejects, basic.consume/qos/cancel sent without waiting for a
reply), under the writer's lock; replies that matter (the ready count of
:meth:`Consumer.count`) are matched by the reader thread, in order with the deliveries, so a
count never misses a message in flight.

Prefetch (basic.qos) is a fixed window: the largest claim ``limit`` asked for, which for a
worker is concurrency x ``worker_prefetch_multiplier`` (its first claim, with every slot
free). The server holds the channel to it, so the worker never holds more unsettled
messages than that, even for the moment between a task's slot freeing and its ack going
out. Only a caller that keeps messages claimed and asks for more than the window allows
stretches it, after :data:`STARVED_GRACE` (see :meth:`Consumer._stretch_for`).

Acks of one settling round go out as one ``multiple`` ack up to the highest delivery tag
below every message still unsettled, plus single acks for the rest: usually one frame per
round instead of one per message.

Leases work as on every celeriac broker: a claimed message not acked, rejected or renewed
within ``lease_seconds`` is given back (basic.reject with requeue). A consumer that stops
claiming for :data:`IDLE_RETURN` seconds cancels its consumers and gives back what it
buffered, so nothing waits in a busy or silent consumer while others could run it, and a
higher-priority message is never stuck behind ones a busy worker prefetched.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import amqp
from amqp import spec

from celeriac.brokers.amqp_connection import CONNECTION_ERRORS, ConnectionSettings, backoff
from celeriac.brokers.amqp_frames import FrameReader
from celeriac.brokers.base import Delivery
from celeriac.message import Message

__all__ = ["AMQPDelivery", "Consumer", "from_amqp"]

logger = logging.getLogger("celeriac.brokers.amqp")

#: Seconds without a claim after which buffered messages go back to their queues.
IDLE_RETURN = 1.0
#: How long a claim keeps collecting once the first message arrived (seconds).
LINGER = 0.02
#: The same right after consumers started: every queue's head has arrived by then, so the
#: first claim already sees the highest priorities of all its queues.
FIRST_LINGER = 0.1
#: How long a claim waits for acks in flight to make room in a full window before the
#: window stretches for it (seconds; a worker's acks are written well within it).
STARVED_GRACE = 0.1
#: Basic properties that travel as message properties (the rest of ``properties`` does not).
PROPERTY_NAMES = (
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
)
#: Headers RabbitMQ adds when a message is dead-lettered (the delay cascade does that).
_DEATH_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)
#: A header celeriac sets on a message it puts back (dead letters requeued): redelivered.
REDELIVERED_HEADER = "x-celeriac-redelivered"


@dataclass(slots=True)
class AMQPDelivery(Delivery):
    """A delivery that knows the exchange and routing key it arrived with."""

    exchange: str = ""
    routing_key: str = ""

    @property
    def delivery_info(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "routing_key": self.routing_key or self.queue,
            "priority": self.message.properties.get("priority"),
            "redelivered": self.redelivered,
        }


def from_amqp(raw: amqp.Message) -> tuple[Message, bool]:
    """An AMQP message as celeriac's :class:`Message`; True when celeriac marked it redelivered."""
    props = raw.properties
    headers = dict(props.get("application_headers") or {})
    for name in _DEATH_HEADERS:
        headers.pop(name, None)
    marked = bool(headers.pop(REDELIVERED_HEADER, False))
    body = raw.body if isinstance(raw.body, bytes) else bytes(raw.body or b"")
    message = Message(
        body=body,
        headers=headers,
        properties={name: props[name] for name in PROPERTY_NAMES if name in props},
        content_type=props.get("content_type") or "application/data",
        content_encoding=props.get("content_encoding") or "binary",
    )
    return message, marked


def to_amqp(message: Message, **extra_headers: Any) -> amqp.Message:
    """celeriac's :class:`Message` as an AMQP message (unknown property names are dropped)."""
    properties = {k: v for k, v in message.properties.items() if k in PROPERTY_NAMES}
    if properties.get("delivery_mode") not in (None, 1, 2):
        properties["delivery_mode"] = 2
    if "expiration" in properties and not isinstance(properties["expiration"], str):
        properties["expiration"] = str(int(properties["expiration"]))
    headers = {**message.headers, **extra_headers} if extra_headers else message.headers
    return amqp.Message(
        message.body,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        application_headers=headers,
        **properties,
    )


@dataclass(slots=True)
class _Held:
    delivery: AMQPDelivery
    amqp_tag: int
    deadline: float


#: A received delivery: (-priority, arrival number, delivery, AMQP delivery tag, generation).
#: Sorting entries gives the claim order: highest priority first, FIFO within a priority.
_Entry = tuple[int, int, AMQPDelivery, int, int]


class Consumer:
    """basic.consume on the queues claimed from, with leases and reconnection.

    Args:
        settings: how to connect.
        lease_seconds: how long a claimed message stays leased without a renew.
        declare: called with a queue name before consuming from it (declares it).
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        lease_seconds: float,
        declare: Any,
        *,
        quorum: Any = lambda queue: False,
    ) -> None:
        self._settings = settings
        self._lease = lease_seconds
        self._declare = declare
        self._is_quorum = quorum
        self._cond = threading.Condition()
        # Taken before _cond when both are needed (never the other way round).
        self._write_lock = threading.RLock()
        self._start_lock = threading.Lock()
        self._connection: amqp.Connection | None = None
        self._channel: Any = None
        self._frames: FrameReader | None = None
        self._generation = 0
        self._consumers: dict[str, str] = {}  # queue -> consumer tag (on this channel)
        self._wanted: set[str] = set()  # queues to consume from (again after a reconnect)
        self._buffer: list[_Entry] = []
        self._arrived: list[_Entry] = []  # read by the reader thread, not yet in the buffer
        self._held: dict[str, _Held] = {}
        self._counts: dict[str, list[Any]] = {}  # queue -> waiting count requests
        self._seq = itertools.count()
        self._window = 0  # the prefetch to keep: the largest claim limit asked for
        self._stretch = 0  # a larger one for a starved claim (see _stretch_for), or 0
        self._qos: tuple[Any, int, str] = (None, 0, "")  # (channel, prefetch, mode) last set
        self._consumed_on: Any = None  # the channel consumers were last started on
        self._claiming = 0
        self._last_claim = time.monotonic()
        self._next_tick = 0.0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._tls = bool(settings.ssl)
        longest = 0.05 if self._tls else 1.0
        self._read_timeout = max(min(longest, lease_seconds / 4.0, IDLE_RETURN / 4.0), 0.02)

    # --- claiming ------------------------------------------------------------------------

    def claim(self, queues: list[str], limit: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            self._claiming += 1
        try:
            linger = self._start(queues, limit)
            got = self._wait_take(queues, limit, deadline, starved_grace=True)
            if not got and time.monotonic() < deadline:
                if self._stretch_for(limit):
                    linger = LINGER
                got = self._wait_take(queues, limit, deadline, starved_grace=False)
            if not got:
                return []
            with self._cond:
                linger_until = min(time.monotonic() + linger, deadline)
                while len(got) < limit and time.monotonic() < linger_until:
                    # More of this batch is usually on the wire right behind the first one.
                    if not self._cond.wait(max(linger_until - time.monotonic(), 0.0)):
                        break
                    got += self._take(queues, limit - len(got))
            got.sort(key=lambda delivery: -delivery.message.priority)  # stable: FIFO kept
            return got  # type: ignore[return-value]
        finally:
            with self._cond:
                self._claiming -= 1
                self._last_claim = time.monotonic()

    def _wait_take(
        self, queues: list[str], limit: int, deadline: float, *, starved_grace: bool
    ) -> list[AMQPDelivery]:
        """Take what is buffered, waiting until ``deadline`` for the first message; with
        ``starved_grace``, only :data:`STARVED_GRACE` when the window has no room."""
        with self._cond:
            if starved_grace and self._starved(limit):
                deadline = min(deadline, time.monotonic() + STARVED_GRACE)
            got = self._take(queues, limit)
            while not got:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.25))
                got = self._take(queues, limit)
            return got

    def _take(self, queues: list[str], limit: int) -> list[AMQPDelivery]:
        buffer = self._buffer
        if not buffer:
            return []
        wanted = set(queues)
        if len(buffer) <= limit and all(entry[2].queue in wanted for entry in buffer):
            chosen, self._buffer = buffer, []  # the usual case: everything, in arrival order
        else:
            chosen = sorted(entry for entry in buffer if entry[2].queue in wanted)[:limit]
            if not chosen:
                return []
            picked = {id(entry) for entry in chosen}
            self._buffer = [entry for entry in buffer if id(entry) not in picked]
        deadline = time.monotonic() + self._lease
        for _, _, delivery, tag, _ in chosen:
            self._held[delivery.tag] = _Held(delivery, tag, deadline)
        return [entry[2] for entry in chosen]

    # --- the window (basic.qos) ------------------------------------------------------------

    def _start(self, queues: list[str], limit: int) -> float:
        """Connect if needed, then consume every queue asked for, within the window.

        The window is the largest ``limit`` asked for: a worker's first claim asks for all
        of concurrency x multiplier, later ones for its free slots. The server then never
        lets this channel hold more unsettled messages than that, however the acks of
        finished tasks and the claims for their slots interleave. Only a caller that keeps
        messages claimed and asks for more than the window leaves room for stretches it
        (see :meth:`_stretch_for`); its next claim that fits shrinks it back.

        Returns how long the claim may linger for more messages: a moment when consumers
        started or the window grew just now (more is on its way), else not at all, so
        that a lone message is handed over at once.
        """
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._connect_once()
                    thread = threading.Thread(
                        target=self._read_loop, name="amqp-consumer", daemon=True
                    )
                    thread.start()
                    self._thread = thread
        with self._cond:
            new = [queue for queue in queues if queue not in self._wanted]
            self._wanted.update(new)
            grew = limit > self._window
            if grew:
                self._window = limit
            if not self._starved(limit):
                self._stretch = 0
            channel = self._channel
            settled = (
                not new
                and len(self._consumers) == len(self._wanted)
                and self._qos[:2] == (channel, max(self._window, self._stretch))
            )
        if settled:
            return 0.0  # the usual claim: nothing to declare, consume or resize
        for queue in new:
            self._declare(queue)
        if channel is None:
            return 0.0
        if self._apply_window(channel):
            return FIRST_LINGER
        return LINGER if grew else 0.0

    def _starved(self, limit: int) -> bool:
        """True when the messages held leave the window no room for ``limit`` more (call
        with ``_cond`` held). A worker is, for a moment, while its last acks are written."""
        return len(self._held) + limit > max(self._window, self._stretch)

    def _stretch_for(self, limit: int) -> bool:
        """Stretch the window for a caller still starved after :data:`STARVED_GRACE`: it
        holds what it claimed and wants ``limit`` more. True when stretched."""
        with self._cond:
            if not self._starved(limit):
                return False
            self._stretch = len(self._held) + limit
            channel = self._channel
        if channel is not None:
            self._apply_window(channel)
        return True

    def _apply_window(self, channel: Any) -> bool:
        """Bring the channel's prefetch up to date and consume every queue wanted; True
        when consumers started just now."""
        try:
            self._set_prefetch(channel)
            return self._consume_missing(channel)
        except CONNECTION_ERRORS as exc:
            self._lost_connection(channel, exc)
            return False

    def _set_prefetch(self, channel: Any, *, again: bool = False) -> None:
        """Send basic.qos when ``channel`` does not have the window yet.

        One queue gets a per-consumer prefetch, set before its consumer starts: RabbitMQ
        counts it inside the queue, whereas a channel-wide one asks a separate limiter
        process about every delivery (slower). A per-consumer prefetch never changes for a
        running consumer, though, so several queues, or a window that changes after the
        consumer started, use a channel-wide prefetch instead (no per-consumer one, the
        consumers restarted under it); so does a consumer starting ``again`` on the same
        channel (after an idle return), as its predecessor's unsettled messages would not
        count against its own window. Quorum queues refuse channel-wide prefetch: theirs is
        per consumer, as in Celery, and their consumers restart when it changes.
        """
        with self._write_lock:
            with self._cond:
                target = max(self._window, self._stretch)
                quorum = any(self._is_quorum(queue) for queue in self._wanted)
                several = len(self._wanted) > 1
            if not target:
                return
            sent_channel, sent_target, sent_mode = self._qos
            if sent_channel is not channel:
                sent_target, sent_mode = 0, ""
            if quorum:
                mode = "consumer"
            elif several or again or sent_mode == "channel":
                mode = "channel"
            elif not sent_mode or sent_target == target:
                mode = "consumer"
            else:
                mode = "channel"
            if (sent_target, sent_mode) == (target, mode):
                return
            qos = min(target, 65535)
            if mode == "channel" and sent_mode != "channel":
                channel.send_method(spec.Basic.Qos, "lBb", (0, 0, False))
            channel.send_method(spec.Basic.Qos, "lBb", (0, qos, mode == "channel"))
            self._qos = (channel, target, mode)
            if sent_mode == "consumer":
                self._restart_consumers(channel)

    def _restart_consumers(self, channel: Any) -> None:
        """Cancel the running consumers; :meth:`_consume_missing` starts them again (what
        the old ones sent stays valid and arrives as usual)."""
        with self._cond:
            cancelled = list(self._consumers.values())
            self._consumers.clear()
        for consumer_tag in cancelled:
            channel.basic_cancel(consumer_tag, nowait=True)

    def _consume_missing(self, channel: Any) -> bool:
        with self._cond:
            again = self._consumed_on is channel
            missing = [queue for queue in self._wanted if queue not in self._consumers]
        if not missing:
            return False
        if again:
            self._set_prefetch(channel, again=True)
        with self._cond:
            missing = [queue for queue in self._wanted if queue not in self._consumers]
            generation = self._generation
            self._consumed_on = channel
        for queue in missing:
            tag = f"celeriac-{generation}-{next(self._seq)}"
            callback = self._on_message(queue, generation)
            channel.callbacks[tag] = callback
            with self._write_lock:
                channel.basic_consume(queue, consumer_tag=tag, nowait=True, callback=callback)
            with self._cond:
                self._consumers[queue] = tag
        return bool(missing)

    def _on_message(self, queue: str, generation: int) -> Any:
        arrive = self._arrived_append

        def receive(raw: amqp.Message) -> None:
            info = raw.delivery_info
            message, marked = from_amqp(raw)
            amqp_tag = int(info["delivery_tag"])
            delivery = AMQPDelivery(
                message,
                queue,
                f"{generation}:{amqp_tag}",
                bool(info.get("redelivered")) or marked,
                exchange=info.get("exchange") or "",
                routing_key=info.get("routing_key") or "",
            )
            arrive((-message.priority, next(self._seq), delivery, amqp_tag, generation))

        return receive

    def _arrived_append(self, entry: _Entry) -> None:
        self._arrived.append(entry)

    def _hand_over(self) -> None:
        """Move what one read brought into the buffer and wake the claims: once per read,
        not once per message (reader thread only)."""
        arrived = self._arrived
        if not arrived:
            return
        self._arrived = []
        with self._cond:
            current = self._generation
            self._buffer.extend(entry for entry in arrived if entry[4] == current)
            self._cond.notify_all()

    # --- settling ------------------------------------------------------------------------

    def settle(self, deliveries: Sequence[Delivery], *, ack: bool, requeue: bool = False) -> None:
        """Ack, or reject (with ``requeue``), the held ones among ``deliveries``.

        Acks go as one ``multiple`` ack up to the highest tag below every message still
        unsettled on the channel, plus single acks for the few above it. The pops and the
        frames happen under the writer's lock, so no other settlement can slip a tag under
        a multiple ack between the two.

        Deliveries of an earlier connection, or whose lease lapsed, are skipped: the
        server already gave them back, and their tags would name other messages now.
        """
        with self._write_lock:
            with self._cond:
                tags = [held.amqp_tag for d in deliveries if (held := self._held.pop(d.tag, None))]
                channel = self._channel
                if not tags or channel is None:
                    return
                upto, singles = self._ack_plan(tags) if ack else (0, tags)
            try:
                if upto:
                    channel.basic_ack(upto, multiple=True)
                for tag in singles:
                    if ack:
                        channel.basic_ack(tag)
                    else:
                        channel.basic_reject(tag, requeue)
            except CONNECTION_ERRORS as exc:
                self._lost_connection(channel, exc)

    def _ack_plan(self, tags: list[int]) -> tuple[int, list[int]]:
        """``(multiple-ack tag or 0, tags to ack one by one)``; call with ``_cond`` held.

        Every tag below the lowest one still unsettled (held or buffered) is either in
        ``tags`` or settled already, so one multiple ack covers exactly those. Messages
        not yet handed over by the reader came later and have higher tags still.
        """
        unsettled = [held.amqp_tag for held in self._held.values()]
        unsettled += [entry[3] for entry in self._buffer]
        if not unsettled:
            return max(tags), []
        lowest = min(unsettled)
        below = [tag for tag in tags if tag < lowest]
        return (max(below) if below else 0), [tag for tag in tags if tag > lowest]

    def renew(self, deliveries: Sequence[Delivery]) -> None:
        deadline = time.monotonic() + self._lease
        with self._cond:
            for delivery in deliveries:
                held = self._held.get(delivery.tag)
                if held is not None:
                    held.deadline = deadline

    def holds(self, delivery: Delivery) -> bool:
        with self._cond:
            return delivery.tag in self._held

    # --- counting and purging --------------------------------------------------------------

    def consumes(self, queue: str) -> bool:
        with self._cond:
            return queue in self._consumers and self._channel is not None

    def count(self, queue: str, timeout: float = 10.0) -> int | None:
        """Ready messages of ``queue`` plus those this consumer buffered, counted together.

        The count request goes on the consuming channel, so the server answers after every
        delivery it sent before; the reader adds the buffer as it stands at that moment.
        None when the channel is gone (count elsewhere).
        """
        box: list[Any] = []
        done = threading.Event()
        with self._cond:
            channel = self._channel
            if channel is None:
                return None
            self._counts.setdefault(queue, []).append((box, done))
        try:
            with self._write_lock:
                channel.send_method(
                    spec.Queue.Declare, "BsbbbbbF", (0, queue, True, False, False, False, False, {})
                )
        except CONNECTION_ERRORS:
            return None
        if not done.wait(timeout):
            return None
        return int(box[0]) if box else None

    def _on_declare_ok(self, queue: str, message_count: int, consumer_count: int) -> None:
        self._hand_over()  # the deliveries read before this reply count as buffered
        with self._cond:
            waiting = self._counts.get(queue)
            if not waiting:
                return
            box, done = waiting.pop(0)
            box.append(message_count + sum(1 for e in self._buffer if e[2].queue == queue))
        done.set()

    def drop_buffered(self, queue: str) -> int:
        """Drop (reject without requeue) what this consumer buffered from ``queue``."""
        with self._write_lock:
            with self._cond:
                dropped = [entry for entry in self._buffer if entry[2].queue == queue]
                self._buffer = [entry for entry in self._buffer if entry[2].queue != queue]
                channel = self._channel
            if dropped and channel is not None:
                try:
                    for entry in dropped:
                        channel.basic_reject(entry[3], False)
                except CONNECTION_ERRORS as exc:
                    self._lost_connection(channel, exc)
        return len(dropped)

    # --- the connection and the reader thread ----------------------------------------------

    def _connect_once(self) -> Any:
        """Open the connection and channel, then install them; returns the channel."""
        connection = self._settings.open("consumer", heartbeat=True)
        try:
            channel = connection.channel()
            frames = None if self._tls else _frame_reader(connection)
        except BaseException:
            _close_quietly(connection)
            raise
        channel.auto_decode = False
        channel._callbacks[spec.Queue.DeclareOk] = self._on_declare_ok
        self._wrap_writer(connection)
        with self._cond:
            if self._closed:
                _close_quietly(connection)
                raise amqp.exceptions.RecoverableConnectionError("consumer closed")
            self._connection, self._channel, self._frames = connection, channel, frames
            self._generation += 1
            self._consumers.clear()
        return channel

    def _wrap_writer(self, connection: amqp.Connection) -> None:
        """Every frame goes out under one (reentrant) lock: acks come from other threads,
        heartbeats from the reader."""
        write = connection.frame_writer
        lock = self._write_lock

        def locked_write(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return write(*args, **kwargs)

        connection.frame_writer = locked_write

    def _read_loop(self) -> None:
        while not self._closed:
            connection, channel, frames = self._connection, self._channel, self._frames
            if connection is None:
                self._reconnect()
                continue
            try:
                self._tick(connection, channel)
                self._read(connection, frames)
            except TimeoutError:
                continue
            except (*CONNECTION_ERRORS, amqp.exceptions.AMQPError) as exc:
                self._arrived = []
                self._lost_connection(channel, exc)

    def _tick(self, connection: amqp.Connection, channel: Any) -> None:
        """Leases and heartbeats, at most once per read timeout (not once per read)."""
        now = time.monotonic()
        if now < self._next_tick:
            return
        self._next_tick = now + self._read_timeout
        self._sweep(channel)
        connection.heartbeat_tick()

    def _read(self, connection: amqp.Connection, frames: FrameReader | None) -> None:
        """Read what arrived (waiting up to the read timeout) and dispatch it."""
        if frames is None:
            # An SSL socket must not read and write at once: reads take the lock too.
            with self._write_lock:
                connection.drain_events(timeout=self._read_timeout)
        else:
            dispatch = connection.on_inbound_frame
            for frame in frames.read(self._read_timeout):
                dispatch(frame)
        self._hand_over()

    def _sweep(self, channel: Any) -> None:
        """Give back lapsed leases, and the buffer of a consumer that stopped claiming."""
        now = time.monotonic()
        with self._write_lock:
            with self._cond:
                lapsed = [key for key, held in self._held.items() if held.deadline <= now]
                lapsed_tags = [self._held.pop(key).amqp_tag for key in lapsed]
                idle = (
                    self._claiming == 0
                    and now - self._last_claim >= IDLE_RETURN
                    and (self._buffer or self._consumers)
                )
                returned: list[int] = []
                cancelled: list[str] = []
                if idle:
                    returned = [entry[3] for entry in self._buffer]
                    self._buffer = []
                    cancelled = list(self._consumers.values())
                    self._consumers.clear()
            for consumer_tag in cancelled:
                channel.basic_cancel(consumer_tag, nowait=True)
            for tag in lapsed_tags + returned:
                channel.basic_reject(tag, True)

    def _lost_connection(self, channel: Any, exc: BaseException) -> None:
        with self._cond:
            if self._closed or channel is not self._channel:
                return  # closing, or already handled
            logger.warning(
                "Connection to broker %s lost: %r. Trying to re-establish the connection...",
                self._settings.describe(),
                exc,
            )
            connection = self._connection
            self._connection = self._channel = self._frames = None
            self._buffer.clear()
            self._held.clear()  # the server gives unacked messages back by itself
            self._consumers.clear()
            for waiting in self._counts.values():
                for _, done in waiting:
                    done.set()
            self._counts.clear()
            self._cond.notify_all()
        _close_quietly(connection)

    def _reconnect(self) -> None:
        attempt = 0
        settings = self._settings
        while not self._closed:
            attempt += 1
            try:
                channel = self._connect_once()
                logger.info("Connected to %s", settings.describe())
                self._set_prefetch(channel)  # before consuming: never an unbounded moment
                self._consume_missing(channel)
                return
            except CONNECTION_ERRORS as exc:
                if not settings.retry or (
                    settings.max_retries is not None and attempt > settings.max_retries
                ):
                    logger.critical("Giving up on broker %s: %r", settings.describe(), exc)
                    self._closed = True
                    return
                delay = backoff(attempt + 1)
                logger.error(
                    "Cannot connect to %s: %s.\nTrying again in %.2f seconds... (%d/%s)",
                    settings.describe(),
                    exc,
                    delay,
                    attempt,
                    settings.max_retries or "∞",
                )
                end = time.monotonic() + delay
                while not self._closed and time.monotonic() < end:
                    time.sleep(0.1)

    def close(self) -> None:
        """Give back what this consumer holds (closing the channel does) and stop reading."""
        with self._cond:
            self._closed = True
            connection = self._connection
            self._connection = self._channel = self._frames = None
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        _close_quietly(connection)


def _frame_reader(connection: amqp.Connection) -> FrameReader:
    """A :class:`FrameReader` on the connection's socket, taking over what py-amqp had
    read ahead (normally nothing: it reads exact sizes)."""
    transport = connection.transport
    pending = getattr(transport, "_read_buffer", b"") or b""
    transport._read_buffer = b""
    return FrameReader(transport.sock, pending)


def _close_quietly(connection: amqp.Connection | None) -> None:
    if connection is None:
        return
    try:
        connection.collect()  # drop the socket without a close handshake that could block
    except Exception:  # already broken: nothing to release
        pass
