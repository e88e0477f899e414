"""The Redis broker, in Celery's (kombu's) layout: Celery clients and workers share it.

URLs: ``redis://[user:pass@]host:port/db``, ``rediss://...`` (TLS), ``redis+socket:///path
/to/socket?virtual_host=db`` and ``sentinel://host:port;sentinel://host2:port`` (with the
``master_name`` transport option). Needs Redis 6.2 or later and redis-py
(``pip install celeriac[redis]``).

Keys (``P`` is the ``global_keyprefix`` option, empty by default; ``sep`` is ``\\x06\\x16``)

=====================================  ===========================================================
key                                    what it holds
=====================================  ===========================================================
``P<queue>``                           list: ready messages of priority step 0 (kombu's key)
``P<queue><sep><step>``                list: ready messages of step 3, 6, 9 (kombu's keys)
``P_kombu.binding.<queue>``            set: ``<queue><sep><sep><queue>``, the binding kombu's
``P_kombu.binding_permanent.<queue>``  ``queue_bind`` writes, so Celery tools see the queue
``Punacked``                           hash: tag -> ``[envelope, exchange, routing_key]`` (kombu)
``Punacked_index``                     zset: tag -> time of delivery or last renewal (kombu)
``P_celeriac.leases``                  zset: tag -> lease expiry, for celeriac holders only
``P_celeriac.delayed.<queue>``         zset: ``<step>|<envelope>`` -> due time (UNIX seconds)
``P_celeriac.dead_letters``            stream: queue, reason, time, message (the envelope)
``P_kombu.binding.<exchange>``         set: ``<routing key><sep><sep><queue>`` for remote control's
                                       node queues (fanout) and reply queues (direct), as kombu
``P<reply queue>``                     list: replies routed to a direct reply queue (kombu's key)
=====================================  ===========================================================

Broadcasts (remote control) use pub/sub as kombu's fanout exchanges do: ``PUBLISH`` to
``P/<db>.<exchange>`` (``/<routing key>`` appended when one is given), subscribers
``PSUBSCRIBE`` the same channel; nothing is stored, a subscriber that is away misses it.

A list element is kombu's JSON envelope: ``body`` (base64), ``content-encoding``,
``content-type``, ``headers`` (Celery's) and ``properties`` (``correlation_id``,
``reply_to``, ``delivery_mode``, ``delivery_info {exchange: "", routing_key: queue}``,
``priority``, ``body_encoding: "base64"``, ``delivery_tag``: a fresh uuid4). Publishing is
``LPUSH``; consumers take from the right (FIFO) and the higher priority first.

Priorities: as in Celery, 0 is taken first. A priority p (clamped to 0..9) goes to the list
of the largest step not above p, as kombu files it: with the default steps ``[0, 3, 6, 9]``,
0-2 share step 0, 3-5 step 3, 6-8 step 6 and 9 step 9 (a Celery worker reads those lists,
and within a step takes publication order). celeriac's claim honours every level exactly
inside a step list: when the oldest message of the list is above the step's lowest priority,
it takes the best of the :data:`PRIORITY_WINDOW` oldest (lowest number, then oldest) and
leaves the others in their order; when the oldest is already at the step's lowest priority
(everything at 0, the usual case), it takes it as it is, reading only its priority. A better
message deeper than the window waits until the ones ahead of it are taken, so at worst a
claim takes the best of the window; nothing is skipped or taken twice. The priority is read
from the envelope's ``properties`` text (kombu's ``"priority": N`` or celeriac's
``"priority":N``); one that cannot be read ranks with the step's lowest, as kombu files it
under 0. ``priority_steps`` changes the steps (``list(range(10))`` makes every list hold one
level, and then no envelope is read); Celery workers sharing the queues must use the same
steps.

Claiming (``redis_lua/claim.lua``) is one Lua script: it moves due delayed messages to their
lists, takes up to ``limit`` messages in priority order (``redis_lua/priority.lua``: the step
lists in order, each one's messages by exact priority) and records each as held in
``unacked``/``unacked_index`` (kombu's records) and ``_celeriac.leases``. Pop and record are
one atomic step, so no crash or lost reply can drop a message between the two (a kombu
``BRPOP`` followed by a separate record can). While nothing is ready a consumer does not
poll and holds no blocking command: it asks Redis to notify it of writes to its queues' keys
(``CLIENT TRACKING ... BCAST NOLOOP`` redirected to a subscriber connection, armed only while
idle) and runs the script again when notified, when a delayed message falls due, when a
lease lapses, or when the claim timeout ends. A server without client tracking (Redis < 6,
some proxies) gets a short poll instead (:data:`FALLBACK_POLL`).

Leases: a celeriac holder's message is leased for ``visibility_timeout`` seconds (default
:data:`DEFAULT_LEASE_SECONDS`, renewed by the worker every third of it). :meth:`renew` moves
the lease expiry and also the message's ``unacked_index`` score to now, so Celery workers,
which restore entries older than *their* visibility timeout, never take a message a live
celeriac worker holds. Any claiming consumer, about once a second, runs
``redis_lua/restore.lua``: messages whose lease lapsed, and held-by-Celery messages
delivered more than the Celery visibility timeout ago (the ``visibility_timeout`` option if
given, else Celery's 3600 s), go back to the head of their list (``RPUSH``, as kombu
restores), marked ``delivery_info.redelivered``. A Celery worker's own restore recovers a
dead celeriac worker's messages the same way it recovers a dead Celery worker's.

Delayed messages (``publish(..., eta=)``) wait in ``_celeriac.delayed.<queue>``; the claim
script of any consumer of that queue moves due ones to the tail of their list, a bounded
batch per call. They hold no worker memory and are never redelivered early, however far
the eta. A Celery worker does not read that key: when a queue may be served by Celery
workers only, set ``eta_layout='celery'`` in the *client's* transport options: ETA messages
then go straight to the list with their ``eta`` header, as Celery sends them, and the Celery
worker holds them until due. A celeriac worker that claims such a message moves it to the
delayed key (the worker republishes it; the broker sends a republished held message to the
delayed key whatever ``eta_layout`` says), so it does not spin on it.

Transport options (``options=``; unknown names raise
:class:`~celeriac.exceptions.ImproperlyConfigured` naming the closest known one):

==========================  ==================================================================
``visibility_timeout``      lease length, seconds (default 60); also the age after which a
                            message held by a Celery worker is restored (default 3600)
``global_keyprefix``        prefix of every key, as kombu's option
``priority_steps``          ascending list of steps within 0..9 (default ``[0, 3, 6, 9]``)
``queue_order_strategy``    ``round_robin`` (default), ``sorted`` or ``priority`` (as given)
``sep``                     priority-step separator (default ``"\\x06\\x16"``)
``eta_layout``              ``celeriac`` (default) or ``celery``, see above
``max_connections``         pool size; when set, callers wait for a free connection
``socket_timeout``          read/write timeout, seconds (default 30)
``socket_connect_timeout``  connect timeout, seconds (default 5)
``socket_keepalive``,       TCP keep-alive and its options (TCP connections only)
``socket_keepalive_options``
``health_check_interval``   PING a connection idle longer than this, seconds (default 25)
``retry_on_timeout``        also retry a command after a timeout (connection errors always
                            retry twice)
``client_name``             CLIENT SETNAME of every connection
``master_name``             Sentinel: the master's service name (required for sentinel://)
``sentinel_kwargs``         Sentinel: options of the connections to the sentinels
``unacked_key``,            names of kombu's held-message keys (defaults ``unacked``,
``unacked_index_key``       ``unacked_index``); must match the Celery workers'
``unacked_restore_limit``   most entries restored per sweep (default 100)
``broker_use_ssl``          the ``broker_use_ssl`` setting: True or a dict of redis-py
                            ``ssl_*`` options (``ssl_cert_reqs`` may be ``CERT_REQUIRED``...);
                            turns TLS on for ``redis://`` too, as in Celery
==========================  ==================================================================

kombu options that mean nothing here are accepted and ignored, so a Celery configuration
loads unchanged: ``polling_interval``, ``fanout_prefix``, ``fanout_patterns``,
``unacked_mutex_key``, ``unacked_mutex_expire`` (the restore is one script, it needs no
lock), ``unacked_restore_interval``, ``unacked_restore_throttle``, ``body_encoding``,
``deadletter_queue``, ``min_other_sentinels``, ``sentinel_fanout_compat``, ``max_retries``,
``interval_start``, ``interval_step``, ``interval_max``; ``ack_emulation`` must stay True.

A message given back goes to the queue named by its ``unacked`` entry: the routing key for
the default exchange (Celery's usual case), else the exact routing-key matches in kombu's
``_kombu.binding.<exchange>`` set (topic patterns are not evaluated: the routing key's queue
is used). The scripts write to list keys they derive from queue names, so, like kombu, this
broker does not run on Redis Cluster.

Connections: a pool for batch writes (``max_connections`` bounds it), plus one connection
of its own for each thread that publishes (a single publish skips the pool's checkout) and
two for each thread that claims (the claim connection and its subscriber). A forked child
opens its own rather than share its parent's sockets.

Redis errors raise :class:`~celeriac.exceptions.OperationalError` (``from`` the redis-py
error); the next call reconnects, and a connection found stale (after a server restart) is
replaced once inside the call.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import difflib
import hashlib
import json
import os
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis
import redis.sentinel

try:  # optional: the standard library's json does the same, slower
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is part of the redis extra
    _orjson = None  # type: ignore[assignment]
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from celeriac.brokers.base import (
    Broker,
    DeadLetter,
    Delivery,
    ExchangeType,
    Outgoing,
    Subscription,
    mask_url,
)
from celeriac.exceptions import EncodeError, ImproperlyConfigured, OperationalError
from celeriac.message import Message
from celeriac.serialization import json_dumps, json_loads
from celeriac.utils.ids import new_id
from celeriac.utils.redis_direct import DirectConnections

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "FALLBACK_POLL",
    "PRIORITY_WINDOW",
    "EtaLayout",
    "QueueOrder",
    "RedisBroker",
    "RedisOptions",
    "parse_envelope",
]

#: How a consumer orders its queues within one priority step.
QueueOrder = Literal["round_robin", "sorted", "priority"]
#: Where ETA messages wait: celeriac's delayed key, or the list as Celery sends them.
EtaLayout = Literal["celeriac", "celery"]

#: Lease length when ``visibility_timeout`` is not given (the worker renews every 20 s).
DEFAULT_LEASE_SECONDS = 60.0
#: Celery's visibility timeout on Redis: how old a Celery worker's held message must be
#: before celeriac gives it back, when ``visibility_timeout`` is not given.
CELERY_VISIBILITY_TIMEOUT = 3600.0
#: How often one broker instance looks for lapsed leases while claiming (seconds).
RESTORE_INTERVAL = 1.0
#: How long a direct (reply) list lives after its last message when nobody deletes it (s).
DIRECT_KEEP = 300.0
#: How long fanout_subscribe waits for Redis to confirm the subscription (seconds).
SUBSCRIBE_TIMEOUT = 5.0
#: Most due delayed messages one claim moves, per queue.
MOVE_BATCH = 200
#: Most messages one claim script takes (bounds the script's run time and its arguments).
CLAIM_BATCH = 1000
#: How deep a claim looks into a priority-step list for a better priority than the oldest
#: message's: each message taken is the best of the next ``PRIORITY_WINDOW`` (see the module
#: docstring). It bounds what one claim reads (``limit + PRIORITY_WINDOW - 1`` messages per
#: list at most) while Redis runs nothing else, yet reaches far beyond what a worker
#: prefetches, so a waiting better message is rarely out of reach.
PRIORITY_WINDOW = 64
#: Most tags per settle script call.
SETTLE_CHUNK = 1000
#: Pause between claims while idle when the server cannot notify (no client tracking).
FALLBACK_POLL = 0.02
#: The oldest Redis this broker runs on (RPOP with a count, CLIENT TRACKING BCAST).
MIN_REDIS_VERSION = (6, 2)

_LEASES = "_celeriac.leases"
_DELAYED = "_celeriac.delayed."
_DEAD_LETTERS = "_celeriac.dead_letters"
_INVALIDATE = "__redis__:invalidate"
_STREAM_ID = re.compile(r"\d+-\d+")


# --- options ---------------------------------------------------------------------------------


def _positive(name: str, value: Any) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(f"{name} must be above 0")
    return number


def _optional_float(name: str, value: Any) -> float | None:
    return None if value is None else _positive(name, value)


def _steps(name: str, value: Any) -> tuple[int, ...]:
    steps = tuple(int(step) for step in value)
    if not steps or list(steps) != sorted(set(steps)) or not 0 <= steps[0] <= steps[-1] <= 9:
        raise ValueError(f"{name} must be a non-empty ascending list of distinct steps in 0..9")
    return steps


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}")
        return str(value)

    return check


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _optional_text(name: str, value: Any) -> str | None:
    return None if value is None else _text(name, value)


def _sep(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value or "|" in value:
        raise ValueError(f"{name} must be a non-empty string without '|'")
    return value


def _mapping(name: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping")
    return dict(value)


def _flag(name: str, value: Any) -> bool:
    return bool(value)


def _optional_flag(name: str, value: Any) -> bool | None:
    return None if value is None else bool(value)


def _count(name: str, value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"{name} must be at least 1")
    return number


def _optional_count(name: str, value: Any) -> int | None:
    return None if value is None else _count(name, value)


def _seconds_or_zero(name: str, value: Any) -> float:
    number = float(value or 0)
    if number < 0:
        raise ValueError(f"{name} must not be negative")
    return number


def _ack_emulation(name: str, value: Any) -> bool:
    if not value:
        raise ValueError(
            "ack_emulation=False is not supported: celeriac always records held messages"
        )
    return True


def _as_is(name: str, value: Any) -> Any:
    return value


# Option name -> checker returning the value to keep. Ignored kombu options map to None.
_OPTIONS: dict[str, Callable[[str, Any], Any] | None] = {
    "visibility_timeout": _optional_float,
    "global_keyprefix": _text,
    "priority_steps": _steps,
    "queue_order_strategy": _choice("round_robin", "sorted", "priority"),
    "sep": _sep,
    "eta_layout": _choice("celeriac", "celery"),
    "max_connections": _optional_count,
    "socket_timeout": _optional_float,
    "socket_connect_timeout": _optional_float,
    "socket_keepalive": _optional_flag,
    "socket_keepalive_options": _mapping,
    "health_check_interval": _seconds_or_zero,
    "retry_on_timeout": _flag,
    "client_name": _optional_text,
    "master_name": _optional_text,
    "sentinel_kwargs": _mapping,
    "unacked_key": _text,
    "unacked_index_key": _text,
    "unacked_restore_limit": _count,
    "broker_use_ssl": _as_is,
    "ack_emulation": _ack_emulation,
    # kombu options with no meaning here (see the module docstring).
    "polling_interval": None,
    "fanout_prefix": None,
    "fanout_patterns": None,
    "unacked_mutex_key": None,
    "unacked_mutex_expire": None,
    "unacked_restore_interval": None,
    "unacked_restore_throttle": None,
    "body_encoding": None,
    "deadletter_queue": None,
    "min_other_sentinels": None,
    "sentinel_fanout_compat": None,
    "max_retries": None,
    "interval_start": None,
    "interval_step": None,
    "interval_max": None,
}


@dataclass(frozen=True)
class RedisOptions:
    """The transport options this broker uses, checked (see the module docstring)."""

    visibility_timeout: float | None = None
    global_keyprefix: str = ""
    priority_steps: tuple[int, ...] = (0, 3, 6, 9)
    queue_order_strategy: QueueOrder = "round_robin"
    sep: str = "\x06\x16"
    eta_layout: EtaLayout = "celeriac"
    max_connections: int | None = None
    socket_timeout: float | None = 30.0
    socket_connect_timeout: float | None = 5.0
    socket_keepalive: bool | None = None
    socket_keepalive_options: dict[str, Any] | None = None
    health_check_interval: float = 25.0
    retry_on_timeout: bool = False
    client_name: str | None = None
    master_name: str | None = None
    sentinel_kwargs: dict[str, Any] | None = None
    unacked_key: str = "unacked"
    unacked_index_key: str = "unacked_index"
    unacked_restore_limit: int = 100
    broker_use_ssl: Any = None
    ack_emulation: bool = True

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> RedisOptions:
        """Check every name and value.

        Raises:
            ImproperlyConfigured: an unknown name (the message names the closest one) or a
                value of the wrong kind.
        """
        values: dict[str, Any] = {}
        for name, value in options.items():
            if name not in _OPTIONS:
                raise ImproperlyConfigured(_unknown_option(name))
            check = _OPTIONS[name]
            if check is None:
                continue
            try:
                values[name] = check(name, value)
            except (TypeError, ValueError) as exc:
                raise ImproperlyConfigured(
                    f"Redis broker transport option {name}={value!r} is invalid: {exc}"
                ) from exc
        return cls(**values)


def _unknown_option(name: str) -> str:
    close = difflib.get_close_matches(str(name), list(_OPTIONS), n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown Redis broker transport option {name!r}.{hint}"


# --- key names -------------------------------------------------------------------------------


class _KeySpace:
    """Every key name this broker uses, with the global prefix applied."""

    def __init__(self, options: RedisOptions) -> None:
        prefix = options.global_keyprefix
        self.prefix = prefix
        self.sep = options.sep
        self.steps = options.priority_steps
        self.steps_csv = ",".join(str(step) for step in self.steps)
        self.unacked = prefix + options.unacked_key
        self.unacked_index = prefix + options.unacked_index_key
        self.leases = prefix + _LEASES
        self.dead_letters = prefix + _DEAD_LETTERS

    def step_for(self, priority: int) -> int:
        """kombu's rule: the largest step not above ``priority`` (clamped to 0..9)."""
        clamped = min(max(priority, 0), 9)
        return self.steps[bisect.bisect(self.steps, clamped) - 1]

    def step_range(self, step: int) -> tuple[int, int]:
        """The lowest and highest priority ``step``'s lists hold (kombu's wrap included:
        with a first step above 0, the priorities below it go to the last step)."""
        at = self.steps.index(step)
        if at + 1 < len(self.steps):
            return step, self.steps[at + 1] - 1
        return (0 if self.steps[0] > 0 else step), 9

    def list_key(self, queue: str, step: int) -> str:
        return f"{self.prefix}{queue}{self.sep}{step}" if step else self.prefix + queue

    def lists(self, queue: str) -> list[str]:
        return [self.list_key(queue, step) for step in self.steps]

    def delayed(self, queue: str) -> str:
        return self.prefix + _DELAYED + queue

    def bind(self, pipe: redis.client.Pipeline, queue: str) -> None:
        """Add what kombu's ``queue_bind`` writes for a queue on its own direct exchange."""
        member = f"{queue}{self.sep}{self.sep}{queue}"
        pipe.sadd(f"{self.prefix}_kombu.binding.{queue}", member)
        pipe.sadd(f"{self.prefix}_kombu.binding_permanent.{queue}", member)


# --- the envelope ----------------------------------------------------------------------------


def _kombu_special(obj: Any) -> Any:
    """Types plain JSON lacks, as kombu's ``{"__type__", "__value__"}`` objects."""
    return json.loads(json_dumps(obj))


# The standard library's encoder: the fallback when orjson is missing or refuses a value
# (an integer beyond 64 bits, say).
_ENCODER = json.JSONEncoder(default=_kombu_special)


def encode_envelope(envelope: dict[str, Any]) -> str:
    """An envelope as JSON text. orjson does it ten times faster than the standard library
    (8 µs -> 0.8 µs here, a fifth of a bulk publish); kombu reads either (it parses JSON,
    it does not compare bytes).

    The decode to ``str`` stays even where bytes would do: orjson's bytes keep a larger
    buffer, and holding the 10,000 of a bulk publish costs 5 µs each against 0.4 µs for
    the copy.
    """
    if _orjson is not None:
        try:
            encoded: bytes = _orjson.dumps(
                envelope, default=_kombu_special, option=_orjson.OPT_PASSTHROUGH_DATETIME
            )
            return encoded.decode("utf-8")
        except TypeError:  # orjson.JSONEncodeError derives from TypeError
            pass
    return _ENCODER.encode(envelope)


def decode_envelope(raw: bytes | str) -> Any:
    """An envelope from JSON; kombu's special types (``"__type__"``) take the slow path."""
    marker: Any = b'"__type__"' if isinstance(raw, bytes) else '"__type__"'
    if _orjson is not None and marker not in raw:
        return _orjson.loads(raw)
    return json_loads(raw)


def _new_delivery_tag() -> str:
    """A random uuid4 string, as kombu's tags are."""
    return new_id()


def _unreadable(raw: bytes) -> Message:
    """A list element that is not an envelope: the consumer refuses it (dead letter)."""
    return Message(raw, {}, {}, "application/octet-stream", "binary")


def parse_envelope(raw: bytes) -> tuple[Message, bool]:
    """A kombu envelope -> (the message as published, whether it is a redelivery)."""
    try:
        envelope = decode_envelope(raw)
        properties = envelope["properties"]
        info = properties.pop("delivery_info", None) or {}
        properties.pop("delivery_tag", None)
        body_encoding = properties.pop("body_encoding", None)
        if properties.get("priority") == 0:
            del properties["priority"]  # kombu writes 0 when no priority was given
        body = envelope.get("body") or ""
        content_encoding = envelope.get("content-encoding") or "utf-8"
        if body_encoding == "base64":
            payload = base64.b64decode(body)
        else:
            payload = body.encode(content_encoding if content_encoding != "binary" else "utf-8")
        message = Message(
            payload,
            envelope.get("headers") or {},
            properties,
            envelope.get("content-type") or "application/data",
            content_encoding,
        )
        return message, bool(info.get("redelivered"))
    except (ValueError, TypeError, KeyError, AttributeError, LookupError, binascii.Error):
        return _unreadable(raw), False


# --- scripts ---------------------------------------------------------------------------------

_WITH_LIB = ("claim", "restore", "renew", "requeue", "dead_letter", "requeue_dead")
#: Helper files prepended to a script after ``lib.lua``.
_PARTS = {"claim": ("priority",)}


def _read_lua(name: str) -> str:
    return (resources.files("celeriac.brokers") / "redis_lua" / f"{name}.lua").read_text("utf-8")


def _load_scripts() -> dict[str, str]:
    lib = _read_lua("lib")
    names = ("claim", "restore", "ack", "renew", "requeue", "dead_letter", "requeue_dead")
    return {
        name: "\n".join(
            [*([lib] if name in _WITH_LIB else []), *map(_read_lua, _PARTS.get(name, ())), ""]
        )
        + _read_lua(name)
        for name in names
    }


_SCRIPTS = _load_scripts()
_SHAS = {name: hashlib.sha1(text.encode("utf-8")).hexdigest() for name, text in _SCRIPTS.items()}


# --- connections -----------------------------------------------------------------------------

_SSL_KEYS = (
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_ca_data",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_password",
    "ssl_check_hostname",
    "ssl_min_version",
    "ssl_ciphers",
)
_CERT_REQS = {
    "CERT_NONE": "none",
    "CERT_OPTIONAL": "optional",
    "CERT_REQUIRED": "required",
    ssl.CERT_NONE: "none",
    ssl.CERT_OPTIONAL: "optional",
    ssl.CERT_REQUIRED: "required",
}


def _ssl_kwargs(use_ssl: Any) -> dict[str, Any] | None:
    """``broker_use_ssl`` -> redis-py SSL keyword arguments (None: TLS not asked for)."""
    if not use_ssl:
        return None
    if use_ssl is True:
        return {}
    if not isinstance(use_ssl, Mapping):
        raise ImproperlyConfigured("broker_use_ssl must be True or a dict of ssl_* options")
    kwargs = {}
    for name, value in use_ssl.items():
        if name not in _SSL_KEYS:
            close = difflib.get_close_matches(str(name), _SSL_KEYS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ImproperlyConfigured(f"Unknown broker_use_ssl option {name!r}.{hint}")
        kwargs[name] = _CERT_REQS.get(value, value) if name == "ssl_cert_reqs" else value
    return kwargs


def _connection_kwargs(options: RedisOptions, *, tcp: bool) -> dict[str, Any]:
    errors: list[type[Exception]] = [redis.exceptions.ConnectionError]
    if options.retry_on_timeout:
        errors.append(redis.exceptions.TimeoutError)
    kwargs: dict[str, Any] = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.socket_connect_timeout,
        "health_check_interval": options.health_check_interval,
        "client_name": options.client_name,
        # A stale pooled connection (after a server restart) fails once and is replaced.
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), 2),
        "retry_on_error": errors,
        # RESP2, as kombu speaks: replies and pub/sub messages read the same on every version.
        "protocol": 2,
    }
    if tcp:
        kwargs["socket_keepalive"] = options.socket_keepalive
        kwargs["socket_keepalive_options"] = options.socket_keepalive_options
    return kwargs


def _pool_class(options: RedisOptions) -> type[redis.ConnectionPool]:
    # With a limit, callers wait for a free connection instead of failing.
    return redis.BlockingConnectionPool if options.max_connections else redis.ConnectionPool


def _pool_limits(options: RedisOptions) -> dict[str, Any]:
    if not options.max_connections:
        return {}
    return {"max_connections": options.max_connections, "timeout": options.socket_timeout}


def make_pool(url: str, options: RedisOptions) -> redis.ConnectionPool:
    """The connection pool a broker URL names.

    Raises:
        ImproperlyConfigured: the URL or a connection option is invalid.
    """
    scheme = url.partition("://")[0].lower()
    try:
        if scheme in ("redis", "rediss"):
            return _tcp_pool(url, options)
        if scheme == "redis+socket":
            return _socket_pool(url, options)
        if scheme == "sentinel":
            return _sentinel_pool(url, options)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"Invalid Redis broker URL {mask_url(url)!r}: {exc}") from exc
    raise ImproperlyConfigured(f"Not a Redis broker URL: {mask_url(url)!r}")


def _tcp_pool(url: str, options: RedisOptions) -> redis.ConnectionPool:
    ssl_kwargs = _ssl_kwargs(options.broker_use_ssl)
    scheme, _, rest = url.partition("://")
    parts = urlsplit(url)
    if parts.port is not None and not 0 < parts.port < 65536:
        raise ValueError(f"port {parts.port} is out of range")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database must be a number, not {path!r}")
    query = dict(parse_qsl(parts.query))
    if "ssl_cert_reqs" in query:
        query["ssl_cert_reqs"] = _CERT_REQS.get(query["ssl_cert_reqs"], query["ssl_cert_reqs"])
    tls = scheme.lower() == "rediss" or ssl_kwargs is not None
    base = rest.split("?", 1)[0]
    normalized = f"{'rediss' if tls else 'redis'}://{base}"
    if query:
        normalized += "?" + urlencode(query)
    kwargs = {**_connection_kwargs(options, tcp=True), **_pool_limits(options)}
    if tls:
        kwargs.update(ssl_kwargs or {})
    return _pool_class(options).from_url(normalized, **kwargs)


def _socket_pool(url: str, options: RedisOptions) -> redis.ConnectionPool:
    parts = urlsplit(url)
    if not parts.path:
        raise ValueError("redis+socket:// needs the socket's path: redis+socket:///path/to/sock")
    query = dict(parse_qsl(parts.query))
    unknown = set(query) - {"virtual_host"}
    if unknown:
        raise ValueError(f"unknown URL parameter {sorted(unknown)[0]!r} (only virtual_host)")
    db = query.get("virtual_host", "0") or "0"
    if not db.isdigit():
        raise ValueError(f"virtual_host must be a database number, not {db!r}")
    return _pool_class(options)(
        connection_class=redis.UnixDomainSocketConnection,
        path=unquote(parts.path),
        db=int(db),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        **_connection_kwargs(options, tcp=False),
        **_pool_limits(options),
    )


def _sentinel_pool(url: str, options: RedisOptions) -> redis.ConnectionPool:
    if not options.master_name:
        raise ImproperlyConfigured(
            "A sentinel:// broker URL needs the master's name: "
            "broker_transport_options={'master_name': 'mymaster'}"
        )
    hosts: list[tuple[str, int]] = []
    auth: dict[str, Any] = {}
    db = 0
    for part in url.split(";"):
        parts = urlsplit(part.strip())
        if parts.scheme.lower() != "sentinel" or not parts.hostname:
            raise ValueError(f"{part.strip()!r} is not sentinel://host:port")
        hosts.append((parts.hostname, parts.port or 26379))
        if parts.password and "password" not in auth:
            auth = {"username": unquote(parts.username or "") or None}
            auth["password"] = unquote(parts.password)
        if parts.path.strip("/"):
            db = int(parts.path.strip("/"))
    kwargs = {**_connection_kwargs(options, tcp=True), **auth, "db": db}
    ssl_kwargs = _ssl_kwargs(options.broker_use_ssl)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        hosts, sentinel_kwargs=options.sentinel_kwargs, **_connection_kwargs(options, tcp=True)
    )
    if ssl_kwargs is not None:
        kwargs.update(ssl_kwargs, connection_class=redis.sentinel.SentinelManagedSSLConnection)
    if options.max_connections:
        kwargs["max_connections"] = options.max_connections
    pool = redis.sentinel.SentinelConnectionPool(  # type: ignore[no-untyped-call]
        options.master_name, sentinel, **kwargs
    )
    return pool


def _new_connection(pool: redis.ConnectionPool, **overrides: Any) -> Any:
    """A connection made like the pool's, owned by the caller (not counted by the pool).

    Call :func:`_send_packed` (or ``connect()`` first): the lazy connect inside redis-py's
    ``send_command`` skips the Sentinel master lookup that ``connect()`` does.
    """
    return pool.connection_class(**{**pool.connection_kwargs, **overrides})


def _send_packed(conn: Any, packed: Any) -> None:
    conn.connect()  # a no-op when connected; through Sentinel's lookup when not
    conn.send_packed_command(packed)


# --- claiming --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ClaimPlan:
    """The claim script's keys and fixed arguments for one ordered set of queues."""

    queues: tuple[str, ...]
    head: tuple[Any, ...]  # EVALSHA, its sha, the number of keys, the keys
    tail: tuple[Any, ...]  # ARGV after (limit, lease, token)
    prefixes: tuple[str, ...]  # what an idle consumer asks to be notified about


@dataclass
class _ClaimReply:
    now: float
    next_due: float | None
    next_lapse: float | None
    items: list[Any] = field(default_factory=list)  # flat: queue number, tag, envelope
    #: ``time.monotonic()`` when the reply was read (``now`` is the server's clock).
    read_at: float = field(default_factory=time.monotonic)


def _tracking_prefixes(keys: Iterator[str]) -> tuple[str, ...]:
    """Key prefixes to watch, without overlaps (Redis refuses overlapping BCAST prefixes)."""
    kept: list[str] = []
    for key in sorted(set(keys)):
        if not any(key.startswith(prefix) for prefix in kept):
            kept.append(key)
    return tuple(kept)


class _ClaimChannel:
    """One thread's claim connection and the subscriber connection that wakes it.

    While idle, the claim connection has client tracking on (``BCAST NOLOOP``, redirected to
    the subscriber), so any write to the watched keys by another client makes Redis push a
    message to the subscriber. Tracking is turned off when work arrives, so a busy consumer
    is not sent a message per publish.
    """

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self.conn = _new_connection(pool)
        self.sub: Any = None
        self.sub_id: int | None = None
        self.armed: tuple[str, ...] | None = None
        self.can_track = True
        #: The last claim left the queues empty: the next one starts armed.
        self.idle = False
        #: The reply of the last claim and the queues it covered.
        self.last = _ClaimReply(0.0, None, None)
        self.covered: frozenset[str] = frozenset()
        #: Replies of commands sent without waiting, read before the next ones.
        self.unread = 0

    def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send commands in one round trip; a command's error is returned as its reply."""
        conn = self.conn
        _send_packed(conn, conn.pack_commands(commands))
        while self.unread:
            self.unread -= 1
            try:
                conn.read_response()
            except redis.exceptions.ResponseError:
                pass
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except redis.exceptions.ResponseError as exc:
                replies.append(exc)
        return replies

    def arm_commands(self, prefixes: tuple[str, ...]) -> list[tuple[Any, ...]]:
        """Commands that turn tracking on for ``prefixes`` (none if it already is)."""
        if not self.can_track or self.armed == prefixes:
            return []
        self._subscribe()
        commands: list[tuple[Any, ...]] = []
        if self.armed is not None:
            commands.append(("CLIENT", "TRACKING", "OFF"))
        watch = [word for prefix in prefixes for word in ("PREFIX", prefix)]
        commands.append(
            ("CLIENT", "TRACKING", "ON", "REDIRECT", self.sub_id, "BCAST", "NOLOOP", *watch)
        )
        return commands

    def armed_by(
        self, commands: Sequence[Sequence[Any]], replies: Sequence[Any], prefixes: tuple[str, ...]
    ) -> None:
        """Record the tracking state after ``commands`` ran with ``replies``."""
        for command, reply in zip(commands, replies, strict=True):
            if command[:2] != ("CLIENT", "TRACKING"):
                continue
            if isinstance(reply, Exception):
                # No client tracking here (old server, proxy, ACL): poll instead.
                self.can_track = False
                self.armed = None
            else:
                self.armed = prefixes if command[2] == "ON" else None

    def disarm_now(self) -> None:
        """Tracking off at once, without waiting for the reply: work arrived, and a worker
        whose prefetch window is now full may not claim again for a long time."""
        if self.armed is None:
            return
        try:
            _send_packed(self.conn, self.conn.pack_command("CLIENT", "TRACKING", "OFF"))
        except redis.RedisError:
            self.reset()  # the claimed messages are returned all the same
            return
        self.unread += 1
        self.armed = None

    def _subscribe(self) -> None:
        if self.sub is not None:
            return
        sub = _new_connection(self._pool, health_check_interval=0)
        try:
            _send_packed(sub, sub.pack_commands([("CLIENT", "ID"), ("SUBSCRIBE", _INVALIDATE)]))
            self.sub_id = int(sub.read_response())
            sub.read_response()
        except BaseException:
            sub.disconnect()
            raise
        self.sub = sub

    def claimed(self, plan: _ClaimPlan, reply: _ClaimReply) -> None:
        self.last = reply
        self.covered = frozenset(plan.queues)

    def watching(self, plan: _ClaimPlan) -> bool:
        """Whether tracking stayed on for ``plan``'s queues since a claim found them empty:
        then nothing is ready that did not notify the subscriber."""
        return (
            self.armed == plan.prefixes
            and not self.last.items
            and self.covered == frozenset(plan.queues)
        )

    def drain(self) -> None:
        """Discard notifications about writes the next claim will see anyway."""
        if self.sub is not None:
            while self.sub.can_read(0):
                self.sub.read_response()

    def wait(self, seconds: float) -> bool:
        """Sleep until a watched key changes (True) or ``seconds`` pass (False)."""
        if self.armed is None or self.sub is None:
            time.sleep(min(seconds, FALLBACK_POLL))
            return False
        try:
            if self.sub.can_read(seconds):
                self.drain()
                return True
        except redis.exceptions.ConnectionError:
            self.reset()  # the next claim reconnects (and fails if the server is down)
        return False

    def reset(self) -> None:
        """Drop both connections after an error; the next claim starts afresh."""
        self.conn.disconnect()
        if self.sub is not None:
            self.sub.disconnect()
        self.sub = self.sub_id = None
        self.armed = None
        self.unread = 0
        self.covered = frozenset()

    close = reset


# --- the broker ------------------------------------------------------------------------------


class RedisBroker(Broker):
    """A broker on Redis in Celery's layout (see the module docstring).

    Args:
        url: ``redis://``, ``rediss://``, ``redis+socket://`` or ``sentinel://`` URL.
        options: transport options (``broker_transport_options``, plus ``broker_use_ssl``).

    Raises:
        ImproperlyConfigured: an unknown or invalid option, or an invalid URL.
    """

    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss", "redis+socket", "sentinel")

    def __init__(self, url: str, *, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        self.config = RedisOptions.parse(self.options)
        timeout = self.config.visibility_timeout
        self.lease_seconds = timeout or DEFAULT_LEASE_SECONDS
        self.foreign_visibility_timeout = timeout or CELERY_VISIBILITY_TIMEOUT
        self.keys = _KeySpace(self.config)
        self._pool = make_pool(url, self.config)
        self._client = redis.Redis(connection_pool=self._pool)
        self._scripts = {
            name: self._client.register_script(text) for name, text in _SCRIPTS.items()
        }
        self._declared: set[str] = set()
        self._plans: dict[tuple[str, ...], _ClaimPlan] = {}
        self._rotation = 0
        self._next_restore = 0.0
        self._local = threading.local()
        self._channels: list[_ClaimChannel] = []
        self._channels_lock = threading.Lock()
        self._direct = DirectConnections(self._pool)  # publishing and settling threads'
        # eta_layout='celery' only: messages this instance holds, by id(), so a worker that
        # republishes one with an eta sends it to the delayed key rather than the list.
        self._held: dict[int, Message] = {}
        self._track_held = self.config.eta_layout == "celery"

    def describe(self) -> str:
        """The URL with passwords masked (each sentinel of a sentinel:// URL)."""
        return ";".join(mask_url(part) for part in self.url.split(";"))

    def _error(self, what: str, exc: Exception) -> OperationalError:
        return OperationalError(f"Redis broker {self.describe()}: cannot {what}: {exc}")

    # --- administration ----------------------------------------------------------------------

    def connect(self) -> None:
        """PING the server and check its version (Redis 6.2 or later).

        Raises:
            OperationalError: the server cannot be reached or is too old.
        """
        try:
            self._client.ping()
            version = str(self._client.info("server").get("redis_version", "0"))
        except redis.RedisError as exc:
            raise self._error("connect", exc) from exc
        numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
        if numbers < MIN_REDIS_VERSION:
            raise OperationalError(
                f"Redis broker {self.describe()}: Redis {version} is too old, celeriac needs "
                f"{'.'.join(map(str, MIN_REDIS_VERSION))} or later"
            )

    def close(self) -> None:
        """Close every connection this instance opened."""
        with self._channels_lock:
            channels, self._channels = self._channels, []
        for channel in channels:
            channel.close()
        self._direct.close()
        self._pool.disconnect()

    def purge(self, queue: str) -> int:
        """Delete the ready and delayed messages of ``queue`` in one transaction."""
        keys = [*self.keys.lists(queue), self.keys.delayed(queue)]
        try:
            with self._client.pipeline(transaction=True) as pipe:
                for key in keys[:-1]:
                    pipe.llen(key)
                pipe.zcard(keys[-1])
                pipe.delete(*keys)
                counts = pipe.execute()
        except redis.RedisError as exc:
            raise self._error("purge a queue", exc) from exc
        return sum(counts[:-1])

    def size(self, queue: str) -> int:
        """Ready plus delayed messages of ``queue``."""
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key in self.keys.lists(queue):
                    pipe.llen(key)
                pipe.zcard(self.keys.delayed(queue))
                return sum(pipe.execute())
        except redis.RedisError as exc:
            raise self._error("count messages", exc) from exc

    # --- producing ---------------------------------------------------------------------------

    def envelope(self, queue: str, message: Message, *, exchange: str = "") -> tuple[str, int]:
        """kombu's JSON envelope for ``message`` on ``queue``, and its priority step.

        For a message sent through a named exchange, ``queue`` is the routing key.
        """
        properties = dict(message.properties)
        priority = properties.pop("priority", 0)  # re-added after delivery_info, as kombu does
        if not isinstance(priority, int):
            priority = 0
        properties["delivery_info"] = {"exchange": exchange, "routing_key": queue}
        properties["priority"] = priority
        properties["body_encoding"] = "base64"
        properties["delivery_tag"] = _new_delivery_tag()
        envelope = {
            "body": binascii.b2a_base64(message.body, newline=False).decode("ascii"),
            "content-encoding": message.content_encoding,
            "content-type": message.content_type,
            "headers": message.headers,
            "properties": properties,
        }
        try:
            return encode_envelope(envelope), self.keys.step_for(priority)
        except (TypeError, ValueError) as exc:
            raise EncodeError(f"Message headers or properties cannot be stored: {exc}") from exc

    def _write(self, queue: str, message: Message, eta: float | None) -> tuple[str, str, Any]:
        """How one message is published: ``("list", key, envelope)`` for an LPUSH, or
        ``("delayed", key, {member: due})`` for a ZADD."""
        text, step = self.envelope(queue, message)
        if eta is not None and eta > time.time() and self._delays(message):
            return ("delayed", self.keys.delayed(queue), {f"{step}|{text}": eta})
        return ("list", self.keys.list_key(queue, step), text)

    def _delays(self, message: Message) -> bool:
        """Whether an ETA message waits in the delayed key (else it goes to the list)."""
        return not self._track_held or id(message) in self._held

    def publish(self, queue: str, message: Message, *, eta: float | None = None) -> None:
        """One LPUSH (or ZADD with a future ``eta``): the cheapest publish Redis offers."""
        kind, key, value = self._write(queue, message, eta)
        try:
            if queue not in self._declared:
                self._declare([queue])
            # Bytes command names: redis-py splits a str one on spaces first.
            if kind == "list":
                self._send(b"LPUSH", key, value)
            else:
                [(member, due)] = value.items()
                self._send(b"ZADD", key, due, member)
        except redis.RedisError as exc:
            raise self._error("publish", exc) from exc

    def _send(self, *command: Any) -> Any:
        """One command on this thread's own connection: a publish is the hot path of every
        client, and skipping the pool's checkout and retry wrapper halves redis-py's cost."""
        return self._direct.send(*command)

    def publish_many(self, items: Sequence[Outgoing]) -> None:
        """All in one MULTI/EXEC: consecutive messages for one list share one LPUSH."""
        if not items:
            return
        writes: list[tuple[str, str, Any]] = []
        for item in items:
            kind, key, value = self._write(item.queue, item.message, item.eta)
            last = writes[-1] if writes else None
            if last is not None and last[0] == kind == "list" and last[1] == key:
                last[2].append(value)
            elif kind == "list":
                writes.append((kind, key, [value]))
            else:
                writes.append((kind, key, value))
        fresh = {item.queue for item in items} - self._declared
        try:
            with self._client.pipeline(transaction=True) as pipe:
                for queue in fresh:
                    self.keys.bind(pipe, queue)
                for kind, key, value in writes:
                    if kind == "list":
                        pipe.lpush(key, *value)
                    else:
                        pipe.zadd(key, value)
                pipe.execute()
        except redis.RedisError as exc:
            raise self._error("publish", exc) from exc
        self._declared |= fresh

    def _declare(self, queues: Sequence[str]) -> None:
        """Write kombu's binding of each queue once per instance (Celery tools list them)."""
        with self._client.pipeline(transaction=False) as pipe:
            for queue in queues:
                self.keys.bind(pipe, queue)
            pipe.execute()
        self._declared.update(queues)

    # --- consuming ---------------------------------------------------------------------------

    def _claim(self, queues: list[str], limit: int, timeout: float) -> list[Delivery]:
        """Claim now; while nothing is ready, sleep until notified, due or timed out.

        An idle consumer whose tracking has stayed on since its last claim skips the first
        round trip and goes straight to sleep: any write since then has notified it.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        try:
            plan = self._plan(self._ordered(queues))
            channel = self._channel()
            if timeout > 0 and channel.watching(plan) and not self._restore_due():
                reply = channel.last
            else:
                reply = self._round(channel, plan, limit, arm=channel.idle)
            while not reply.items:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if channel.can_track and channel.armed != plan.prefixes:
                    reply = self._round(channel, plan, limit, arm=True)
                elif channel.wait(self._wake_in(reply, left)):
                    reply = self._woken(channel, plan, limit)
                elif time.monotonic() < deadline:
                    reply = self._round(channel, plan, limit, arm=True)  # due, lapsed or polled
            channel.idle = len(reply.items) < 3 * min(limit, CLAIM_BATCH)  # queues drained
            if reply.items:
                channel.disarm_now()
        except redis.RedisError as exc:
            self._channel().reset()
            raise self._error("claim messages", exc) from exc
        return self._deliveries(plan, reply)

    def _woken(self, channel: _ClaimChannel, plan: _ClaimPlan, limit: int) -> _ClaimReply:
        """Notified of a write: claim with tracking off, so the claim's own pops (which
        NOLOOP does not cover inside a script) send no notification back to this consumer;
        if another consumer was faster, claim again with tracking back on."""
        reply = self._round(channel, plan, limit, arm=False)
        if not reply.items:
            reply = self._round(channel, plan, limit, arm=True)
        return reply

    def _ordered(self, queues: list[str]) -> tuple[str, ...]:
        strategy = self.config.queue_order_strategy
        if strategy == "sorted":
            return tuple(sorted(queues))
        if strategy == "priority" or len(queues) == 1:
            return tuple(queues)
        start = self._rotation % len(queues)
        self._rotation += 1
        return tuple(queues[start:] + queues[:start])

    def _plan(self, queues: tuple[str, ...]) -> _ClaimPlan:
        plan = self._plans.get(queues)
        if plan is None:
            plan = self._plans[queues] = self._make_plan(queues)
            fresh = [queue for queue in queues if queue not in self._declared]
            if fresh:
                self._declare(fresh)
        return plan

    def _make_plan(self, queues: tuple[str, ...]) -> _ClaimPlan:
        keys = self.keys
        delayed = [keys.delayed(queue) for queue in queues]
        lists = [keys.list_key(queue, step) for step in keys.steps for queue in queues]
        tail = (
            len(queues),
            MOVE_BATCH,
            keys.sep,
            *[keys.list_key(queue, 0) for queue in queues],
            *[json.dumps(queue) for queue in queues],
            PRIORITY_WINDOW,
            *[bound for step in keys.steps for bound in keys.step_range(step)],
        )
        prefixes = _tracking_prefixes(iter([*[keys.list_key(q, 0) for q in queues], *delayed]))
        all_keys = (keys.unacked, keys.unacked_index, keys.leases, *delayed, *lists)
        head = ("EVALSHA", _SHAS["claim"], len(all_keys), *all_keys)
        return _ClaimPlan(queues, head, tail, prefixes)

    def _channel(self) -> _ClaimChannel:
        channel: _ClaimChannel | None = getattr(self._local, "channel", None)
        if channel is None or channel.conn.pid != os.getpid():  # inherited across a fork
            channel = self._local.channel = _ClaimChannel(self._pool)
            with self._channels_lock:
                self._channels.append(channel)
        return channel

    def _round(
        self, channel: _ClaimChannel, plan: _ClaimPlan, limit: int, *, arm: bool
    ) -> _ClaimReply:
        """One round trip: maybe restore lapsed leases, claim, and arm or disarm tracking."""
        scripts = [self._restore_command()] if self._restore_due() else []
        token = secrets.token_hex(6) + ":"  # tags are token + 1, 2, ...: unique per claim
        scripts.append((*plan.head, min(limit, CLAIM_BATCH), self.lease_seconds, token, *plan.tail))
        replies = self._run_scripts(channel, scripts, plan.prefixes, arm=arm)
        if len(scripts) == 2:
            self._restored(int(replies[0]))
        reply = _parse_claim(replies[-1])
        channel.claimed(plan, reply)
        return reply

    def _run_scripts(
        self,
        channel: _ClaimChannel,
        scripts: list[tuple[Any, ...]],
        prefixes: tuple[str, ...],
        *,
        arm: bool,
    ) -> list[Any]:
        """Run ``scripts`` in one round trip with the tracking commands ``arm`` asks for.

        Disarming turns tracking off before the scripts, so their writes do not notify this
        consumer. Notifications already received are dropped: this claim sees those writes.
        """
        if arm:
            before = channel.arm_commands(prefixes)
        else:
            before = [("CLIENT", "TRACKING", "OFF")] if channel.armed is not None else []
        commands = [*before, *scripts]
        try:
            channel.drain()
            replies = channel.execute(commands)
        except redis.exceptions.ConnectionError:
            # Most likely a connection that went stale while idle: one fresh attempt (a claim
            # whose reply was lost only leaves messages held until their lease lapses).
            channel.reset()
            before = channel.arm_commands(prefixes) if arm else []
            commands = [*before, *scripts]
            replies = channel.execute(commands)
        channel.armed_by(commands, replies, prefixes)
        replies = replies[len(before) : len(before) + len(scripts)]
        if any(isinstance(reply, redis.exceptions.NoScriptError) for reply in replies):
            self._load_scripts(channel)  # a restarted server forgot them
            replies = channel.execute(scripts)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _restore_due(self) -> bool:
        return time.monotonic() >= self._next_restore

    def _restore_command(self) -> tuple[Any, ...]:
        keys = self.keys
        self._next_restore = time.monotonic() + RESTORE_INTERVAL
        return (
            "EVALSHA",
            _SHAS["restore"],
            4,
            keys.unacked,
            keys.unacked_index,
            keys.leases,
            keys.dead_letters,
            keys.prefix,
            keys.sep,
            keys.steps_csv,
            self.config.unacked_restore_limit,
            self.foreign_visibility_timeout,
        )

    def _restored(self, looked_at: int) -> None:
        if looked_at >= self.config.unacked_restore_limit:
            self._next_restore = 0.0  # a full batch: more may wait, sweep again next claim

    def _load_scripts(self, channel: _ClaimChannel) -> None:
        replies = channel.execute([("SCRIPT", "LOAD", text) for text in _SCRIPTS.values()])
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply

    def _wake_in(self, reply: _ClaimReply, left: float) -> float:
        """Seconds until a claim could find something without being notified (the reply
        may be from an earlier call: its server times count from when it was read)."""
        waits = [left]
        now = reply.now + (time.monotonic() - reply.read_at)
        if reply.next_due is not None:
            waits.append(reply.next_due - now)
        if reply.next_lapse is not None:
            sweep_in = self._next_restore - time.monotonic()
            waits.append(max(reply.next_lapse - now, sweep_in))
        return max(min(waits), 0.0)

    def _deliveries(self, plan: _ClaimPlan, reply: _ClaimReply) -> list[Delivery]:
        items = reply.items
        deliveries = []
        for index in range(0, len(items), 3):
            message, redelivered = parse_envelope(items[index + 2])
            queue = plan.queues[int(items[index]) - 1]
            deliveries.append(Delivery(message, queue, items[index + 1].decode(), redelivered))
        if self._track_held:
            for delivery in deliveries:
                self._held[id(delivery.message)] = delivery.message
        return deliveries

    # --- settling ----------------------------------------------------------------------------

    def _run_chunks(
        self, what: str, script: str, keys: list[str], head: list[Any], tags: list[str]
    ) -> int:
        total = 0
        try:
            for start in range(0, len(tags), SETTLE_CHUNK):
                chunk = tags[start : start + SETTLE_CHUNK]
                total += int(self._call_script(script, keys, [*head, *chunk]))
        except redis.RedisError as exc:
            raise self._error(what, exc) from exc
        return total

    def _call_script(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """A script on this thread's own connection (see :meth:`_send`): settling is the
        worker's hot path too."""
        return self._direct.run_script(self._scripts[name], keys, args)

    def _release(self, deliveries: Sequence[Delivery]) -> list[str]:
        if self._track_held:
            for delivery in deliveries:
                self._held.pop(id(delivery.message), None)
        return [delivery.tag for delivery in deliveries]

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Forget the messages still held (one script call per 1000)."""
        self._forget("ack messages", self._release(deliveries))

    def _forget(self, what: str, tags: list[str]) -> None:
        keys = self.keys
        self._run_chunks(what, "ack", [keys.unacked, keys.unacked_index, keys.leases], [], tags)

    def reject(self, deliveries: Sequence[Delivery], *, requeue: bool) -> None:
        """Drop the messages, or with ``requeue`` put them back at the tail, redelivered."""
        tags = self._release(deliveries)
        if not requeue:
            self._forget("reject messages", tags)
            return
        keys = self.keys
        self._run_chunks(
            "requeue messages",
            "requeue",
            [keys.unacked, keys.unacked_index, keys.leases, keys.dead_letters],
            [keys.prefix, keys.sep, keys.steps_csv],
            tags,
        )

    def renew(self, deliveries: Sequence[Delivery]) -> None:
        """Move the leases (and ``unacked_index`` scores) of held messages to now."""
        keys = self.keys
        tags = [delivery.tag for delivery in deliveries]
        self._run_chunks(
            "renew leases", "renew", [keys.unacked_index, keys.leases], [self.lease_seconds], tags
        )

    # --- dead letters ------------------------------------------------------------------------

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move a held message to the dead-letter stream (nothing if its lease lapsed)."""
        keys = self.keys
        self._release([delivery])
        try:
            self._scripts["dead_letter"](
                keys=[keys.unacked, keys.unacked_index, keys.leases, keys.dead_letters],
                args=[delivery.tag, delivery.queue, reason],
            )
        except redis.RedisError as exc:
            raise self._error("dead-letter a message", exc) from exc

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters first (entry ids are the stream's ids)."""
        if limit <= 0:
            return []
        try:
            entries: list[Any] = self._client.xrange(self.keys.dead_letters, count=limit)  # type: ignore[assignment]
        except redis.RedisError as exc:
            raise self._error("list dead letters", exc) from exc
        return [_dead_letter(entry_id, fields) for entry_id, fields in entries]

    def requeue_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Put dead letters back on their queues, marked redelivered; returns how many."""
        keys = self.keys
        head: list[Any] = [keys.prefix, keys.sep, keys.steps_csv, SETTLE_CHUNK]
        script = self._scripts["requeue_dead"]
        moved = 0
        try:
            if ids is not None:
                wanted = [str(i) for i in ids if _STREAM_ID.fullmatch(str(i))]
                for start in range(0, len(wanted), SETTLE_CHUNK):
                    chunk = wanted[start : start + SETTLE_CHUNK]
                    moved += int(script(keys=[keys.dead_letters], args=[*head, "-", *chunk])[0])
                return moved
            cursor: Any = "-"
            while True:
                count, seen, cursor = script(keys=[keys.dead_letters], args=[*head, cursor])
                moved += int(count)
                if int(seen) < SETTLE_CHUNK:
                    return moved
        except redis.RedisError as exc:
            raise self._error("requeue dead letters", exc) from exc

    # --- broadcast and direct (remote control) ------------------------------------------------

    def _fanout_channel(self, exchange: str, routing_key: str) -> str:
        """kombu's pub/sub channel: ``/<db>.<exchange>[/<routing key>]``, prefixed."""
        db = self._pool.connection_kwargs.get("db", 0)
        suffix = f"/{routing_key}" if routing_key else ""
        return f"{self.keys.prefix}/{db}.{exchange}{suffix}"

    def _binding(self, exchange: str, routing_key: str, queue: str) -> tuple[str, str]:
        """kombu's binding set of ``exchange`` and the member for ``queue``."""
        sep = self.keys.sep
        return f"{self.keys.prefix}_kombu.binding.{exchange}", f"{routing_key}{sep}{sep}{queue}"

    def fanout_publish(
        self,
        exchange: str,
        message: Message,
        *,
        routing_key: str = "",
        exchange_type: ExchangeType = "fanout",
    ) -> None:
        """``PUBLISH`` kombu's envelope on the exchange's channel.

        Every exchange is a pub/sub fanout here, as Celery makes its event exchange on
        Redis: the routing key only extends the channel name (``/0.celeryev/task.sent``).
        """
        text, _ = self.envelope(routing_key, message, exchange=exchange)
        try:
            self._send("PUBLISH", self._fanout_channel(exchange, routing_key), text)
        except redis.RedisError as exc:
            raise self._error("publish a broadcast", exc) from exc

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
        """``PSUBSCRIBE`` the exchange's channel (confirmed before this returns).

        A ``binding_key`` is a pattern over routing keys, kombu's way: ``#`` becomes ``*``,
        so ``#`` reads ``/0.celeryev/*``. Pub/sub keeps nothing, so ``message_ttl`` and
        ``expires`` have nothing to bound.
        """
        binding, member = self._binding(exchange, binding_key, queue)
        pattern = self._fanout_channel(exchange, binding_key.replace("#", "*"))
        pubsub: Any = self._client.pubsub()  # type: ignore[no-untyped-call]
        try:
            self._client.sadd(binding, member)
            pubsub.psubscribe(pattern)
            deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
            while time.monotonic() < deadline:
                reply = pubsub.get_message(timeout=0.1)
                if reply is not None and reply["type"] == "psubscribe":
                    break
        except redis.RedisError as exc:
            pubsub.close()
            raise self._error("subscribe to a broadcast", exc) from exc
        return _PubSubSubscription(self, pubsub, binding, member)

    def direct_publish(self, exchange: str, routing_key: str, message: Message) -> None:
        """``LPUSH`` to each queue kombu's binding set routes ``routing_key`` to."""
        text, _ = self.envelope(routing_key, message, exchange=exchange)
        binding, _ = self._binding(exchange, routing_key, "")
        sep = self.keys.sep
        try:
            members = self._client.smembers(binding)
            with self._client.pipeline(transaction=False) as pipe:
                for raw in members:
                    text_member = raw.decode() if isinstance(raw, bytes) else str(raw)
                    key, _, queue = text_member.partition(sep + sep)
                    if key == routing_key:
                        pipe.lpush(self.keys.prefix + queue, text)
                        pipe.pexpire(self.keys.prefix + queue, int(DIRECT_KEEP * 1000))
                pipe.execute()
        except redis.RedisError as exc:
            raise self._error("publish a direct message", exc) from exc

    def direct_subscribe(
        self, exchange: str, routing_key: str, queue: str, *, expires: float | None = None
    ) -> Subscription:
        """Add kombu's binding for ``queue`` and read its list (``BRPOP``)."""
        binding, member = self._binding(exchange, routing_key, queue)
        try:
            self._client.sadd(binding, member)
        except redis.RedisError as exc:
            raise self._error("declare a direct queue", exc) from exc
        return _ListSubscription(self, self.keys.prefix + queue, binding, member)


class _PubSubSubscription(Subscription):
    """A ``PSUBSCRIBE`` on its own connection."""

    def __init__(self, broker: RedisBroker, pubsub: Any, binding: str, member: str) -> None:
        self._broker = broker
        self._pubsub = pubsub
        self._binding = (binding, member)

    def get(self, timeout: float) -> list[Message]:
        deadline = time.monotonic() + timeout
        got: list[Message] = []
        try:
            while True:
                wait = 0.0 if got else max(deadline - time.monotonic(), 0.0)
                reply = self._pubsub.get_message(timeout=wait)
                if reply is not None and reply["type"] == "pmessage":
                    got.append(parse_envelope(reply["data"])[0])
                elif reply is None and (got or time.monotonic() >= deadline):
                    return got
        except redis.RedisError as exc:
            raise self._broker._error("read broadcasts", exc) from exc

    def close(self) -> None:
        try:
            self._broker._client.srem(*self._binding)
        except redis.RedisError:
            pass  # the binding only helps Celery tools list the node
        self._pubsub.close()


class _ListSubscription(Subscription):
    """A kombu list read with ``BRPOP``; closing deletes the list and its binding."""

    def __init__(self, broker: RedisBroker, key: str, binding: str, member: str) -> None:
        self._broker = broker
        self._key = key
        self._binding = (binding, member)

    def get(self, timeout: float) -> list[Message]:
        client: Any = self._broker._client
        raws: list[Any]
        try:
            if timeout > 0:
                first = client.brpop([self._key], timeout=max(timeout, 0.01))
                if first is None:
                    return []
                raws = [first[1], *(client.rpop(self._key, 100) or [])]
            else:
                raws = client.rpop(self._key, 100) or []
        except redis.RedisError as exc:
            raise self._broker._error("read a direct queue", exc) from exc
        return [parse_envelope(raw)[0] for raw in raws]

    def close(self) -> None:
        client = self._broker._client
        try:
            with client.pipeline(transaction=False) as pipe:
                pipe.srem(*self._binding)
                pipe.delete(self._key)
                pipe.execute()
        except redis.RedisError:
            pass  # the list expires on its own (DIRECT_KEEP)


# --- helpers ---------------------------------------------------------------------------------


def _parse_claim(reply: list[Any]) -> _ClaimReply:
    due, lapse = reply[1], reply[2]
    return _ClaimReply(
        float(reply[0]),
        float(due) if due else None,
        float(lapse) if lapse else None,
        reply[3:],
    )


def _dead_letter(entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    message, _ = parse_envelope(fields.get(b"message", b""))
    return DeadLetter(
        entry_id.decode(),
        fields.get(b"queue", b"").decode("utf-8", "replace"),
        fields.get(b"reason", b"").decode("utf-8", "replace"),
        float(fields.get(b"time", b"0") or 0),
        message,
    )
