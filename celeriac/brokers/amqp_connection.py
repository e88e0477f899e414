"""Opening AMQP connections: the URL, the connection settings, and retrying with backoff.

``amqp://user:password@host:port/vhost`` (``pyamqp://`` is the same; ``amqps://`` adds TLS,
configured by ``broker_use_ssl``). As in kombu, ``//`` at the end names the vhost ``/`` and
no path at all means ``/`` too; any other path is the vhost name, URL-decoded.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import amqp

from celeriac.brokers.base import mask_url
from celeriac.exceptions import ImproperlyConfigured, OperationalError

__all__ = ["CONNECTION_ERRORS", "ConnectionSettings", "retrying"]

logger = logging.getLogger("celeriac.brokers.amqp")

#: Errors after which a new connection may succeed (the server restarted, the network
#: blinked, the server closed the connection).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    amqp.exceptions.ConnectionError,
    amqp.exceptions.RecoverableChannelError,
    OSError,
    socket.timeout,
)

T = TypeVar("T")


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything needed to open a connection, parsed once from the URL and settings."""

    url: str
    host: str
    port: int
    userid: str
    password: str
    virtual_host: str
    ssl: Any = False
    heartbeat: float = 120.0
    connect_timeout: float | None = 4.0
    retry: bool = True
    retry_on_startup: bool = True
    max_retries: int | None = 100

    @classmethod
    def parse(cls, url: str, options: dict[str, Any], conf: Any = None) -> ConnectionSettings:
        """Read the URL and the ``broker_*`` settings (``conf``; Celery's defaults without)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("amqp", "amqps", "pyamqp"):
            raise ImproperlyConfigured(f"Not an AMQP broker URL: {mask_url(url)!r}")
        use_ssl = options.get("broker_use_ssl") or (conf["broker_use_ssl"] if conf else False)
        if scheme == "amqps" and not use_ssl:
            use_ssl = True
        try:
            port = parts.port or (5671 if use_ssl else 5672)
        except ValueError as exc:
            raise ImproperlyConfigured(f"Bad port in broker URL {mask_url(url)!r}") from exc
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        retry = _setting(conf, "broker_connection_retry", True)
        on_startup = _setting(conf, "broker_connection_retry_on_startup", None)
        max_retries = _setting(conf, "broker_connection_max_retries", 100)
        return cls(
            url=url,
            host=parts.hostname or "localhost",
            port=port,
            userid=unquote(parts.username) if parts.username else "guest",
            password=unquote(parts.password) if parts.password else "guest",
            virtual_host=unquote(path) if path else "/",
            ssl=_ssl_option(use_ssl),
            heartbeat=float(_setting(conf, "broker_heartbeat", 120.0) or 0.0),
            connect_timeout=_setting(conf, "broker_connection_timeout", 4.0),
            retry=bool(retry),
            retry_on_startup=bool(retry if on_startup is None else on_startup),
            max_retries=int(max_retries) if max_retries else None,
        )

    def describe(self) -> str:
        return mask_url(self.url)

    def open(self, role: str, *, heartbeat: bool) -> amqp.Connection:
        """Open and handshake one connection, named for ``rabbitmqctl list_connections``."""
        name = f"celeriac {role} pid={os.getpid()} host={socket.gethostname()}"
        connection = amqp.Connection(
            host=f"{self.host}:{self.port}",
            userid=self.userid,
            password=self.password,
            virtual_host=self.virtual_host,
            ssl=self.ssl,
            connect_timeout=self.connect_timeout,
            heartbeat=int(self.heartbeat) if heartbeat else 0,
            client_properties={"connection_name": name, "product": "celeriac"},
        )
        connection.connect()
        return connection


def _setting(conf: Any, name: str, default: Any) -> Any:
    if conf is None:
        return default
    value = conf[name]
    return default if value is None and default is not None else value


def _ssl_option(use_ssl: Any) -> Any:
    """``broker_use_ssl`` as py-amqp takes it: False, True, a context, or ssl options."""
    if not use_ssl:
        return False
    if use_ssl is True or isinstance(use_ssl, ssl.SSLContext):
        return use_ssl
    if isinstance(use_ssl, dict):
        return dict(use_ssl)
    raise ImproperlyConfigured("broker_use_ssl must be True, an ssl.SSLContext or a dict")


def backoff(attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1-based): 0, then 2, 4, 6, ... up to 10."""
    return 0.0 if attempt <= 1 else min(2.0 * (attempt - 1), 10.0)


def retrying(
    settings: ConnectionSettings,
    action: Callable[[], T],
    *,
    what: str,
    retries: int | None,
    stopped: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], Any] = time.sleep,
) -> T:
    """Run ``action`` until it stops raising connection errors, logging each failure.

    Args:
        retries: how many retries after the first failure (None: forever).
        stopped: checked between attempts; True gives up at once.

    Raises:
        OperationalError: the retries ran out (or ``stopped``), naming the broker and cause.
    """
    attempt = 0
    while True:
        try:
            return action()
        except CONNECTION_ERRORS as exc:
            attempt += 1
            if (retries is not None and attempt > retries) or stopped():
                raise OperationalError(
                    f"Cannot {what} AMQP broker {settings.describe()}: {exc}"
                ) from exc
            delay = backoff(attempt + 1)
            logger.error(
                "Cannot connect to %s: %s.\nTrying again in %.2f seconds... (%d/%s)",
                settings.describe(),
                exc or type(exc).__name__,
                delay,
                attempt,
                retries if retries is not None else "∞",
            )
            sleep(delay)
