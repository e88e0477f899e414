"""The transport-neutral message: what every broker stores and hands back.

A task message is Celery's protocol-v2 triple (headers, properties, body) plus the body's
content type and encoding. Brokers move it; only :mod:`celeriac.protocol` gives it meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Message"]


@dataclass(slots=True)
class Message:
    """One message as it travels.

    Attributes:
        body: the serialized (and possibly compressed) payload.
        headers: Celery's task headers (``task``, ``id``, ``eta``, ...); JSON-compatible.
        properties: AMQP-style properties (``correlation_id``, ``reply_to``,
            ``delivery_mode``, ``priority``, ``expiration``, ...).
        content_type: MIME type of ``body`` (``application/json``, ...).
        content_encoding: text encoding of ``body`` (``utf-8``) or ``binary``.
    """

    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    content_type: str = "application/json"
    content_encoding: str = "utf-8"

    @property
    def priority(self) -> int:
        """The message priority, 0 when unset (clamped to 0..255)."""
        value = self.properties.get("priority")
        if not isinstance(value, int):
            return 0
        return min(max(value, 0), 255)

    @property
    def id(self) -> str | None:
        """The task id, when the message is a task (protocol 2 header or correlation id)."""
        value = self.headers.get("id") or self.properties.get("correlation_id")
        return str(value) if value is not None else None
