"""The RabbitMQ broker (AMQP 0-9-1), laid out on the server exactly as Celery lays it out.

Client library: py-amqp (``amqp`` on PyPI). It is the AMQP client Celery itself runs on, kept
by the same maintainers, pure Python with a C-accelerated variant, and it encodes
application headers the way a Celery worker decodes them (``None`` as void, nested tables,
typed integers), which is what wire compatibility rests on. It is synchronous, which suits
celeriac's thread-based seam: one reader thread per consuming connection, writes from any
thread under a lock.

Layout:

- task queues, exchanges and bindings are declared from ``task_queues`` and the
  ``task_default_*`` settings with Celery's arguments (see
  :mod:`~celeriac.brokers.amqp_topology`); a plain direct queue is published to through
  the nameless exchange with the queue's name as routing key, as Celery does;
- every publish waits for the server's publisher confirm: when ``delay()`` returns, the
  broker has the message (persistent messages on disk);
- countdown/eta messages wait in the server's delay cascade, never in a worker;
- dead letters go to the durable queue ``celeriac.dead-letters``.

Connections: one for publishing (with confirms, shared by the threads of a process, behind
a lock), and one for consuming, opened on the first claim (see
:mod:`~celeriac.brokers.amqp_consumer`). Both reconnect after a server restart; a publish
retries a few times (Celery's ``task_publish_retry_policy``) and then raises
:class:`~celeriac.exceptions.OperationalError`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

import amqp

from celeriac.brokers import amqp_topology as topo
from celeriac.brokers.amqp_connection import CONNECTION_ERRORS, ConnectionSettings, retrying
from celeriac.brokers.amqp_consumer import (
    REDELIVERED_HEADER,
    Consumer,
    from_amqp,
    to_amqp,
)
from celeriac.brokers.amqp_subscription import AMQPSubscription
from celeriac.brokers.base import (
    Broker,
    DeadLetter,
    Delivery,
    ExchangeType,
    Outgoing,
    Subscription,
)
from celeriac.exceptions import OperationalError
from celeriac.message import Message

__all__ = ["DEAD_LETTER_QUEUE", "AMQPBroker"]

#: The durable queue that keeps messages which could not run.
DEAD_LETTER_QUEUE = "celeriac.dead-letters"
#: The header of a dead letter that records where it came from and why.
DEAD_HEADER = "x-celeriac-dead"
#: Pauses between publish attempts after a connection error (Celery's default policy:
#: three retries, 0.2 s apart).
PUBLISH_RETRY_DELAYS = (0.0, 0.2, 0.2)
#: The longest a publish waits for the server's confirm (seconds).
CONFIRM_TIMEOUT = 30.0


class _Publisher:
    """One confirm-mode channel shared by the threads of a process (behind a lock)."""

    def __init__(self, settings: ConnectionSettings, topology: topo.Topology) -> None:
        self.settings = settings
        self.topology = topology
        self.lock = threading.RLock()
        self._connection: amqp.Connection | None = None
        self._channel: Any = None
        self._declared: set[str] = set()
        self._exchanges: set[str] = set()
        self._delay_declared = False
        self._delay_bound: set[str] = set()
        self._unconfirmed: set[int] = set()
        self._nacked = False
        self._seq = 0

    # --- the channel -----------------------------------------------------------------------

    def channel(self) -> Any:
        """The open channel (connecting first if needed); call with :attr:`lock` held."""
        if self._channel is None or self._connection is None:
            connection = self.settings.open("producer", heartbeat=False)
            channel = connection.channel()
            channel.auto_decode = False
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            self._connection, self._channel = connection, channel
            self._declared.clear()
            self._exchanges.clear()
            self._delay_declared = False
            self._delay_bound.clear()
            self._unconfirmed.clear()
            self._seq = 0
        return self._channel

    def reset(self) -> None:
        connection = self._connection
        self._connection = self._channel = None
        if connection is not None:
            try:
                connection.collect()
            except Exception:
                pass

    def run(self, action: Any, what: str) -> Any:
        """Run ``action(channel)`` under the lock; on a lost connection, reconnect and retry."""
        with self.lock:
            last: BaseException | None = None
            for delay in PUBLISH_RETRY_DELAYS:
                if delay:
                    time.sleep(delay)
                try:
                    return action(self.channel())
                except amqp.exceptions.ChannelError as exc:
                    self.reset()  # the server closed the channel: say why, do not retry
                    raise OperationalError(
                        f"AMQP broker {self.settings.describe()} refused to {what}: {exc}"
                    ) from exc
                except CONNECTION_ERRORS as exc:
                    last = exc
                    self.reset()
            raise OperationalError(
                f"Cannot {what}: AMQP broker {self.settings.describe()} is unreachable: {last}"
            ) from last

    # --- confirms --------------------------------------------------------------------------

    def _on_ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {seq for seq in self._unconfirmed if seq > tag}
        else:
            self._unconfirmed.discard(tag)

    def _on_nack(self, tag: int, multiple: bool, requeue: bool = False) -> None:
        self._nacked = True
        self._on_ack(tag, multiple)

    def publish(self, channel: Any, message: amqp.Message, exchange: str, key: str) -> None:
        channel.basic_publish(message, exchange=exchange, routing_key=key)
        self._seq += 1
        self._unconfirmed.add(self._seq)

    def wait_confirms(self) -> None:
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        assert self._connection is not None
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no publisher confirm from the broker")
            try:
                self._connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        if self._nacked:
            self._nacked = False
            raise OperationalError("the broker refused (nacked) a published message")

    # --- declarations ----------------------------------------------------------------------

    def declare(self, channel: Any, queue: str) -> topo.QueueSpec:
        spec = self.topology.spec(queue)
        if queue in self._declared:
            return spec
        if spec.exchange:
            channel.exchange_declare(
                spec.exchange, spec.exchange_type, durable=spec.exchange_durable, auto_delete=False
            )
        channel.queue_declare(
            queue,
            durable=spec.durable,
            exclusive=spec.exclusive,
            auto_delete=spec.auto_delete,
            arguments=spec.arguments or None,
        )
        if spec.exchange:
            channel.queue_bind(queue, spec.exchange, spec.routing_key)
        self._declared.add(queue)
        return spec

    def declare_exchange(self, channel: Any, exchange: str, kind: str) -> None:
        """The exchange of transient traffic (pidbox, replies, events), once.

        Declared as Celery declares it, or RabbitMQ refuses the second declaration:
        the pidbox ones non-durable, the event exchange (``topic``) durable.
        """
        if exchange not in self._exchanges:
            durable = kind == "topic"
            channel.exchange_declare(exchange, kind, durable=durable, auto_delete=False)
            self._exchanges.add(exchange)

    def declare_delays(self, channel: Any, queue: str) -> None:
        """The delay cascade (once per connection) and the last hop to ``queue``."""
        if not self._delay_declared:
            channel.exchange_declare(
                topo.DELIVER_EXCHANGE, "topic", durable=True, auto_delete=False
            )
            levels = topo.delay_levels()
            for name, _, _ in levels:
                channel.exchange_declare(name, "topic", durable=True, auto_delete=False)
            for level, (name, arguments, hops) in enumerate(levels):
                channel.queue_declare(name, durable=True, auto_delete=False, arguments=arguments)
                channel.queue_bind(name, name, topo.level_queue_key(level))
                for destination, key in hops:
                    channel.exchange_bind(destination, name, key)
            self._delay_declared = True
        if queue not in self._delay_bound:
            channel.queue_bind(queue, topo.DELIVER_EXCHANGE, topo.deliver_key(queue))
            self._delay_bound.add(queue)


class AMQPBroker(Broker):
    """A broker on RabbitMQ (``amqp://``, ``pyamqp://``, ``amqps://``).

    Args:
        url: the broker URL.
        options: ``broker_transport_options`` (``visibility_timeout`` sets the lease) plus
            ``broker_use_ssl``.
        conf: the app's settings (routing, ``broker_*`` connection settings); Celery's
            defaults without.
    """

    schemes: ClassVar[tuple[str, ...]] = ("amqp", "amqps", "pyamqp")
    acks_gate_delivery: ClassVar[bool] = True

    def __init__(self, url: str, *, options: dict[str, Any] | None = None, conf: Any = None):
        super().__init__(url, options=options)
        self.settings = ConnectionSettings.parse(url, self.options, conf)
        self.topology = topo.Topology.from_settings(conf) if conf is not None else topo.Topology()
        self._publisher = _Publisher(self.settings, self.topology)
        self._consumer: Consumer | None = None
        self._consumer_lock = threading.Lock()

    def describe(self) -> str:
        return self.settings.describe()

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            with self._consumer_lock:
                if self._consumer is None:
                    self._consumer = Consumer(
                        self.settings,
                        self.lease_seconds,
                        self.declare,
                        quorum=lambda queue: self.topology.spec(queue).is_quorum,
                    )
        return self._consumer

    # --- administration ----------------------------------------------------------------------

    def connect(self) -> None:
        """Open the publishing connection, retrying as ``broker_connection_retry_on_startup`` says.

        Raises:
            OperationalError: the server could not be reached within the retries.
        """
        settings = self.settings

        def attempt() -> None:
            with self._publisher.lock:
                try:
                    self._publisher.channel()
                except CONNECTION_ERRORS:
                    self._publisher.reset()
                    raise

        retries = settings.max_retries if settings.retry_on_startup else 0
        retrying(settings, attempt, what="connect to", retries=retries)

    def declare(self, queue: str) -> None:
        """Declare ``queue`` with its exchange and binding, as Celery would."""
        self._publisher.run(lambda channel: self._publisher.declare(channel, queue), "declare")

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        with self._publisher.lock:
            connection = self._publisher._connection
            self._publisher._connection = self._publisher._channel = None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                pass

    def purge(self, queue: str) -> int:
        """Delete the ready messages of ``queue`` (and those this instance buffered)."""

        def purge(channel: Any) -> int:
            self._publisher.declare(channel, queue)
            return int(channel.queue_purge(queue) or 0)

        dropped = self._consumer.drop_buffered(queue) if self._consumer is not None else 0
        return int(self._publisher.run(purge, "purge a queue")) + dropped

    def size(self, queue: str) -> int:
        """Ready messages of ``queue``, counting those this instance buffered but not claimed."""
        if self._consumer is not None and self._consumer.consumes(queue):
            counted = self._consumer.count(queue)
            if counted is not None:
                return counted

        def count(channel: Any) -> int:
            self._publisher.declare(channel, queue)
            return int(channel.queue_declare(queue, passive=True).message_count)

        return int(self._publisher.run(count, "count messages"))

    # --- producing ---------------------------------------------------------------------------

    def publish_many(self, items: Sequence[Outgoing]) -> None:
        """Publish every item, then wait for the server's confirms of all of them."""
        if not items:
            return
        now = time.time()
        prepared = [(item, to_amqp(item.message)) for item in items]
        publisher = self._publisher

        def send(channel: Any) -> None:
            for item, raw in prepared:
                spec = publisher.declare(channel, item.queue)
                if item.eta is not None and item.eta > now:
                    publisher.declare_delays(channel, item.queue)
                    seconds = topo.delay_seconds(item.eta, now)
                    key = topo.delay_routing_key(seconds, item.queue)
                    publisher.publish(channel, raw, topo.TOP_LEVEL, key)
                else:
                    exchange, key = spec.target(
                        getattr(item, "exchange", None), getattr(item, "routing_key", None)
                    )
                    publisher.publish(channel, raw, exchange, key)
            publisher.wait_confirms()

        publisher.run(send, "publish")

    # --- broadcast and direct (remote control) ----------------------------------------------

    def fanout_publish(
        self,
        exchange: str,
        message: Message,
        *,
        routing_key: str = "",
        exchange_type: ExchangeType = "fanout",
    ) -> None:
        """Publish to ``exchange`` (declared if new: see ``declare_exchange``), transient."""
        self._publish_to(exchange, exchange_type, routing_key, message)

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
        """An exclusive auto-delete queue bound to ``exchange`` (a pidbox node queue, or a
        monitor's ``celeryev.<id>`` queue bound with ``#``)."""
        return AMQPSubscription(
            self.settings,
            exchange,
            exchange_type,
            queue,
            binding_key,
            exclusive=True,
            expires=expires,
            message_ttl=message_ttl,
        )

    def direct_publish(self, exchange: str, routing_key: str, message: Message) -> None:
        """Publish to the non-durable direct ``exchange``; unroutable messages are dropped."""
        self._publish_to(exchange, "direct", routing_key, message)

    def direct_subscribe(
        self, exchange: str, routing_key: str, queue: str, *, expires: float | None = None
    ) -> Subscription:
        """An auto-delete queue bound to ``exchange`` with ``routing_key`` (a reply queue)."""
        return AMQPSubscription(
            self.settings,
            exchange,
            "direct",
            queue,
            routing_key,
            exclusive=False,
            expires=expires,
        )

    def _publish_to(self, exchange: str, kind: str, routing_key: str, message: Message) -> None:
        raw = to_amqp(message)
        raw.properties.setdefault("delivery_mode", 1)
        publisher = self._publisher

        def send(channel: Any) -> None:
            publisher.declare_exchange(channel, exchange, kind)
            publisher.publish(channel, raw, exchange, routing_key)
            publisher.wait_confirms()

        publisher.run(send, f"publish to {exchange}")

    # --- consuming ---------------------------------------------------------------------------

    def _claim(self, queues: list[str], limit: int, timeout: float) -> list[Delivery]:
        return self.consumer.claim(queues, limit, timeout)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if self._consumer is not None and deliveries:
            self._consumer.settle(deliveries, ack=True)

    def reject(self, deliveries: Sequence[Delivery], *, requeue: bool) -> None:
        if self._consumer is not None and deliveries:
            self._consumer.settle(deliveries, ack=False, requeue=requeue)

    def renew(self, deliveries: Sequence[Delivery]) -> None:
        if self._consumer is not None and deliveries:
            self._consumer.renew(deliveries)

    # --- dead letters ------------------------------------------------------------------------

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Copy the message into the dead-letter queue (confirmed), then ack the original."""
        if self._consumer is not None and not self._consumer.holds(delivery):
            return  # settled already, or its lease lapsed: someone else has it now
        record = {
            "id": uuid.uuid4().hex,
            "queue": delivery.queue,
            "reason": reason,
            "time": time.time(),
        }
        raw = to_amqp(delivery.message, **{DEAD_HEADER: json.dumps(record)})
        publisher = self._publisher

        def send(channel: Any) -> None:
            publisher.declare(channel, DEAD_LETTER_QUEUE)
            publisher.publish(channel, raw, "", DEAD_LETTER_QUEUE)
            publisher.wait_confirms()

        publisher.run(send, "keep a dead letter")
        self.ack([delivery])

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters (read, then put back in place: the queue is unchanged)."""
        return self._walk_dead(limit, None)

    def requeue_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Publish dead letters back to their queues (marked redelivered); returns how many."""
        return len(self._walk_dead(None, set(ids) if ids is not None else True))

    def _walk_dead(self, limit: int | None, move: set[str] | bool | None) -> list[DeadLetter]:
        """Read dead letters on a private channel; those ``move`` names (True: all) go back
        to their queues, the rest return to the dead-letter queue when the channel closes.

        Returns the letters read (``move`` None) or the letters moved.
        """
        publisher = self._publisher

        def walk(channel: Any) -> list[DeadLetter]:
            publisher.declare(channel, DEAD_LETTER_QUEUE)
            assert publisher._connection is not None
            reader = publisher._connection.channel()
            reader.auto_decode = False
            result: list[DeadLetter] = []
            try:
                while limit is None or len(result) < limit:
                    raw = reader.basic_get(DEAD_LETTER_QUEUE, no_ack=False)
                    if raw is None:
                        break
                    letter = _dead_letter_of(raw)
                    if move is None:
                        result.append(letter)
                    elif move is True or (isinstance(move, set) and letter.id in move):
                        self._put_back(channel, letter)
                        reader.basic_ack(raw.delivery_info["delivery_tag"])
                        result.append(letter)
            finally:
                reader.close()  # what was read and not acked goes back, in place
            return result

        return list(publisher.run(walk, "read dead letters"))

    def _put_back(self, channel: Any, letter: DeadLetter) -> None:
        publisher = self._publisher
        publisher.declare(channel, letter.queue)
        out = to_amqp(letter.message, **{REDELIVERED_HEADER: True})
        publisher.publish(channel, out, "", letter.queue)
        publisher.wait_confirms()


def _dead_letter_of(raw: amqp.Message) -> DeadLetter:
    message, _ = from_amqp(raw)
    record = json.loads(message.headers.pop(DEAD_HEADER, "{}") or "{}")
    return DeadLetter(
        id=str(record.get("id", "")),
        queue=str(record.get("queue", "")),
        reason=str(record.get("reason", "")),
        time=float(record.get("time", 0.0)),
        message=message,
    )
