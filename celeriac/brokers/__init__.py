"""Brokers, chosen by URL scheme: :func:`broker_for_url` and the schemes it serves.

Each broker class lives in its own module and is imported only when its scheme is used, so
start-up never pays for a broker the application does not name.
"""

from __future__ import annotations

from typing import Any

from celeriac.brokers.base import Broker, DeadLetter, Delivery, Outgoing, mask_url
from celeriac.exceptions import ImproperlyConfigured

__all__ = ["SCHEMES", "Broker", "DeadLetter", "Delivery", "Outgoing", "broker_for_url"]

#: The URL schemes this version serves.
SCHEMES: tuple[str, ...] = (
    "memory",
    "sqlite",
    "sqla+sqlite",
    "redis",
    "rediss",
    "redis+socket",
    "sentinel",
    "amqp",
    "amqps",
    "pyamqp",
)

#: Schemes served by the Redis broker (needs redis-py: ``pip install celeriac[redis]``).
_REDIS = ("redis", "rediss", "redis+socket", "sentinel")

#: Schemes served by the RabbitMQ broker (needs py-amqp: ``pip install celeriac[amqp]``).
_AMQP = ("amqp", "amqps", "pyamqp")


def broker_for_url(url: str, *, options: dict[str, Any] | None = None, conf: Any = None) -> Broker:
    """Create the broker a URL names.

    Args:
        url: ``memory://``, ``sqlite:///path.db`` (or ``sqla+sqlite:///path.db``),
            ``redis://``, ``rediss://``, ``redis+socket://``, ``sentinel://``, ``amqp://``,
            ``pyamqp://``, ``amqps://``.
        options: ``broker_transport_options`` (``visibility_timeout``, ...).
        conf: the app's settings, for brokers that declare routing topology and read the
            ``broker_*`` connection settings (RabbitMQ); the others ignore it.

    Raises:
        ImproperlyConfigured: the scheme is unknown, or its broker is not available yet
            (or needs a package that is not installed).
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower() if sep else ""
    if scheme == "memory":
        from celeriac.brokers.memory import MemoryBroker

        return MemoryBroker(url, options=options)
    if scheme in ("sqlite", "sqla+sqlite"):
        from celeriac.brokers.sqlite import SQLiteBroker

        return SQLiteBroker(url, options=options)
    if scheme in _REDIS:
        return _redis_broker(url, options)
    if scheme in _AMQP:
        return _amqp_broker(url, options, conf)
    raise ImproperlyConfigured(
        f"Unknown broker URL {mask_url(url)!r}: expected one of {_supported()} "
        "(for example sqlite:///celeriac.db)."
    )


def _redis_broker(url: str, options: dict[str, Any] | None) -> Broker:
    try:
        from celeriac.brokers.redis import RedisBroker
    except ImportError as exc:
        if not (exc.name or "").startswith("redis"):
            raise
        raise ImproperlyConfigured(
            f"The Redis broker (broker URL {mask_url(url)!r}) needs redis-py: "
            "pip install celeriac[redis]"
        ) from exc
    return RedisBroker(url, options=options)


def _amqp_broker(url: str, options: dict[str, Any] | None, conf: Any) -> Broker:
    try:
        from celeriac.brokers.amqp import AMQPBroker
    except ImportError as exc:
        if not (exc.name or "").startswith("amqp"):
            raise
        raise ImproperlyConfigured(
            f"The RabbitMQ broker (broker URL {mask_url(url)!r}) needs py-amqp: "
            "pip install celeriac[amqp]"
        ) from exc
    return AMQPBroker(url, options=options, conf=conf)


def _supported() -> str:
    return ", ".join(f"{scheme}://" for scheme in SCHEMES)
