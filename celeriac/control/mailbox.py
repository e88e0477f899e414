"""The remote-control wire layout (kombu's "pidbox"), and the worker's end of it.

Names, for the namespace ``N`` (the ``control_exchange`` setting, ``celery`` by default):

* requests go to the fanout exchange ``N.pidbox``; each worker reads them as its node
  queue ``<nodename>.N.pidbox``;
* replies go to the direct exchange ``reply.N.pidbox`` with the client's id as routing
  key; the client reads them from its queue ``<client id>.reply.N.pidbox``.

A request body (serialized with ``task_serializer``) holds ``method``, ``arguments``,
``destination`` (node names, or None for every node), ``pattern``/``matcher`` (another way
to pick nodes) and, when replies are wanted, ``ticket`` and ``reply_to``
(``{exchange, routing_key}``). Its headers carry a Lamport ``clock`` and ``expires`` (UNIX
time after which nobody should act on it). A reply body is ``{nodename: reply}`` with
headers ``ticket`` and ``clock``. These are Celery's formats, so Celery's ``inspect`` reaches
celeriac workers and celeriac's reaches Celery's.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celeriac.brokers.base import Broker, Subscription
from celeriac.message import Message
from celeriac.serialization import dumps, loads

__all__ = [
    "Clock",
    "MailboxNames",
    "Node",
    "addressed_to",
    "parse_body",
    "reply_message",
    "request_message",
]

logger = logging.getLogger("celeriac.worker.control")

#: How long the node waits for a request before it looks at its stop flag (seconds).
POLL = 0.5
#: How long the node waits before subscribing again after a broker error (seconds).
RETRY_DELAY = 1.0


@dataclass(frozen=True)
class MailboxNames:
    """Exchange and queue names of one namespace (the ``control_exchange`` setting)."""

    namespace: str = "celery"

    @property
    def exchange(self) -> str:
        return f"{self.namespace}.pidbox"

    @property
    def reply_exchange(self) -> str:
        return f"reply.{self.namespace}.pidbox"

    def node_queue(self, nodename: str) -> str:
        return f"{nodename}.{self.namespace}.pidbox"

    def reply_queue(self, client_id: str) -> str:
        return f"{client_id}.reply.{self.namespace}.pidbox"


class Clock:
    """A Lamport clock: each message carries it; a receiver moves past what it saw."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def forward(self) -> int:
        with self._lock:
            self.value += 1
            return self.value

    def adjust(self, other: Any) -> None:
        try:
            seen = int(other)
        except (TypeError, ValueError):
            return
        with self._lock:
            self.value = max(self.value, seen) + 1


def request_message(
    body: dict[str, Any], *, clock: int, expires: float, serializer: str
) -> Message:
    """The message of one request (``body`` as described in the module docstring)."""
    payload, content_type, encoding = dumps(body, serializer)
    return Message(
        payload,
        headers={"clock": clock, "expires": expires},
        properties={"delivery_mode": 2},
        content_type=content_type,
        content_encoding=encoding,
    )


def reply_message(
    nodename: str, reply: Any, *, ticket: str, clock: int, serializer: str
) -> Message:
    """The message of one node's reply to the request with ``ticket``."""
    payload, content_type, encoding = dumps({nodename: reply}, serializer)
    return Message(
        payload,
        headers={"ticket": ticket, "clock": clock},
        properties={"delivery_mode": 1},
        content_type=content_type,
        content_encoding=encoding,
    )


def parse_body(message: Message, accept: frozenset[str] | None = None) -> dict[str, Any] | None:
    """The decoded body, or None when it cannot be read (logged: a foreign or broken sender)."""
    try:
        body = loads(message.body, message.content_type, message.content_encoding, accept=accept)
    except Exception as exc:
        logger.warning("Ignoring an unreadable remote-control message: %r", exc)
        return None
    return body if isinstance(body, dict) else None


def addressed_to(request: dict[str, Any], nodename: str) -> bool:
    """Whether ``nodename`` should act on ``request`` (destination list, or pattern)."""
    destination = request.get("destination")
    pattern = request.get("pattern")
    if pattern:
        if request.get("matcher") == "pcre":
            return re.search(str(pattern), nodename) is not None
        return fnmatch.fnmatchcase(nodename, str(pattern))
    if destination:
        if isinstance(destination, str):
            destination = [destination]
        return nodename in destination
    return True


#: What the node calls for each request: (method, arguments) -> the reply.
Handler = Callable[[str, dict[str, Any]], Any]


class Node:
    """A worker's mailbox: a thread reading its node queue, running commands, replying.

    Args:
        broker: the worker's broker (a separate instance is fine; it is used from this
            node's own thread only).
        nodename: the worker's name (``celery@host``).
        handler: runs one command and returns its reply (see :mod:`celeriac.control.commands`).
        names: the namespace's exchange and queue names.
        serializer: how replies are serialized (``task_serializer``).
        accept: content types accepted in requests.
    """

    def __init__(
        self,
        broker: Broker,
        nodename: str,
        handler: Handler,
        *,
        names: MailboxNames,
        serializer: str,
        accept: frozenset[str] | None = None,
    ) -> None:
        self.broker = broker
        self.nodename = nodename
        self.handler = handler
        self.names = names
        self.serializer = serializer
        self.accept = accept
        self.clock = Clock()
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="Mailbox", daemon=True)

    def start(self, *, wait: float = 5.0) -> None:
        """Start listening; returns once subscribed (or after ``wait`` seconds)."""
        self._thread.start()
        self._subscribed.wait(wait)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(POLL * 4)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                subscription = self.broker.fanout_subscribe(
                    self.names.exchange, self.names.node_queue(self.nodename)
                )
            except Exception as exc:
                logger.error("Cannot listen for remote-control commands: %r; retrying", exc)
                self._stopping.wait(RETRY_DELAY)
                continue
            self._subscribed.set()
            try:
                self._listen(subscription)
            except Exception as exc:
                logger.error("Remote-control mailbox failed: %r; listening again", exc)
                self._stopping.wait(RETRY_DELAY)
            finally:
                _close_quietly(subscription)

    def _listen(self, subscription: Subscription) -> None:
        while not self._stopping.is_set():
            for message in subscription.get(POLL):
                self.handle(message)

    def handle(self, message: Message) -> None:
        """Act on one request (if it is for this node and not expired) and reply."""
        self.clock.adjust(message.headers.get("clock"))
        expires = message.headers.get("expires")
        if isinstance(expires, (int, float)) and expires and expires < time.time():
            return
        request = parse_body(message, self.accept)
        if request is None or not addressed_to(request, self.nodename):
            return
        method = str(request.get("method"))
        arguments = request.get("arguments") or {}
        try:
            reply = self.handler(method, dict(arguments))
        except Exception as exc:
            logger.exception("Remote-control command %s failed", method)
            reply = {"error": repr(exc)}
        ticket, reply_to = request.get("ticket"), request.get("reply_to")
        if ticket and isinstance(reply_to, dict) and reply is not NO_REPLY:
            self._reply(reply_to, str(ticket), reply)

    def _reply(self, reply_to: dict[str, Any], ticket: str, reply: Any) -> None:
        message = reply_message(
            self.nodename,
            reply,
            ticket=ticket,
            clock=self.clock.forward(),
            serializer=self.serializer,
        )
        try:
            self.broker.direct_publish(
                str(reply_to.get("exchange") or self.names.reply_exchange),
                str(reply_to.get("routing_key")),
                message,
            )
        except Exception as exc:
            logger.error("Cannot send a remote-control reply: %r", exc)


class _NoReply:
    """A command's return value meaning "send nothing back" (shutdown, as in Celery)."""

    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY: Any = _NoReply()


def _close_quietly(subscription: Subscription) -> None:
    try:
        subscription.close()
    except Exception as exc:
        logger.debug("Closing the mailbox subscription failed: %r", exc)
