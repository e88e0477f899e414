"""The Redis result backend (``redis://``, ``rediss://``, ``redis+socket://``, ``sentinel://``).

Celery's layout, so Celery clients and workers share results with celeriac both ways:

====================================  =====================================================
key                                   value
====================================  =====================================================
``celery-task-meta-<task id>``        a task's result record (Celery's meta, serialized)
``celery-taskset-meta-<group id>``    a group's record: ``{"result": <group tuple>, ...}``
``celery-taskset-meta-<gid>.j``       a chord's finished header parts (sorted set or list)
``celery-taskset-meta-<gid>.t``       parts added to a running chord (counter)
``celery-taskset-meta-<gid>.s``       the chord's header size (set by the sending client)
====================================  =====================================================

With ``global_keyprefix=P`` every key starts with ``P`` (plus ``_`` unless ``P`` ends with
one of ``:_-.``), as in Celery. Records live ``result_expires`` seconds (a native key TTL;
None or 0 keeps them), so :meth:`~ResultBackend.cleanup` has nothing to do.

Storing is one Lua script call per batch (``redis_lua/store_results.lua``): it reads each
key's stored status, leaves a SUCCESS alone (a FAILURE/REVOKED gives way only to another
ready state), SETs the record and PUBLISHes it on the channel named like the key, which is
what Celery's ``AsyncResult.get()`` listens to.

Waiting never polls. Each backend keeps one pub/sub connection shared by every waiting
thread (:class:`_Listener`): :meth:`RedisBackend.wait_for` subscribes to the key's channel,
waits for Redis to confirm, then reads the key, so a result stored in between is not missed;
the PUBLISH then hands the waiter the record itself. There is no background thread: waiters
take turns reading the connection for each other (a lone waiter reads its own result), and
after a reconnect the reader resubscribes and re-reads every watched key with one MGET.

Options (``options=``; the app passes ``result_backend_transport_options`` and the
``redis_*`` settings listed in :data:`SETTING_OPTIONS` under their setting names):

======================================  ================================================
``global_keyprefix``                    prefix of every key (Celery's rule, see above)
``result_chord_ordered``                chord parts in a sorted set (True, the default)
                                        or a list (False); must match Celery workers
``master_name``, ``sentinel_kwargs``    Sentinel: the master's service name (required)
                                        and options for connections to the sentinels
``redis_max_connections``               size of the connection pool (plus one pub/sub
                                        connection once something waited, until close())
``redis_socket_timeout``                read/write timeout in seconds (default 120)
``redis_socket_connect_timeout``        connect timeout in seconds
``redis_retry_on_timeout``              retry a command once after a timeout
``redis_socket_keepalive``              TCP keep-alive (TCP connections only)
``redis_backend_use_ssl``               TLS: True or a dict of redis-py ``ssl_*`` options
                                        (``ssl_cert_reqs`` may be ``CERT_REQUIRED`` etc.)
``redis_backend_health_check_interval`` seconds between PINGs of idle connections
``redis_client_name``                   CLIENT SETNAME of the connections
``redis_username``, ``redis_password``  credentials when the URL gives none
``redis_backend_credential_provider``   a redis-py credential provider (or its path)
======================================  ================================================

Connection failures and timeouts raise :class:`~celeriac.exceptions.OperationalError`
naming the URL with its password masked.
"""

from __future__ import annotations

import enum
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis
import redis.sentinel

from celeriac import states
from celeriac.backends.base import RecordWrite, ResultBackend, StoredRecord, redact_url
from celeriac.exceptions import (
    BackendStoreError,
    ImproperlyConfigured,
    OperationalError,
    TimeoutError,
)
from celeriac.serialization import codec_for
from celeriac.utils.redis_direct import DirectConnections

__all__ = ["SETTING_OPTIONS", "RedisBackend", "key_prefix"]

logger = logging.getLogger(__name__)

#: Celery's key prefixes (``BaseKeyValueStoreBackend``).
TASK_KEYPREFIX = "celery-task-meta-"
GROUP_KEYPREFIX = "celery-taskset-meta-"

#: The ``redis_*`` settings this backend reads, under the names it accepts in ``options``.
SETTING_OPTIONS = (
    "redis_max_connections",
    "redis_socket_timeout",
    "redis_socket_connect_timeout",
    "redis_retry_on_timeout",
    "redis_socket_keepalive",
    "redis_backend_use_ssl",
    "redis_backend_health_check_interval",
    "redis_client_name",
    "redis_username",
    "redis_password",
    "redis_backend_credential_provider",
)

#: Setting option → redis-py connection (or pool) keyword.
_REDIS_KWARGS = {
    "redis_max_connections": "max_connections",
    "redis_socket_timeout": "socket_timeout",
    "redis_socket_connect_timeout": "socket_connect_timeout",
    "redis_retry_on_timeout": "retry_on_timeout",
    "redis_socket_keepalive": "socket_keepalive",
    "redis_backend_health_check_interval": "health_check_interval",
    "redis_client_name": "client_name",
    "redis_username": "username",
    "redis_password": "password",
}

#: Celery's default ``redis_socket_timeout``.
DEFAULT_SOCKET_TIMEOUT = 120.0

#: Celery's refusal threshold for one value (Redis strings hold at most 512 MiB).
MAX_VALUE_SIZE = 512 * 1024 * 1024

#: ``ssl_cert_reqs`` spellings (Celery's and the ssl module's) → redis-py's.
_CERT_REQS = {
    "cert_required": "required",
    "required": "required",
    "cert_optional": "optional",
    "optional": "optional",
    "cert_none": "none",
    "none": "none",
}

_LUA = Path(__file__).with_name("redis_lua")

_JSON, _PICKLE, _MSGPACK = (
    (codec.content_type, codec.content_encoding)
    for codec in map(codec_for, ("json", "pickle", "msgpack"))
)


def key_prefix(global_keyprefix: str | None) -> str:
    """The prefix put before Celery's key names for ``global_keyprefix`` (Celery's rule).

    An ``_`` is added unless the prefix already ends with one of ``:_-.``; no prefix gives
    an empty string.
    """
    if not global_keyprefix:
        return ""
    return global_keyprefix if global_keyprefix[-1] in ":_-." else global_keyprefix + "_"


class RedisBackend(ResultBackend):
    """Results in Redis, in Celery's key layout (see the module docstring for options).

    The URL is ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` for TLS
    (``?ssl_cert_reqs=required`` etc.), ``redis+socket:///path/to/socket[?virtual_host=db]``
    or ``sentinel://[:password@]host:port[/db][;sentinel://host2:port...]`` with the
    ``master_name`` option.
    """

    schemes = ("redis", "rediss", "redis+socket", "sentinel")
    option_names = frozenset(
        {"global_keyprefix", "result_chord_ordered", "master_name", "sentinel_kwargs"}
        | set(SETTING_OPTIONS)
    )
    # Redis expires keys by itself.
    cleanup_interval = None

    _client: redis.Redis
    _listener: _Listener

    def _setup(self) -> None:
        prefix = self.options.get("global_keyprefix")
        if prefix is not None and not isinstance(prefix, str):
            raise ImproperlyConfigured(f"global_keyprefix must be a string, not {prefix!r}")
        self.key_prefix = key_prefix(prefix)
        self.chord_ordered = bool(self.options.get("result_chord_ordered", True))
        pool = _make_pool(self.url, self.options)
        self._client = redis.Redis(connection_pool=pool)
        self._store_script = self._client.register_script(_read_lua("store_results.lua"))
        self._direct = DirectConnections(pool)  # the worker's settler stores through it
        self._chord_script = self._client.register_script(_read_lua("chord_part.lua"))
        self._listener = _Listener(pool, self._client, redact_url(self.url))

    # --- keys ------------------------------------------------------------------------------

    def task_key(self, task_id: str) -> str:
        """The key (and pub/sub channel) of a task's result record."""
        return f"{self.key_prefix}{TASK_KEYPREFIX}{task_id}"

    def group_key(self, group_id: str, suffix: str = "") -> str:
        """The key of a group's record; with ``suffix`` (``.j``, ``.t``, ``.s``) a chord key."""
        return f"{self.key_prefix}{GROUP_KEYPREFIX}{group_id}{suffix}"

    # --- waiting ---------------------------------------------------------------------------

    def wait_for(
        self, task_id: str, timeout: float | None = None, interval: float = 0.5
    ) -> dict[str, Any]:
        """Block until the task is ready and return its record, woken by Redis pub/sub.

        The record published with the store wakes the wait at once (also when another
        process or a Celery worker stored it); the key is re-read every ``interval``
        seconds as well, and after a reconnect.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            OperationalError: Redis cannot be reached.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        meta = self.get_task_meta(task_id)
        if meta["status"] in states.READY_STATES:
            return meta  # already done: no subscription needed
        listener = self._listener
        with listener.watch(self.task_key(task_id).encode(), deadline) as watch:
            meta = self.get_task_meta(task_id)  # subscribed first: nothing published is missed
            while meta["status"] not in states.READY_STATES:
                remaining = interval if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("The operation timed out.")
                payload = listener.receive(watch, min(interval, remaining))
                if payload is None:
                    meta = self.get_task_meta(task_id)
                else:
                    meta = self._decode_meta(task_id, self._record(payload))
            return meta

    # --- chords ----------------------------------------------------------------------------
    # Celery's layout: the sending client sets ``<group key>.s`` (the header size) before
    # the last header task goes out; each finished part joins ``.j`` (a sorted set scored by
    # the part's index in ordered mode, Celery's default; a list otherwise); ``.t`` counts
    # parts added to a running chord. One Lua script counts and completes, so exactly one
    # caller across all processes (Celery workers included) gets the parts.

    def _set_chord_size(self, group_id: str, size: int) -> None:
        with self._errors("set a chord size"):
            self._client.set(self.group_key(group_id, ".s"), size, px=self._expires_ms())

    def _extend_chord(self, group_id: str, count: int) -> int:
        with self._errors("extend a chord"):
            return int(self._client.incrby(self.group_key(group_id, ".t"), count))

    def _add_chord_part(
        self, group_id: str, part: bytes, index: int | None, size: int | None
    ) -> list[bytes] | None:
        keys = [self.group_key(group_id, suffix) for suffix in (".j", ".t", ".s")]
        score = "+inf" if index is None else str(int(index))
        ttl = self._expires_ms() or 0
        args: list[bytes | str | int] = [part, score, ttl, size or 0, int(self.chord_ordered)]
        with self._errors("record a chord part"):
            parts = self._chord_script(keys=keys, args=args)
        return list(parts) if parts else None

    def _add_chord_parts(
        self, writes: Sequence[tuple[str, bytes, int | None, int | None]]
    ) -> list[list[bytes] | None]:
        """Every part's script call in one pipeline (each call stays atomic on its own)."""
        if len(writes) == 1:
            return [self._add_chord_part(*writes[0])]
        ttl = self._expires_ms() or 0
        ordered = int(self.chord_ordered)
        with (
            self._errors("record chord parts"),
            self._client.pipeline(transaction=False) as pipe,
        ):
            for group_id, part, index, size in writes:
                keys = [self.group_key(group_id, suffix) for suffix in (".j", ".t", ".s")]
                score = "+inf" if index is None else str(int(index))
                args: list[bytes | str | int] = [part, score, ttl, size or 0, ordered]
                self._chord_script(keys=keys, args=args, client=pipe)
            replies = pipe.execute()
        return [list(reply) if reply else None for reply in replies]

    def _delete_chord(self, group_id: str) -> None:
        keys = [self.group_key(group_id, suffix) for suffix in (".j", ".t", ".s")]
        with self._errors("delete a chord"):
            self._client.delete(*keys)

    def _part_content_type(self, payload: bytes) -> tuple[str, str]:
        return self._content_type(payload)

    # --- connections -----------------------------------------------------------------------

    def close(self) -> None:
        """Close idle connections (and the pub/sub connection when nobody is waiting).

        The backend stays usable; connections reopen on the next call.
        """
        self._listener.close()
        self._direct.close()
        self._client.connection_pool.disconnect(inuse_connections=False)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise OperationalError(
                f"Cannot {what} on the Redis result backend {redact_url(self.url)}: {exc}"
            ) from exc

    # --- primitives ------------------------------------------------------------------------

    def _store(self, items: list[RecordWrite]) -> None:
        keys: list[str] = []
        args: list[str | bytes] = []
        now = time.time()
        for item in items:
            if len(item.payload) > MAX_VALUE_SIZE:
                raise BackendStoreError(
                    f"The result of task {item.task_id} is too large for Redis "
                    f"({len(item.payload)} bytes; at most {MAX_VALUE_SIZE})"
                )
            keys.append(self.task_key(item.task_id))
            args += (item.state, _ttl_ms(item.expires_at, now), item.payload)
        with self._errors("store results"):
            self._direct.run_script(self._store_script, keys, args)

    def _load_many(self, task_ids: Sequence[str]) -> dict[str, StoredRecord]:
        keys = [self.task_key(task_id) for task_id in task_ids]
        with self._errors("read results"):
            values = cast("list[bytes | None]", self._client.mget(keys))
        return {
            task_id: self._record(value)
            for task_id, value in zip(task_ids, values, strict=True)
            if value is not None
        }

    def _delete(self, task_id: str) -> None:
        with self._errors("forget a result"):
            self._client.delete(self.task_key(task_id))

    def _store_group(self, group_id: str, record: StoredRecord, expires_at: float | None) -> None:
        key = self.group_key(group_id)
        ttl = _ttl_ms(expires_at, time.time())
        # Celery's set(): SET with expiry + PUBLISH in one MULTI/EXEC.
        with self._errors("store a group"), self._client.pipeline(transaction=True) as pipe:
            pipe.set(key, record.payload, px=None if ttl == "0" else int(ttl))
            pipe.publish(key, record.payload)
            pipe.execute()

    def _load_group(self, group_id: str) -> StoredRecord | None:
        with self._errors("read a group"):
            value = cast("bytes | None", self._client.get(self.group_key(group_id)))
        return None if value is None else self._record(value)

    def _delete_group(self, group_id: str) -> None:
        with self._errors("delete a group"):
            self._client.delete(self.group_key(group_id))

    def _cleanup(self, now: float) -> int:
        return 0  # keys carry their own TTL

    def _change_token(self) -> int:
        return self._listener.version

    def _wait_change(self, token: int, timeout: float) -> None:
        # Only keys being waited on by wait_for() report changes (it subscribes to them).
        self._listener.wait_change(token, timeout)

    # --- helpers ---------------------------------------------------------------------------

    def _record(self, payload: bytes) -> StoredRecord:
        return StoredRecord(payload, *self._content_type(payload))

    def _content_type(self, payload: bytes) -> tuple[str, str]:
        """The codec of a stored value, told from its first byte.

        Redis keeps no content type beside the value (Celery decodes with its own
        serializer). Recognizing the format keeps ``accept`` meaningful: a pickled record
        read by a JSON-only backend raises ContentDisallowed instead of being unpickled.
        """
        head = payload[:1]
        if head == b"{" or head == b"[" or (head.isspace() and payload.lstrip()[:1] == b"{"):
            return _JSON
        if head == b"\x80":
            return _PICKLE
        if head and (0x81 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)):
            return _MSGPACK
        codec = codec_for(self.serializer)
        return codec.content_type, codec.content_encoding

    def _expires_ms(self) -> int | None:
        return None if self.expires is None else max(1, round(self.expires * 1000))


# --- the pub/sub listener -------------------------------------------------------------------

#: Longest single blocking read, in seconds (the reader then re-checks its connection).
_TICK = 1.0
#: Reconnect backoff bounds, in seconds.
_BACKOFF_MIN, _BACKOFF_MAX = 0.05, 2.0
#: Seconds to wait for a subscription to be confirmed when the caller has no deadline.
_SUBSCRIBE_TIMEOUT = 30.0


class _Wake(enum.Enum):
    """A signal in a waiter's inbox: nothing published, but something to look at."""

    UP = "up"  # the subscription was confirmed, or nobody reads the connection any more


class _Watch:
    """One waiting call's registration: its key and the inbox the reader fills."""

    __slots__ = ("_inbox", "failed", "key", "value")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._inbox: queue.SimpleQueue[bytes | Exception | _Wake] = queue.SimpleQueue()
        self.value: bytes | None = None  # the newest value published on the key
        self.failed: Exception | None = None  # why the connection could not be made

    def put(self, item: bytes | Exception | _Wake) -> None:
        self._inbox.put(item)

    def has_news(self) -> bool:
        return not self._inbox.empty()

    def absorb(self, timeout: float) -> None:
        """Take in what arrived, waiting up to ``timeout`` seconds for the first item."""
        try:
            item = self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get_nowait()
            while True:
                if isinstance(item, bytes):
                    self.value = item
                elif isinstance(item, Exception):
                    self.failed = item
                item = self._inbox.get_nowait()
        except queue.Empty:
            return

    def take(self) -> bytes | None:
        value, self.value = self.value, None
        return value


class _Listener:
    """One pub/sub connection shared by every thread waiting on this backend.

    There is no background thread: waiting threads take turns reading the connection
    (leader/follower). The one holding the *reader* role reads for everyone, putting each
    published value into the inboxes of its channel, and wakes another waiter to take the
    role when its own value arrived or its time is up. A lone waiter therefore reads its
    own result off the socket, with no thread hand-off.

    The first waiter of a key sends SUBSCRIBE itself, and every waiter waits for Redis's
    confirmation before reading the key, so nothing published in between is missed. The
    reader reconnects when the connection breaks, resubscribes every watched key and
    re-reads them all with one MGET, as a value may have been published meanwhile.
    """

    def __init__(self, pool: redis.ConnectionPool, client: redis.Redis, where: str) -> None:
        self._pool = pool
        self._client = client
        self._where = where
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._watches: dict[bytes, list[_Watch]] = {}
        self._pending: set[bytes] = set()  # SUBSCRIBE sent, confirmation not read yet
        self._confirmed: set[bytes] = set()
        self._resync: list[bytes] = []  # keys to MGET once the last one is confirmed
        self._conn: Any = None  # the connection while it is up (sends go there)
        self._reading = False  # whether a waiter holds the reader role
        self._connects = 0
        self._retry_at = 0.0
        self._backoff = _BACKOFF_MIN
        self.version = 0  # bumped by every published value delivered and every reconnect

    # --- the waiters' side -----------------------------------------------------------------

    @contextmanager
    def watch(self, key: bytes, deadline: float | None) -> Iterator[_Watch]:
        """Subscribe to ``key``'s channel for the duration of the block.

        Returns only once Redis has confirmed the subscription: then read the key, and
        :meth:`receive` what is published on it.

        Raises:
            TimeoutError: ``deadline`` (a ``time.monotonic()`` value) passed first.
            OperationalError: the connection failed or Redis did not confirm in time.
        """
        if self._pid != os.getpid():
            self._reset()  # forked: the parent's socket is not ours
        watch = _Watch(key)
        self._add(watch)
        try:
            self._until_confirmed(watch, deadline)
            yield watch
        finally:
            self._remove(watch)

    def receive(self, watch: _Watch, timeout: float) -> bytes | None:
        """The newest value published on the watched key, or None after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while True:
            value = watch.take()
            if value is not None or time.monotonic() >= end:
                return value
            self._await(watch, end)

    def wait_change(self, token: int, timeout: float) -> None:
        """Return once :attr:`version` differs from ``token``, or after ``timeout`` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != token, timeout)

    def close(self) -> None:
        """Close the connection, unless someone is waiting (it reopens when needed)."""
        with self._lock:
            if self._watches or self._reading or self._pid != os.getpid():
                return
            conn = self._drop_connection()
        if conn is not None:
            conn.disconnect()

    def _add(self, watch: _Watch) -> None:
        key = watch.key
        with self._lock:
            self._watches.setdefault(key, []).append(watch)
            if self._conn is not None and key not in self._confirmed and key not in self._pending:
                self._pending.add(key)
                self._send("SUBSCRIBE", key)

    def _until_confirmed(self, watch: _Watch, deadline: float | None) -> None:
        limit = time.monotonic() + _SUBSCRIBE_TIMEOUT
        end = limit if deadline is None else min(limit, deadline)
        while watch.key not in self._confirmed:
            if watch.failed is not None:
                raise OperationalError(
                    f"Cannot subscribe to results on the Redis result backend "
                    f"{self._where}: {watch.failed}"
                ) from watch.failed
            if time.monotonic() >= end:
                if end != limit:
                    raise TimeoutError("The operation timed out.")
                raise OperationalError(
                    f"Redis did not confirm a subscription within {_SUBSCRIBE_TIMEOUT}s "
                    f"on the Redis result backend {self._where}"
                )
            self._await(watch, end)

    def _remove(self, watch: _Watch) -> None:
        key = watch.key
        with self._lock:
            watches = self._watches.get(key, [])
            if watch in watches:
                watches.remove(watch)
            if not watches:
                self._watches.pop(key, None)
                # A key still awaiting its confirmation is unsubscribed when that arrives.
                if key in self._confirmed:
                    self._confirmed.discard(key)
                    self._send("UNSUBSCRIBE", key)
            if not self._reading:
                self._hand_over()  # this waiter may have taken the wake-up meant for a reader

    def _await(self, watch: _Watch, end: float) -> None:
        """Read the connection for everyone until ``watch`` has news, or wait for the reader."""
        if self._lead():
            try:
                self._read(watch, end)
            finally:
                self._resign()
        watch.absorb(end - time.monotonic())

    def _lead(self) -> bool:
        with self._lock:
            if self._reading:
                return False
            self._reading = True
            return True

    def _resign(self) -> None:
        with self._lock:
            self._reading = False
            self._hand_over()

    # --- the reader ------------------------------------------------------------------------

    def _read(self, watch: _Watch, end: float) -> None:
        """Read for every waiter until ``watch`` has news or ``end`` passes (bounded reads)."""
        while not watch.has_news():
            now = time.monotonic()
            if now >= end:
                return
            conn = self._conn
            if conn is None:
                if now < self._retry_at:
                    time.sleep(min(self._retry_at, end) - now)
                else:
                    self._reconnect()
                continue
            try:
                if conn.can_read(timeout=min(end - now, _TICK)):
                    self._handle(conn.read_response())
            except Exception as exc:  # the socket may also be torn down by a failed send
                self._lost(conn, exc)

    def _reconnect(self) -> None:
        kwargs = dict(self._pool.connection_kwargs, protocol=2, health_check_interval=0)
        conn = self._pool.connection_class(**kwargs)
        try:
            conn.connect()
        except Exception as exc:
            logger.debug("Cannot connect the Redis pub/sub listener: %s", exc)
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX)
            with self._lock:
                for watches in self._watches.values():
                    for watch in watches:
                        watch.put(exc)
            return
        self._backoff = _BACKOFF_MIN
        with self._lock:
            keys = list(self._watches)
            if keys:
                conn.send_command("SUBSCRIBE", *keys, check_health=False)
            self._pending = set(keys)
            self._confirmed = set()
            self._resync = keys if self._connects else []
            self._connects += 1
            self._conn = conn
            self.version += 1
            self._changed.notify_all()

    def _lost(self, conn: Any, exc: Exception) -> None:
        logger.debug("Redis pub/sub connection lost (%s); reconnecting", exc)
        with self._lock:
            if self._conn is conn:
                self._drop_connection()
        conn.disconnect()

    def _handle(self, response: Any) -> None:
        kind = response[0] if isinstance(response, list) and response else response
        if kind == b"message":
            self._deliver(response[1], response[2])
        elif kind == b"subscribe":
            self._confirm(response[1])

    def _deliver(self, key: bytes, value: bytes) -> None:
        with self._lock:
            for watch in self._watches.get(key, ()):
                watch.put(value)
            self.version += 1
            self._changed.notify_all()

    def _confirm(self, key: bytes) -> None:
        with self._lock:
            self._pending.discard(key)
            self._confirmed.add(key)
            watches = self._watches.get(key)
            if not watches:
                self._confirmed.discard(key)
                self._send("UNSUBSCRIBE", key)
            for watch in watches or ():
                watch.put(_Wake.UP)
            resync = self._resync if self._resync and key == self._resync[-1] else []
            if resync:
                self._resync = []
        if resync:
            self._reload(resync)

    def _reload(self, keys: list[bytes]) -> None:
        """After a reconnect: MGET the watched keys, as a publish may have been missed."""
        with self._lock:
            keys = [key for key in keys if key in self._watches]
        if not keys:
            return
        try:
            values = cast("list[bytes | None]", self._client.mget(keys))
        except redis.RedisError as exc:
            logger.debug("Re-reading results after a reconnect failed: %s", exc)
            return
        for key, value in zip(keys, values, strict=True):
            if value is not None:
                self._deliver(key, value)

    # --- helpers called with the lock held -------------------------------------------------

    def _hand_over(self) -> None:
        """Wake one waiter, which then takes the reader role."""
        for watches in self._watches.values():
            if watches:
                watches[0].put(_Wake.UP)
                return

    def _send(self, *args: Any) -> None:
        conn = self._conn
        if conn is None:
            return  # the reader subscribes to every watched key when it reconnects
        try:
            conn.send_command(*args, check_health=False)
        except (redis.RedisError, OSError) as exc:
            logger.debug("Redis pub/sub send failed (%s); the reader reconnects", exc)
            self._drop_connection()

    def _drop_connection(self) -> Any:
        conn, self._conn = self._conn, None
        self._pending.clear()
        self._confirmed.clear()
        self._resync = []
        return conn


# --- helpers ---------------------------------------------------------------------------------


def _ttl_ms(expires_at: float | None, now: float) -> str:
    """A PX argument for a record expiring at ``expires_at`` ("0": no expiry)."""
    if expires_at is None:
        return "0"
    return str(max(1, round((expires_at - now) * 1000)))


def _read_lua(name: str) -> str:
    return (_LUA / name).read_text(encoding="utf-8")


def _make_pool(url: str, options: dict[str, Any]) -> redis.ConnectionPool:
    """The connection pool for ``url`` with the connection options."""
    kwargs = _connection_kwargs(options)
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "sentinel":
        return _sentinel_pool(url, kwargs, options)
    if scheme == "redis+socket":
        url = _socket_url(rest)
        kwargs.pop("socket_keepalive", None)
    url, query_kwargs = _ssl_query(url)
    kwargs.update(query_kwargs)
    try:
        return redis.ConnectionPool.from_url(url, **kwargs)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"Invalid Redis result backend URL {redact_url(url)}: {exc}"
        ) from exc


def _connection_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"socket_timeout": DEFAULT_SOCKET_TIMEOUT, "decode_responses": False}
    for option, keyword in _REDIS_KWARGS.items():
        if options.get(option) is not None:
            kwargs[keyword] = options[option]
    provider = options.get("redis_backend_credential_provider")
    if isinstance(provider, str):
        from celeriac.utils.imports import symbol_by_name

        provider = symbol_by_name(provider)
        provider = provider() if isinstance(provider, type) else provider
    if provider is not None:
        kwargs["credential_provider"] = provider
    kwargs.update(_ssl_kwargs(options.get("redis_backend_use_ssl")))
    return kwargs


def _ssl_kwargs(use_ssl: Any) -> dict[str, Any]:
    """redis-py keywords for ``redis_backend_use_ssl`` (True or a dict of ``ssl_*`` options)."""
    if not use_ssl:
        return {}
    if use_ssl is True:
        return {"connection_class": redis.SSLConnection}
    if not isinstance(use_ssl, dict):
        raise ImproperlyConfigured(f"redis_backend_use_ssl must be True or a dict: {use_ssl!r}")
    unknown = [name for name in use_ssl if not str(name).startswith("ssl_")]
    if unknown:
        raise ImproperlyConfigured(
            f"redis_backend_use_ssl takes redis-py ssl_* options, not {', '.join(unknown)}"
        )
    kwargs = dict(use_ssl, connection_class=redis.SSLConnection)
    if "ssl_cert_reqs" in kwargs:
        kwargs["ssl_cert_reqs"] = _cert_reqs(kwargs["ssl_cert_reqs"])
    return kwargs


def _cert_reqs(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return _CERT_REQS[value.lower()]
        except KeyError:
            raise ImproperlyConfigured(
                f"ssl_cert_reqs must be one of CERT_REQUIRED, CERT_OPTIONAL, CERT_NONE: {value!r}"
            )
    return value  # an ssl.VerifyMode


def _ssl_query(url: str) -> tuple[str, dict[str, Any]]:
    """Take the TLS options out of a URL's query (Celery spells ``ssl_cert_reqs`` its way)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ssl: dict[str, Any] = {name: unquote(value) for name, value in query if name.startswith("ssl_")}
    if not ssl:
        return url, {}
    if "ssl_cert_reqs" in ssl:
        ssl["ssl_cert_reqs"] = _cert_reqs(ssl["ssl_cert_reqs"])
    if "ssl_check_hostname" in ssl:
        ssl["ssl_check_hostname"] = ssl["ssl_check_hostname"].lower() in ("1", "true", "yes")
    rest = urlencode([(name, value) for name, value in query if not name.startswith("ssl_")])
    return _with_query(url, rest), ssl


def _socket_url(rest: str) -> str:
    """``redis+socket:///path?virtual_host=N`` (Celery's) as redis-py's ``unix://`` URL."""
    url = "unix://" + rest
    query = [
        ("db" if name == "virtual_host" else name, value)
        for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True)
    ]
    return _with_query(url, urlencode(query))


def _with_query(url: str, query: str) -> str:
    """``url`` with its query string replaced (urlunsplit would drop ``unix://``'s slashes)."""
    base = url.split("?", 1)[0]
    return f"{base}?{query}" if query else base


def _sentinel_pool(
    url: str, kwargs: dict[str, Any], options: dict[str, Any]
) -> redis.ConnectionPool:
    master_name = options.get("master_name")
    if not master_name:
        raise ImproperlyConfigured(
            "A sentinel:// result backend needs the master's name: set "
            "result_backend_transport_options = {'master_name': 'mymaster'}."
        )
    hosts: list[tuple[str, int]] = []
    for part in url.split(";"):
        parsed = urlsplit(part.strip())
        if parsed.scheme.lower() != "sentinel" or not parsed.hostname:
            raise ImproperlyConfigured(f"Invalid sentinel URL part {redact_url(part)!r}")
        hosts.append((parsed.hostname, parsed.port or 26379))
        if parsed.password and "password" not in kwargs:
            kwargs["password"] = unquote(parsed.password)
        if parsed.username and "username" not in kwargs:
            kwargs["username"] = unquote(parsed.username)
        if parsed.path.strip("/") and "db" not in kwargs:
            kwargs["db"] = int(parsed.path.strip("/"))
    if kwargs.pop("connection_class", None) is not None:
        kwargs["ssl"] = True
    max_connections = kwargs.pop("max_connections", None)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        hosts, sentinel_kwargs=options.get("sentinel_kwargs"), **kwargs
    )
    if max_connections is not None:
        kwargs["max_connections"] = max_connections
    return redis.sentinel.SentinelConnectionPool(  # type: ignore[no-untyped-call]
        master_name, sentinel, **kwargs
    )
