"""Celery's task message protocol, version 2: built and parsed here and nowhere else.

A task message is (headers, properties, body). The headers carry everything a worker needs
to route, schedule, expire and log the task, so :func:`parse_task` reads only them; the body
``[args, kwargs, embed]`` is decoded by :meth:`TaskEnvelope.decode_body` when the task runs.
Protocol 1 messages (everything in the body) are still accepted, as Celery workers do.
Pure functions, no I/O.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celeriac import serialization
from celeriac.exceptions import DecodeError
from celeriac.message import Message
from celeriac.utils.saferepr import saferepr

__all__ = ["MessageTemplate", "TaskEnvelope", "build_task_message", "parse_task", "saferepr"]


_nodename: tuple[int, str] = (0, "")


def anon_nodename() -> str:
    """The ``origin`` of messages sent by a process that is not a worker: ``gen<pid>@<host>``."""
    global _nodename
    pid = os.getpid()
    if _nodename[0] != pid:  # computed once per process (a fork gets its own)
        _nodename = (pid, f"gen{pid}@{socket.gethostname()}")
    return _nodename[1]


def thread_oid() -> str:
    """A stable id for the calling process and thread (Celery's ``reply_to`` value)."""
    node = uuid.getnode()
    return str(uuid.uuid3(uuid.NAMESPACE_OID, f"{node}-{os.getpid()}-{threading.get_ident()}"))


#: The workflow of a plain call (no callbacks, errbacks, chain steps nor chord).
_NO_WORKFLOW = (None, None, None, None)


def _isoformat(value: dt.datetime | None) -> str | None:
    # Naive times go out naive, as Celery sends them (its workers read them in their
    # timezone setting); the app itself always passes aware UTC times.
    return value.isoformat() if value is not None else None


def build_task_message(
    *,
    name: str,
    task_id: str,
    args: Sequence[Any] | None = (),
    kwargs: Mapping[str, Any] | None = None,
    serializer: str = "json",
    compression: str | None = None,
    eta: dt.datetime | None = None,
    expires: dt.datetime | None = None,
    retries: int = 0,
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
    root_id: str | None = None,
    parent_id: str | None = None,
    group_id: str | None = None,
    group_index: int | None = None,
    origin: str | None = None,
    reply_to: str | None = None,
    ignore_result: bool = False,
    priority: int | None = None,
    shadow: str | None = None,
    callbacks: list[Any] | None = None,
    errbacks: list[Any] | None = None,
    chain: list[Any] | None = None,
    chord: Any = None,
    headers: Mapping[str, Any] | None = None,
    delivery_mode: int = 2,
    repr_maxsize: int = 1024,
    now: dt.datetime | None = None,
) -> Message:
    """Build a protocol-2 task message, laid out exactly as Celery 5 lays it out.

    Raises:
        TypeError: ``args`` is not a list/tuple or ``kwargs`` not a mapping.
        EncodeError: the arguments cannot be serialized (raised here, in the caller).
    """
    template = MessageTemplate(
        name=name,
        serializer=serializer,
        compression=compression,
        time_limit=time_limit,
        soft_time_limit=soft_time_limit,
        origin=origin,
        ignore_result=ignore_result,
        priority=priority,
        delivery_mode=delivery_mode,
        repr_maxsize=repr_maxsize,
    )
    return template.build(
        task_id,
        args,
        kwargs,
        eta=eta,
        expires=expires,
        retries=retries,
        root_id=root_id,
        parent_id=parent_id,
        group_id=group_id,
        group_index=group_index,
        reply_to=reply_to,
        shadow=shadow,
        callbacks=callbacks,
        errbacks=errbacks,
        chain=chain,
        chord=chord,
        headers=headers,
        now=now,
    )


class MessageTemplate:
    """What the messages of one task with one set of calling options share.

    Building a message is then only its own part (id, arguments, ids of its workflow): a
    bulk send of 10,000 tasks makes one template and 10,000 cheap builds.
    """

    __slots__ = ("_headers", "_properties", "compression", "repr_maxsize", "serializer")

    def __init__(
        self,
        *,
        name: str,
        serializer: str = "json",
        compression: str | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        origin: str | None = None,
        ignore_result: bool = False,
        priority: int | None = None,
        delivery_mode: int = 2,
        repr_maxsize: int = 1024,
    ) -> None:
        self.serializer = serializer
        self.compression = compression
        self.repr_maxsize = repr_maxsize
        # Header order is Celery's (monitoring tools print them as they come).
        self._headers: dict[str, Any] = {
            "lang": "py",
            "task": name,
            "id": None,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [time_limit, soft_time_limit],
            "root_id": None,
            "parent_id": None,
            "argsrepr": None,
            "kwargsrepr": None,
            "origin": origin or anon_nodename(),
            "ignore_result": ignore_result,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        }
        self._properties: dict[str, Any] = {"delivery_mode": delivery_mode}
        if priority is not None:
            self._properties["priority"] = priority

    def build(
        self,
        task_id: str,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        eta: dt.datetime | None = None,
        expires: dt.datetime | None = None,
        retries: int = 0,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_id: str | None = None,
        group_index: int | None = None,
        reply_to: str | None = None,
        shadow: str | None = None,
        callbacks: list[Any] | None = None,
        errbacks: list[Any] | None = None,
        chain: list[Any] | None = None,
        chord: Any = None,
        headers: Mapping[str, Any] | None = None,
        now: dt.datetime | None = None,
    ) -> Message:
        """One message of this template (see :func:`build_task_message` for the errors)."""
        args = args or ()  # Celery takes any empty args as (): argsrepr '()'
        if not isinstance(args, (list, tuple)):
            raise TypeError(f"task args must be a list or tuple, not {type(args).__name__}")
        kwargs = {} if kwargs is None else kwargs
        if type(kwargs) is not dict and not isinstance(kwargs, Mapping):
            raise TypeError(
                f"task keyword arguments must be a mapping, not {type(kwargs).__name__}"
            )
        workflow = (callbacks, errbacks, chain, chord)
        if args or kwargs or workflow != _NO_WORKFLOW:
            embed = {"callbacks": callbacks, "errbacks": errbacks, "chain": chain, "chord": chord}
            body, content_type, content_encoding = serialization.dumps(
                [list(args), dict(kwargs), embed], self.serializer
            )
        else:
            body, content_type, content_encoding = serialization.dumps_empty_call(self.serializer)
        message_headers = self._headers.copy()
        message_headers["id"] = task_id
        message_headers["shadow"] = shadow
        message_headers["eta"] = _isoformat(eta)
        message_headers["expires"] = _isoformat(expires)
        message_headers["group"] = group_id
        message_headers["group_index"] = group_index
        message_headers["retries"] = retries
        message_headers["timelimit"] = list(message_headers["timelimit"])
        message_headers["root_id"] = root_id or task_id
        message_headers["parent_id"] = parent_id
        # The reprs of no arguments are known ('()' for any empty args, as above).
        message_headers["argsrepr"] = saferepr(args, self.repr_maxsize) if args else "()"
        message_headers["kwargsrepr"] = (
            saferepr(kwargs, self.repr_maxsize) if kwargs or type(kwargs) is not dict else "{}"
        )
        message_headers["stamps"] = {}
        if headers:
            message_headers.update(headers)
        if self.compression:
            body, message_headers["compression"] = serialization.compress(body, self.compression)
        properties: dict[str, Any] = {
            "correlation_id": task_id,
            "reply_to": reply_to if reply_to is not None else "",
            **self._properties,
        }
        if expires is not None:
            current = now or dt.datetime.now(dt.timezone.utc)
            aware = expires if expires.tzinfo else expires.replace(tzinfo=dt.timezone.utc)
            seconds = (aware - current).total_seconds()
            properties["expiration"] = str(int(max(seconds, 0.0) * 1000))
        return Message(body, message_headers, properties, content_type, content_encoding)


def parse_datetime(value: Any) -> dt.datetime | None:
    """An ISO-8601 header value as an aware datetime (naive values are taken as UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = str(value)
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


@dataclass(slots=True)
class TaskEnvelope:
    """A task message parsed from its headers; the body waits for :meth:`decode_body`."""

    message: Message
    name: str
    id: str
    retries: int
    eta: dt.datetime | None
    expires: dt.datetime | None
    root_id: str | None
    parent_id: str | None
    group: str | None
    group_index: int | None
    time_limit: float | None
    soft_time_limit: float | None
    shadow: str | None
    origin: str | None
    ignore_result: bool
    argsrepr: str
    kwargsrepr: str
    #: For protocol-1 messages the already decoded body (args, kwargs, embed).
    _v1_body: tuple[list[Any], dict[str, Any], dict[str, Any]] | None = None

    @property
    def headers(self) -> dict[str, Any]:
        return self.message.headers

    @property
    def properties(self) -> dict[str, Any]:
        return self.message.properties

    def decode_body(
        self, accept: frozenset[str] | None
    ) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
        """Decode ``[args, kwargs, embed]``, refusing content types outside ``accept``.

        Raises:
            ContentDisallowed: the content type is not accepted.
            DecodeError: the body is malformed.
        """
        if self._v1_body is not None:
            return self._v1_body
        payload = _payload(self.message)
        decoded = serialization.loads(
            payload, self.message.content_type, self.message.content_encoding, accept=accept
        )
        if not isinstance(decoded, (list, tuple)) or len(decoded) != 3:
            raise DecodeError(
                f"Task body must be [args, kwargs, embed], got {type(decoded).__name__}"
            )
        args, kwargs, embed = decoded
        if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
            raise DecodeError("Task body args must be a list and kwargs a mapping")
        return list(args), kwargs, embed if isinstance(embed, dict) else {}


def _payload(message: Message) -> bytes:
    compression = message.headers.get("compression")
    if compression:
        return serialization.decompress(message.body, str(compression))
    return message.body


def _timelimit(value: Any) -> tuple[float | None, float | None]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return value[0], value[1]
    return None, None


def parse_task(message: Message, *, accept: frozenset[str] | None = None) -> TaskEnvelope:
    """Parse a task message's headers (protocol 2) or body (protocol 1).

    ``accept`` is only used for protocol-1 messages, whose name lives in the body.

    Raises:
        DecodeError: the message is not a task message.
        ContentDisallowed: a protocol-1 body in a refused content type.
    """
    headers = message.headers
    if not isinstance(headers, dict):
        raise DecodeError(f"Message headers must be a mapping, got {type(headers).__name__}")
    if "task" in headers:
        return _from_headers(message, headers, None)
    return _parse_v1(message, accept)


def _from_headers(
    message: Message,
    fields: Mapping[str, Any],
    v1_body: tuple[list[Any], dict[str, Any], dict[str, Any]] | None,
) -> TaskEnvelope:
    task_id = fields.get("id") or message.properties.get("correlation_id")
    name = fields.get("task")
    if not name or not task_id:
        raise DecodeError("Task message is missing its 'task' name or 'id'")
    try:
        eta = parse_datetime(fields.get("eta"))
        expires = parse_datetime(fields.get("expires"))
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"Task message has an invalid eta/expires: {exc}") from exc
    hard, soft = _timelimit(fields.get("timelimit"))
    return TaskEnvelope(
        message=message,
        name=str(name),
        id=str(task_id),
        retries=int(fields.get("retries") or 0),
        eta=eta,
        expires=expires,
        root_id=fields.get("root_id"),
        parent_id=fields.get("parent_id"),
        group=fields.get("group") or fields.get("taskset"),
        group_index=fields.get("group_index"),
        time_limit=hard,
        soft_time_limit=soft,
        shadow=fields.get("shadow"),
        origin=fields.get("origin"),
        ignore_result=bool(fields.get("ignore_result", False)),
        argsrepr=fields.get("argsrepr") or "",
        kwargsrepr=fields.get("kwargsrepr") or "",
        _v1_body=v1_body,
    )


def _parse_v1(message: Message, accept: frozenset[str] | None) -> TaskEnvelope:
    body = serialization.loads(
        _payload(message), message.content_type, message.content_encoding, accept=accept
    )
    if not isinstance(body, dict) or "task" not in body:
        raise DecodeError("Message is neither a protocol-2 task (no 'task' header) nor protocol 1")
    args = list(body.get("args") or [])
    kwargs = dict(body.get("kwargs") or {})
    embed = {
        "callbacks": body.get("callbacks"),
        "errbacks": body.get("errbacks"),
        "chain": None,
        "chord": body.get("chord"),
    }
    fields = dict(body)
    fields.setdefault("argsrepr", saferepr(args))
    fields.setdefault("kwargsrepr", saferepr(kwargs))
    return _from_headers(message, fields, (args, kwargs, embed))
