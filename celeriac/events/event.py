"""One event and its message: Celery's event layout on the wire.

An event is a flat dict: ``type`` (``task-succeeded``, ``worker-heartbeat``, ...; the word
before the first dash is its *group*), ``hostname``, ``timestamp`` (UNIX seconds),
``utcoffset`` (hours), ``pid``, ``clock`` (the sender's Lamport clock) and the fields of
its type. It travels through the ``event_exchange`` (``celeryev``) with the routing key
``type`` with dashes turned into dots (``task.succeeded``), in a transient message whose
header ``hostname`` names the sender and whose body is one event, or a list of events
sent together (routing key ``<group>.multi``). Celery's monitors read these messages, and
celeriac's read Celery's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from celeriac.message import Message
from celeriac.serialization import dumps, loads

__all__ = [
    "Event",
    "adjust_timestamp",
    "event_message",
    "events_from_message",
    "group_from",
    "routing_key_for",
    "utcoffset",
]


def Event(type: str, _fields: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An event of ``type``; ``timestamp`` is now unless given (Celery's ``Event``)."""
    event = dict(_fields, **fields) if _fields else fields
    event["type"] = type
    if "timestamp" not in event:
        event["timestamp"] = time.time()
    return event


def group_from(type_: str) -> str:
    """``task-sent`` -> ``task``; the group decides which events a sender buffers or sends."""
    return type_.split("-", 1)[0]


def routing_key_for(type_: str) -> str:
    """``task-succeeded`` -> ``task.succeeded`` (monitors on AMQP bind patterns over these)."""
    return type_.replace("-", ".")


def utcoffset() -> int:
    """This host's offset to UTC in hours, as Celery computes it (west of UTC is positive)."""
    if time.localtime().tm_isdst:
        return time.altzone // 3600
    return time.timezone // 3600


def adjust_timestamp(timestamp: float, offset: float) -> float:
    """A sender's ``timestamp`` moved into this host's time, given the sender's ``utcoffset``."""
    return timestamp - (offset - utcoffset()) * 3600


def event_message(
    events: dict[str, Any] | list[dict[str, Any]], *, hostname: str, serializer: str
) -> Message:
    """The message carrying one event, or a list of them, from ``hostname``."""
    body, content_type, encoding = dumps(events, serializer)
    return Message(
        body,
        headers={"hostname": hostname},
        properties={"delivery_mode": 1},
        content_type=content_type,
        content_encoding=encoding,
    )


def events_from_message(
    message: Message, accept: frozenset[str] | None = None
) -> Iterable[dict[str, Any]]:
    """The events a message carries (none when the body is not an event or a list of them).

    Raises:
        DecodeError, ContentDisallowed: the body cannot be read.
    """
    body = loads(message.body, message.content_type, message.content_encoding, accept=accept)
    items = body if isinstance(body, list) else [body]
    return [item for item in items if isinstance(item, dict) and "type" in item]
