"""The ``rpc://`` result backend: results travel back to the caller as AMQP messages.

Celery's layout, so either side can be Celery:

- the caller owns one reply queue, named by its ``thread_oid`` (the value every task
  message it sends carries as ``reply_to``), declared before its first task is published:
  not durable, auto-delete, ``x-expires`` = ``result_expires``;
- the worker publishes each state of a task (STARTED, RETRY, custom states, the final one)
  to the nameless exchange with routing key = the request's ``reply_to`` and
  ``correlation_id`` = the task id; transient unless ``result_persistent``. The body is the
  same result record the other backends store;
- the caller consumes its reply queue and keeps the latest record of each task in memory
  (a ready state is never replaced by a later message).

As in Celery, a result can only be read by the process that sent the task, nothing is
stored on the server, and groups cannot be saved (use a storing backend for chords).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import amqp

from celeriac import states
from celeriac.backends.base import (
    RecordWrite,
    ResultBackend,
    StoredRecord,
    StoreRequest,
    replaces,
)
from celeriac.brokers.amqp_connection import CONNECTION_ERRORS, ConnectionSettings

__all__ = ["RPCBackend"]

logger = logging.getLogger("celeriac.backends.rpc")

E_NO_GROUPS = (
    "The rpc:// result backend cannot save groups (results go to the caller only): "
    "use a backend that stores results (redis://, sqlite://) for chords and saved groups."
)


class RPCBackend(ResultBackend):
    """Results as messages on the broker (``result_backend = 'rpc://'``).

    Options (set by the app): ``broker_url`` (the AMQP broker results travel through),
    ``reply_to`` (this caller's reply queue), ``persistent`` (``result_persistent``),
    ``conf`` (the app's settings, for the connection settings).
    """

    schemes: ClassVar[tuple[str, ...]] = ("rpc",)
    option_names: ClassVar[frozenset[str]] = frozenset(
        {"broker_url", "broker_use_ssl", "reply_to", "persistent", "conf"}
    )
    cleanup_interval = None

    def _setup(self) -> None:
        from celeriac.brokers.amqp import _Publisher
        from celeriac.brokers.amqp_topology import Topology

        options = self.options
        url = str(options.get("broker_url") or "amqp://guest:guest@localhost:5672//")
        ssl_option = {"broker_use_ssl": options.get("broker_use_ssl")}
        self._settings = ConnectionSettings.parse(url, ssl_option, options.get("conf"))
        self._publisher = _Publisher(self._settings, Topology())
        self.reply_to = str(options.get("reply_to") or "")
        self.delivery_mode = 2 if options.get("persistent") else 1
        self._records: dict[str, StoredRecord] = {}
        self._states: dict[str, str] = {}
        self._cond = threading.Condition()
        self._token = 0
        self._reader: _ReplyReader | None = None
        self._reader_lock = threading.Lock()

    # --- the caller's side -------------------------------------------------------------------

    def on_task_call(self) -> None:
        """Declare the reply queue and start reading it, before a task is published."""
        if self._reader is None:
            with self._reader_lock:
                if self._reader is None and self.reply_to:
                    self._reader = _ReplyReader(self, self._settings, self.reply_to)
                    self._reader.start()

    def queue_arguments(self) -> dict[str, Any]:
        return {"x-expires": int(self.expires * 1000)} if self.expires else {}

    def _receive(self, raw: amqp.Message) -> None:
        props = raw.properties
        task_id = props.get("correlation_id")
        body = raw.body if isinstance(raw.body, bytes) else bytes(raw.body)
        record = StoredRecord(
            body,
            props.get("content_type") or "application/json",
            props.get("content_encoding") or "utf-8",
        )
        state = _peek_state(self, record)
        if not task_id:
            return
        with self._cond:
            stored = self._states.get(task_id)
            if stored is None or replaces(stored, state):
                self._records[task_id] = record
                self._states[task_id] = state
            self._token += 1
            self._cond.notify_all()

    def _load_many(self, task_ids: Sequence[str]) -> dict[str, StoredRecord]:
        self.on_task_call()
        with self._cond:
            return {tid: self._records[tid] for tid in task_ids if tid in self._records}

    def _change_token(self) -> int:
        return self._token

    def _wait_change(self, token: int, timeout: float) -> None:
        with self._cond:
            if self._token == token:
                self._cond.wait(timeout)

    def _delete(self, task_id: str) -> None:
        with self._cond:
            self._records.pop(task_id, None)
            self._states.pop(task_id, None)

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()
        with self._publisher.lock:
            self._publisher.reset()

    # --- the worker's side -------------------------------------------------------------------

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        *,
        traceback: str | None = None,
        request: Any = None,
    ) -> None:
        """Send the state to the caller (nothing is sent for a call without ``reply_to``)."""
        item = StoreRequest(task_id, result, state, traceback, request)
        self._send([(item, self._prepare(item))])

    def store_results(self, items: Sequence[StoreRequest]) -> None:
        """Send several states in one batch (one confirm wait)."""
        self._send([(item, self._prepare_or_failure(item)) for item in items])

    def _send(self, writes: Sequence[tuple[StoreRequest, RecordWrite]]) -> None:
        messages = []
        for item, write in writes:
            reply_to = getattr(item.request, "reply_to", None)
            if not reply_to:
                continue
            correlation_id = getattr(item.request, "correlation_id", None) or item.task_id
            raw = amqp.Message(
                write.payload,
                content_type=write.content_type,
                content_encoding=write.content_encoding,
                correlation_id=correlation_id,
                delivery_mode=self.delivery_mode,
            )
            messages.append((str(reply_to), raw))
        if not messages:
            return
        publisher = self._publisher

        def send(channel: Any) -> None:
            for reply_to, raw in messages:
                publisher.publish(channel, raw, "", reply_to)
            publisher.wait_confirms()

        publisher.run(send, "send results")

    def _store(self, items: list[RecordWrite]) -> None:
        raise NotImplementedError("rpc:// sends results with store_result(s) only")

    # --- what rpc:// does not do -------------------------------------------------------------

    def _store_group(self, group_id: str, record: StoredRecord, expires_at: float | None) -> None:
        raise NotImplementedError(E_NO_GROUPS)

    def _load_group(self, group_id: str) -> StoredRecord | None:
        raise NotImplementedError(E_NO_GROUPS)

    def _delete_group(self, group_id: str) -> None:
        raise NotImplementedError(E_NO_GROUPS)

    def _set_chord_size(self, group_id: str, size: int) -> None:
        raise NotImplementedError(E_NO_GROUPS)

    def _extend_chord(self, group_id: str, count: int) -> int:
        raise NotImplementedError(E_NO_GROUPS)

    def _add_chord_part(
        self, group_id: str, part: bytes, index: int | None, size: int | None
    ) -> list[bytes] | None:
        raise NotImplementedError(E_NO_GROUPS)

    def _delete_chord(self, group_id: str) -> None:
        raise NotImplementedError(E_NO_GROUPS)

    def _cleanup(self, now: float) -> int:
        return 0


def _peek_state(backend: RPCBackend, record: StoredRecord) -> str:
    try:
        return str(backend._decode(record, "result").get("status") or states.PENDING)
    except Exception:
        return states.PENDING


class _ReplyReader:
    """Consumes the caller's reply queue on its own connection and thread (reconnecting)."""

    def __init__(self, backend: RPCBackend, settings: ConnectionSettings, queue: str) -> None:
        self._backend = backend
        self._settings = settings
        self._queue = queue
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._connection: amqp.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="rpc-results", daemon=True)

    def start(self) -> None:
        """Start, and return once the reply queue is declared (or after a bounded wait)."""
        self._connect()  # in the caller: the queue must exist before the task is sent
        self._thread.start()

    def _connect(self) -> None:
        connection = self._settings.open("results", heartbeat=True)
        channel = connection.channel()
        channel.auto_decode = False
        channel.queue_declare(
            self._queue,
            durable=False,
            auto_delete=True,
            arguments=self._backend.queue_arguments() or None,
        )
        channel.basic_consume(self._queue, no_ack=True, callback=self._backend._receive)
        self._connection = connection

    def _run(self) -> None:
        while not self._stopped.is_set():
            connection = self._connection
            try:
                if connection is None:
                    self._connect()
                    continue
                connection.heartbeat_tick()
                connection.drain_events(timeout=1.0)
            except TimeoutError:
                continue
            except (*CONNECTION_ERRORS, amqp.exceptions.AMQPError) as exc:
                if self._stopped.is_set():
                    return
                if connection is not None:
                    logger.warning("rpc:// result connection lost (%r); reconnecting", exc)
                self._drop()
                time.sleep(1.0)

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.collect()
            except Exception:
                pass

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=3.0)
        self._drop()
