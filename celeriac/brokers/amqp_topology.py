"""What the AMQP broker declares on RabbitMQ: task queues as Celery declares them, and the
delay cascade that holds countdown/eta messages inside the server.

Task queues
    Each queue is declared exactly as Celery declares it (durable, not exclusive, not
    auto-delete, the same ``x-*`` arguments), with its exchange and binding, because
    RabbitMQ refuses a second declaration whose arguments differ. The declarations come from
    ``task_queues``; a queue not listed there gets a direct exchange of its own name
    (``task_create_missing_queues``), of type ``task_create_missing_queue_type``.

Delay cascade
    RabbitMQ has no scheduled delivery without a plugin, but every queue can expire its
    messages after a fixed time and dead-letter them to an exchange. celeriac declares
    :data:`LEVELS` levels: level ``L`` is a topic exchange and a queue whose messages live
    ``2**L`` seconds and then move on to level ``L-1`` (level 0 to the *deliver* exchange).
    A delayed message is published to the top level with a routing key that spells its
    delay in seconds as binary digits, highest level first, followed by its queue name. At
    each level the digit decides: ``1`` waits in that level's queue, ``0`` passes straight
    to the next level. The deliver exchange finally routes it to its queue. Every level
    queue has one fixed TTL, so its oldest message is always the first to expire: no
    message waits behind a longer one. Nothing is held in a worker, and the delay is
    honoured to the second (rounded up, so a message never arrives before its eta).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DELAY_PREFIX", "LEVELS", "QueueSpec", "Topology", "delay_routing_key"]

#: Levels of the delay cascade: delays up to 2**28 - 1 seconds (about 8.5 years).
LEVELS = 28
#: Names of the cascade's exchanges and queues: ``celeriac.delay.<level>``, ``...deliver``.
DELAY_PREFIX = "celeriac.delay"
DELIVER_EXCHANGE = f"{DELAY_PREFIX}.deliver"
MAX_DELAY = 2**LEVELS - 1


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """One task queue as declared on the server, and how messages reach it."""

    name: str
    exchange: str
    exchange_type: str = "direct"
    routing_key: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False
    exchange_durable: bool = True

    @property
    def is_quorum(self) -> bool:
        return self.arguments.get("x-queue-type") == "quorum"

    def target(self, exchange: str | None, routing_key: str | None) -> tuple[str, str]:
        """Celery's publish target: the nameless exchange for plain direct queues."""
        if exchange is None and routing_key is None and self.exchange_type == "direct":
            return "", self.name
        return (self.exchange if exchange is None else exchange), (routing_key or self.routing_key)


class Topology:
    """Queue declarations derived from the app's routing settings (Celery's rules).

    Args:
        queues: ``task_queues`` (``Queue`` objects, celeriac's or kombu's, or a mapping).
        default_queue, default_exchange, default_exchange_type, default_routing_key:
            the ``task_default_*`` settings.
        max_priority: ``task_queue_max_priority`` (``x-max-priority`` on every queue).
        missing_queue_type: ``task_create_missing_queue_type`` (``classic`` or ``quorum``).
        default_queue_type: ``task_default_queue_type`` for the default queue.
    """

    def __init__(
        self,
        queues: Any = None,
        *,
        default_queue: str = "celery",
        default_exchange: str | None = None,
        default_exchange_type: str = "direct",
        default_routing_key: str | None = None,
        max_priority: int | None = None,
        missing_queue_type: str = "classic",
        default_queue_type: str = "classic",
    ) -> None:
        self.default_queue = default_queue
        self.default_exchange = default_exchange or default_queue
        self.default_exchange_type = default_exchange_type or "direct"
        self.default_routing_key = default_routing_key or default_queue
        self.max_priority = max_priority
        self.missing_queue_type = missing_queue_type or "classic"
        self.default_queue_type = default_queue_type or "classic"
        self._specs = {spec.name: spec for spec in self._from_setting(queues)}

    @classmethod
    def from_settings(cls, conf: Any) -> Topology:
        """The topology an app's settings describe."""
        return cls(
            conf["task_queues"],
            default_queue=conf["task_default_queue"] or "celery",
            default_exchange=conf["task_default_exchange"],
            default_exchange_type=conf["task_default_exchange_type"],
            default_routing_key=conf["task_default_routing_key"],
            max_priority=conf["task_queue_max_priority"],
            missing_queue_type=conf["task_create_missing_queue_type"],
            default_queue_type=conf["task_default_queue_type"],
        )

    def spec(self, name: str) -> QueueSpec:
        """The declaration of queue ``name`` (one is made up for queues not configured)."""
        found = self._specs.get(name)
        if found is not None:
            return found
        if name == self.default_queue and not self._specs:
            queue_type = self.default_queue_type
            exchange, exchange_type = self.default_exchange, self.default_exchange_type
            key = self.default_routing_key
        else:
            queue_type = self.missing_queue_type
            exchange, exchange_type, key = name, "direct", name
        arguments = self._with_max_priority({})
        if queue_type == "quorum":
            arguments["x-queue-type"] = "quorum"
        spec = QueueSpec(name, exchange, exchange_type, key, arguments)
        self._specs[name] = spec
        return spec

    def _with_max_priority(self, arguments: dict[str, Any]) -> dict[str, Any]:
        if self.max_priority is not None:
            arguments.setdefault("x-max-priority", int(self.max_priority))
        return arguments

    def _from_setting(self, queues: Any) -> Iterable[QueueSpec]:
        if not queues:
            return []
        if isinstance(queues, Mapping):
            return [self._from_mapping(name, dict(opts or {})) for name, opts in queues.items()]
        if not isinstance(queues, (list, tuple, set, frozenset)):
            queues = [queues]
        return [self._from_queue(queue) for queue in queues]

    def _from_mapping(self, name: str, options: dict[str, Any]) -> QueueSpec:
        from celeriac.routing import Exchange, Queue

        exchange = options.pop("exchange", None)
        exchange_type = options.pop("exchange_type", None)
        if isinstance(exchange, str) and exchange_type:
            exchange = Exchange(exchange, type=exchange_type)
        keep = {k: v for k, v in options.items() if k in Queue.__dataclass_fields__}
        return self._from_queue(Queue(name, exchange=exchange, **keep))

    def _from_queue(self, queue: Any) -> QueueSpec:
        """A celeriac or kombu ``Queue`` -> its declaration, after Celery's defaults."""
        exchange = getattr(queue, "exchange", None)
        name = getattr(exchange, "name", exchange) if exchange is not None else None
        if not name:
            exchange_name, exchange_type = self.default_exchange, self.default_exchange_type
            exchange_durable = True
        else:
            exchange_name = str(name)
            exchange_type = str(getattr(exchange, "type", None) or "direct")
            exchange_durable = bool(getattr(exchange, "durable", True))
        return QueueSpec(
            name=queue.name,
            exchange=exchange_name,
            exchange_type=exchange_type,
            routing_key=getattr(queue, "routing_key", None) or self.default_routing_key,
            arguments=self._with_max_priority(queue_arguments(queue)),
            durable=bool(getattr(queue, "durable", True)),
            exclusive=bool(getattr(queue, "exclusive", False)),
            auto_delete=bool(getattr(queue, "auto_delete", False)),
            exchange_durable=exchange_durable,
        )


def queue_arguments(queue: Any) -> dict[str, Any]:
    """``x-*`` arguments of a ``Queue`` (kombu's mapping of its keyword options)."""
    arguments = dict(getattr(queue, "queue_arguments", None) or {})
    for attribute, key, scale in (
        ("expires", "x-expires", 1000),
        ("message_ttl", "x-message-ttl", 1000),
        ("max_length", "x-max-length", 1),
        ("max_length_bytes", "x-max-length-bytes", 1),
        ("max_priority", "x-max-priority", 1),
    ):
        value = getattr(queue, attribute, None)
        if value is not None:
            arguments[key] = int(value * scale)
    return arguments


# --- the delay cascade ----------------------------------------------------------------------


def level_name(level: int) -> str:
    return f"{DELAY_PREFIX}.{level}"


def _next_hop(level: int) -> str:
    return level_name(level - 1) if level > 0 else DELIVER_EXCHANGE


def _digit_key(level: int, digit: str) -> str:
    """The binding key matching routing keys whose digit for ``level`` is ``digit``."""
    return ".".join(["*"] * (LEVELS - 1 - level) + [digit, "#"])


def delay_levels() -> list[tuple[str, dict[str, Any], list[tuple[str, str]]]]:
    """Per level: its name, its queue arguments, and its (destination exchange, key) hops."""
    levels = []
    for level in range(LEVELS):
        arguments = {
            "x-message-ttl": (2**level) * 1000,
            "x-dead-letter-exchange": _next_hop(level),
        }
        levels.append((level_name(level), arguments, [(_next_hop(level), _digit_key(level, "0"))]))
    return levels


def level_queue_key(level: int) -> str:
    return _digit_key(level, "1")


def deliver_key(queue: str) -> str:
    """How the deliver exchange is bound to ``queue``: exactly LEVELS digits, then its name."""
    return ".".join(["*"] * LEVELS + [queue])


def delay_seconds(eta: float, now: float) -> int:
    """Whole seconds to wait, rounded up so that a message never arrives before ``eta``."""
    return int(min(max(math.ceil(eta - now), 0), MAX_DELAY))


def delay_routing_key(seconds: int, queue: str) -> str:
    """The cascade routing key: the delay's binary digits, top level first, then the queue."""
    digits = format(min(seconds, MAX_DELAY), f"0{LEVELS}b")
    return ".".join([*digits, queue])


TOP_LEVEL = level_name(LEVELS - 1)
