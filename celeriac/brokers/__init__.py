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
)

#: Schemes served by the Redis broker (needs redis-py: ``pip install celeriac[redis]``).
_REDIS = ("redis", "rediss", "redis+socket", "sentinel")

# Schemes Celery users know whose brokers celeriac has not built yet -> the broker's name.
_NOT_YET: dict[str, str] = {
    "amqp": "RabbitMQ (AMQP)",
    "amqps": "RabbitMQ (AMQP)",
    "pyamqp": "RabbitMQ (AMQP)",
}


def broker_for_url(url: str, *, options: dict[str, Any] | None = None) -> Broker:
    """Create the broker a URL names.

    Args:
        url: ``memory://``, ``sqlite:///path.db`` (or ``sqla+sqlite:///path.db``),
            ``redis://``, ``rediss://``, ``redis+socket://``, ``sentinel://``.
        options: ``broker_transport_options`` (``visibility_timeout``, ...).

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
    if scheme in _NOT_YET:
        raise ImproperlyConfigured(
            f"celeriac does not support the {_NOT_YET[scheme]} broker yet "
            f"(broker URL {mask_url(url)!r}). Supported schemes: {_supported()}."
        )
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


def _supported() -> str:
    return ", ".join(f"{scheme}://" for scheme in SCHEMES)
