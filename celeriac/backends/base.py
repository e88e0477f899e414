"""The result-backend seam: Celery's result records, stored and read through a few primitives.

:class:`ResultBackend` does the bookkeeping once: it builds Celery's result record (the
``meta`` dict), encodes exceptions as ``{exc_type, exc_message, exc_module}``, serializes,
rebuilds exceptions on read (refusing classes that are not exceptions), parses
``date_done``, waits for results and cleans up expired records. Implementations provide the
``_underscored`` primitives: store records (never replacing a SUCCESS, atomically), load
records, delete, and a change token to wait on.

Every implementation passes :mod:`celeriac.testing.backend_suite`.
"""

from __future__ import annotations

import abc
import datetime as dt
import functools
import inspect
import logging
import sys
import time
import traceback as tb
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, NamedTuple

from celeriac import states
from celeriac.exceptions import (
    DecodeError,
    EncodeError,
    ImproperlyConfigured,
    OperationalError,
    SecurityError,
    TimeoutError,
)
from celeriac.serialization import codec_for, dumps, loads, normalize_accept

__all__ = [
    "ChordPart",
    "ChordPartDone",
    "RecordWrite",
    "ResultBackend",
    "StoreRequest",
    "StoredRecord",
    "replaces",
]

logger = logging.getLogger(__name__)

#: Celery's result expiry default (``result_expires``): one day.
DEFAULT_EXPIRES = 86400.0

#: Request attributes copied into the record with ``result_extended`` (record key, attribute).
_EXTENDED_FIELDS = (
    ("name", "task"),
    ("args", "args"),
    ("kwargs", "kwargs"),
    ("worker", "hostname"),
    ("retries", "retries"),
)

#: Module named on stand-in exception classes when a record names no module (as Celery does).
_STAND_IN_MODULE = "celeriac.exceptions"


@dataclass(frozen=True, slots=True)
class StoreRequest:
    """One result to store with :meth:`ResultBackend.store_results`.

    Attributes:
        task_id: the task's id.
        result: the return value, an exception (exception states) or a custom state's meta.
        state: the state name (``SUCCESS``, ``FAILURE``, ``STARTED``, custom...).
        traceback: the formatted traceback of a failure.
        request: the task's request (``parent_id``, ``group_id``, extended fields are read from it).
    """

    task_id: str
    result: Any
    state: str
    traceback: str | None = None
    request: Any = None


class StoredRecord(NamedTuple):
    """A serialized result record as it rests in storage."""

    payload: bytes
    content_type: str
    content_encoding: str


class RecordWrite(NamedTuple):
    """One record for :meth:`ResultBackend._store`.

    Attributes:
        task_id: the record's key.
        state: the record's status (storage compares it with SUCCESS).
        payload: the serialized meta.
        content_type: the serializer's MIME type.
        content_encoding: the serializer's text encoding (``binary`` for bytes codecs).
        expires_at: UNIX time after which the record is treated as missing, or None.
    """

    task_id: str
    state: str
    payload: bytes
    content_type: str
    content_encoding: str
    expires_at: float | None


class ResultBackend(abc.ABC):
    """Abstract result backend. Instances are safe to call from several threads at once.

    Args:
        url: the backend URL (its scheme chose the class).
        serializer: the codec results are stored with (``result_serializer``).
        accept: codec names or MIME types a read may decode (``result_accept_content``);
            None accepts every registered codec. A record in another content type raises
            :class:`~celeriac.exceptions.ContentDisallowed` on read.
        expires: seconds a record lives (``result_expires``); None or 0 keeps it forever.
        extended: store the task's name, args, kwargs, worker, retries and queue
            (``result_extended``).
        options: backend-specific options (``result_backend_transport_options``); each
            class lists the names it accepts in :attr:`option_names`.

    Raises:
        ImproperlyConfigured: an unknown serializer or option.
    """

    #: URL schemes this class serves (``backend_for_url`` dispatches on them).
    schemes: ClassVar[tuple[str, ...]] = ()
    #: The names ``options`` may hold.
    option_names: ClassVar[frozenset[str]] = frozenset()
    #: Seconds between opportunistic cleanups run during stores; None disables them
    #: (for storage that expires records by itself).
    cleanup_interval: ClassVar[float | None] = 60.0

    def __init__(
        self,
        url: str,
        *,
        serializer: str = "json",
        accept: Iterable[str] | None = ("json",),
        expires: float | dt.timedelta | None = DEFAULT_EXPIRES,
        extended: bool = False,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.serializer = _check_serializer(serializer)
        self.accept = None if accept is None else normalize_accept(accept)
        self.expires = _seconds_or_none(expires)
        self.extended = extended
        self.options = self._check_options(dict(options or {}))
        self._next_cleanup = 0.0
        self._setup()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redact_url(self.url)}>"

    def _setup(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Check the URL and create storage handles (called last in ``__init__``)."""

    @classmethod
    def _check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        for name in options:
            if name not in cls.option_names:
                raise ImproperlyConfigured(_unknown_option_message(cls, name))
        return options

    # --- storing ---------------------------------------------------------------------------

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        *,
        traceback: str | None = None,
        request: Any = None,
    ) -> None:
        """Store a task's state and result as Celery's result record.

        A stored SUCCESS is never replaced: a later store for the same id is ignored.

        Raises:
            EncodeError: the result cannot be serialized (nothing is stored; the worker
                then stores a FAILURE carrying this error).
        """
        write = self._prepare(StoreRequest(task_id, result, state, traceback, request))
        self._store([write])
        self._after_store()

    def store_results(self, items: Sequence[StoreRequest]) -> None:
        """Store several results in one round trip (one transaction where storage has them).

        An item whose result cannot be serialized does not fail the batch: the other items
        are stored, and that item is stored as FAILURE carrying the
        :class:`~celeriac.exceptions.EncodeError` (with its traceback). The method returns
        normally in that case.
        """
        if not items:
            return
        self._store([self._prepare_or_failure(item) for item in items])
        self._after_store()

    def _prepare_or_failure(self, item: StoreRequest) -> RecordWrite:
        try:
            return self._prepare(item)
        except EncodeError as exc:
            failure = replace(item, result=exc, state=states.FAILURE, traceback=_format(exc))
            try:
                return self._prepare(failure)
            except EncodeError:
                # Even the request's own fields cannot be encoded: keep the failure itself.
                return self._prepare(replace(failure, request=None))

    def _prepare(self, item: StoreRequest) -> RecordWrite:
        meta = self._meta_for(item)
        payload, content_type, content_encoding = self._encode_meta(meta)
        return RecordWrite(
            item.task_id, item.state, payload, content_type, content_encoding, self._expires_at()
        )

    def _meta_for(self, item: StoreRequest) -> dict[str, Any]:
        result = item.result
        if item.state in states.EXCEPTION_STATES and isinstance(result, BaseException):
            result = self.encode_exception(result)
        meta: dict[str, Any] = {
            "status": item.state,
            "result": result,
            "traceback": item.traceback,
            "children": _children(item.request),
            "date_done": _utcnow().isoformat() if item.state in states.READY_STATES else None,
            "task_id": item.task_id,
        }
        if item.request is not None:
            meta.update(self._request_fields(item.request))
        return meta

    def _request_fields(self, request: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        parent_id = getattr(request, "parent_id", None)
        # Celery's request calls the group id ``group``; celeriac's may call it ``group_id``.
        group_id = getattr(request, "group_id", None) or getattr(request, "group", None)
        if parent_id is not None:
            fields["parent_id"] = parent_id
        if group_id is not None:
            fields["group_id"] = group_id
        if self.extended:
            for key, attribute in _EXTENDED_FIELDS:
                fields[key] = getattr(request, attribute, None)
            fields["queue"] = _routing_key(getattr(request, "delivery_info", None))
        return fields

    def _encode_meta(self, meta: dict[str, Any]) -> tuple[bytes, str, str]:
        try:
            return dumps(meta, self.serializer)
        except EncodeError:
            # Extended args/kwargs that cannot be encoded are kept as their repr, so a
            # task's arguments never make its result unstorable.
            if not self._repr_unencodable_fields(meta, ("args", "kwargs")):
                raise
        return dumps(meta, self.serializer)

    def _repr_unencodable_fields(self, meta: dict[str, Any], keys: Sequence[str]) -> bool:
        changed = False
        for key in keys:
            if key in meta and not self._encodable(meta[key]):
                meta[key] = repr(meta[key])
                changed = True
        return changed

    def _encodable(self, value: Any) -> bool:
        try:
            dumps(value, self.serializer)
        except EncodeError:
            return False
        return True

    def _expires_at(self) -> float | None:
        return None if self.expires is None else time.time() + self.expires

    def _after_store(self) -> None:
        """Delete expired records now and then (at most once per ``cleanup_interval``)."""
        interval = self.cleanup_interval
        now = time.monotonic()
        if interval is None or now < self._next_cleanup:
            return
        self._next_cleanup = now + interval
        try:
            self._cleanup(time.time())
        except OperationalError as exc:
            # The store itself succeeded; a busy file only postpones the cleanup.
            logger.warning("Result cleanup skipped: %s", exc)

    # --- exceptions ------------------------------------------------------------------------

    def encode_exception(self, exc: BaseException) -> dict[str, Any]:
        """Celery's portable form of an exception: ``{exc_type, exc_message, exc_module}``.

        Arguments the serializer cannot encode are replaced by their ``repr``, so encoding
        an exception never fails.
        """
        exc_type = type(exc)
        try:
            args = list(exc.args)
        except TypeError:
            args = [repr(exc.args)]
        return {
            "exc_type": exc_type.__qualname__,
            "exc_message": [arg if self._encodable(arg) else repr(arg) for arg in args],
            "exc_module": _wire_module(exc_type),
        }

    def exception_to_python(self, meta_result: Any) -> BaseException:
        """Rebuild an exception from :meth:`encode_exception`'s form.

        The class is looked up in modules this process has already imported (as Celery
        does): importing a module named by a stored record would run that module's code.
        A class that cannot be found, or that cannot be constructed from the stored
        arguments, is replaced by a stand-in ``Exception`` subclass with the same name
        and module. A value that is not an encoded exception (``update_state(state=FAILURE,
        meta={...})``) is wrapped in a plain ``Exception``.

        Raises:
            SecurityError: the record names something that is not an exception class.
        """
        if isinstance(meta_result, BaseException):
            return meta_result
        if not _is_encoded_exception(meta_result):
            return Exception(meta_result)
        exc_type: str = meta_result["exc_type"]
        exc_module = meta_result.get("exc_module")
        module = exc_module if isinstance(exc_module, str) and exc_module else None
        message = meta_result.get("exc_message", [])
        args = tuple(message) if isinstance(message, (list, tuple)) else (message,)
        cls = _mirrored_class(module, exc_type) or _find_class(module, exc_type)
        if cls is None:
            return _stand_in(module or _STAND_IN_MODULE, exc_type)(*args)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            where = exc_type if module is None else f"{module}.{exc_type}"
            raise SecurityError(
                f"Expected an exception class, got {where} with payload {message!r:.200}"
            )
        try:
            return cls(*args)
        except Exception:
            return _stand_in(module or _STAND_IN_MODULE, exc_type)(*args)

    # --- reading ---------------------------------------------------------------------------

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        """The task's result record, decoded; PENDING when there is none (or it expired).

        ``result`` is an exception instance for exception states and ``date_done`` a
        timezone-aware datetime (or None).

        Raises:
            ContentDisallowed: the record's content type is not accepted.
            DecodeError: the record cannot be decoded.
            SecurityError: the record names a non-exception class as its exception.
        """
        return self.get_many([task_id])[task_id]

    def get_many(self, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The records of several tasks (one round trip), keyed by id in the order given."""
        ids = list(dict.fromkeys(task_ids))
        records = self._load_many(ids) if ids else {}
        return {
            task_id: self._decode_meta(task_id, records[task_id])
            if task_id in records
            else pending_meta(task_id)
            for task_id in ids
        }

    def _decode_meta(self, task_id: str, record: StoredRecord) -> dict[str, Any]:
        meta = self._decode(record, f"result of task {task_id}")
        meta.setdefault("status", states.PENDING)
        meta.setdefault("result", None)
        meta.setdefault("traceback", None)
        meta["children"] = meta.get("children") or []
        meta["date_done"] = parse_date(meta.get("date_done"))
        meta.setdefault("task_id", task_id)
        if meta["status"] in states.EXCEPTION_STATES and meta["result"] is not None:
            meta["result"] = self.exception_to_python(meta["result"])
        return meta

    def _decode(self, record: StoredRecord, what: str) -> dict[str, Any]:
        meta = loads(
            record.payload, record.content_type, record.content_encoding, accept=self.accept
        )
        if not isinstance(meta, dict):
            raise DecodeError(f"The stored {what} is not a result record: {meta!r:.200}")
        return meta

    def wait_for(
        self, task_id: str, timeout: float | None = None, interval: float = 0.5
    ) -> dict[str, Any]:
        """Block until the task is ready (SUCCESS, FAILURE, REVOKED) and return its record.

        Wakes as soon as storage reports a change (within milliseconds, also for results
        stored by other processes) and re-reads the record at least every ``interval``
        seconds. With ``timeout=None`` it waits as long as it takes.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self._begin_wait()
        while True:
            token = self._change_token()
            meta = self.get_task_meta(task_id)
            if meta["status"] in states.READY_STATES:
                return meta
            remaining = interval if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("The operation timed out.")
            self._wait_change(token, min(interval, remaining))

    # --- forgetting and cleaning up --------------------------------------------------------

    def forget(self, task_id: str) -> None:
        """Delete the task's record (it reads as PENDING afterwards)."""
        self._delete(task_id)

    def cleanup(self) -> int:
        """Delete expired records (results and groups); returns how many were deleted."""
        return self._cleanup(time.time())

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release this thread's connections (the backend stays usable; it reopens them)."""

    # --- groups ----------------------------------------------------------------------------

    def save_group(self, group_id: str, result_tuple: Any) -> None:
        """Store a group's result tuple (``GroupResult.as_tuple()``) under the group id.

        A GroupResult-like object is accepted too (its ``as_tuple()`` is stored).

        Raises:
            EncodeError: the tuple cannot be serialized.
        """
        as_tuple = getattr(result_tuple, "as_tuple", None)
        if callable(as_tuple):
            result_tuple = as_tuple()
        meta = {"result": result_tuple, "date_done": _utcnow().isoformat()}
        payload, content_type, content_encoding = dumps(meta, self.serializer)
        record = StoredRecord(payload, content_type, content_encoding)
        self._store_group(group_id, record, self._expires_at())
        self._after_store()

    def restore_group(self, group_id: str) -> dict[str, Any] | None:
        """The group's stored meta (``result`` is the tuple), or None if there is none."""
        record = self._load_group(group_id)
        if record is None:
            return None
        meta = self._decode(record, f"group {group_id}")
        meta.setdefault("result", None)
        meta["date_done"] = parse_date(meta.get("date_done"))
        return meta

    def delete_group(self, group_id: str) -> None:
        """Delete the group's stored meta."""
        self._delete_group(group_id)

    # --- chords ----------------------------------------------------------------------------

    def set_chord_size(self, group_id: str, size: int) -> None:
        """Record a chord's header size; the sending client calls it before the header goes."""
        self._set_chord_size(group_id, int(size))

    def add_to_chord(self, group_id: str, count: int = 1) -> int:
        """Count ``count`` more header parts for a running chord; returns the extra parts."""
        return self._extend_chord(group_id, int(count))

    def chord_part_done(
        self,
        group_id: str,
        task_id: str,
        state: str,
        result: Any,
        *,
        index: int | None = None,
        size: int | None = None,
    ) -> list[ChordPart] | None:
        """Record a finished chord header task; returns every part once the last is in.

        The count and the completion check are one atomic step in the backend, so exactly
        one caller across all processes gets the parts (and the chord's counters are
        deleted then); every other call returns None.

        Args:
            group_id: the chord header's group id.
            task_id: the finished header task.
            state: its final state.
            result: its return value, or its exception for exception states.
            index: its position in the header (``group_index``); None sorts it last.
            size: the header size to use when none was recorded.

        Returns:
            The parts in header order (exceptions rebuilt), or None while parts are missing.
        """
        done = ChordPartDone(group_id, task_id, state, result, index, size)
        return self.chord_parts_done([done])[0]

    def chord_parts_done(self, parts: Sequence[ChordPartDone]) -> list[list[ChordPart] | None]:
        """:meth:`chord_part_done` for many parts in one round trip (a worker's batch).

        Returns, for each part in order, the chord's parts when that part completed it.
        """
        writes = []
        for done in parts:
            result = done.result
            if done.state in states.EXCEPTION_STATES and isinstance(result, BaseException):
                result = self.encode_exception(result)
            payload, _, _ = dumps([1, done.task_id, done.state, result], self.serializer)
            writes.append((done.group_id, payload, done.position, done.size))
        completed = self._add_chord_parts(writes)
        return [
            None
            if payloads is None
            else [self._decode_chord_part(group_id, payload) for payload in payloads]
            for (group_id, _, _, _), payloads in zip(writes, completed, strict=True)
        ]

    def delete_chord(self, group_id: str) -> None:
        """Delete a chord's counters and parts (no error if there are none)."""
        self._delete_chord(group_id)

    def _decode_chord_part(self, group_id: str, payload: bytes) -> ChordPart:
        content_type, encoding = self._part_content_type(payload)
        part = loads(payload, content_type, encoding, accept=self.accept)
        if not (isinstance(part, list) and len(part) == 4):
            raise DecodeError(f"Chord {group_id} holds a malformed part: {part!r:.200}")
        _, task_id, state, result = part
        if state in states.EXCEPTION_STATES and result is not None:
            result = self.exception_to_python(result)
        return ChordPart(task_id, state, result)

    def _part_content_type(self, payload: bytes) -> tuple[str, str]:
        codec = codec_for(self.serializer)
        return codec.content_type, codec.content_encoding

    # --- primitives ------------------------------------------------------------------------

    @abc.abstractmethod
    def _store(self, items: list[RecordWrite]) -> None:
        """Write the records atomically (all or none), in order.

        A record whose stored status is SUCCESS (and that has not expired) is left as it
        is; the check and the write are one atomic step, never a read then a write.
        """

    @abc.abstractmethod
    def _load_many(self, task_ids: Sequence[str]) -> dict[str, StoredRecord]:
        """The stored records of ``task_ids`` (unique), leaving out missing and expired ones."""

    @abc.abstractmethod
    def _delete(self, task_id: str) -> None:
        """Delete a task's record (no error if there is none)."""

    @abc.abstractmethod
    def _store_group(self, group_id: str, record: StoredRecord, expires_at: float | None) -> None:
        """Write (or replace) a group's record."""

    @abc.abstractmethod
    def _load_group(self, group_id: str) -> StoredRecord | None:
        """A group's record, or None when missing or expired."""

    @abc.abstractmethod
    def _delete_group(self, group_id: str) -> None:
        """Delete a group's record (no error if there is none)."""

    @abc.abstractmethod
    def _cleanup(self, now: float) -> int:
        """Delete records whose ``expires_at`` is at or before ``now``; returns how many."""

    @abc.abstractmethod
    def _set_chord_size(self, group_id: str, size: int) -> None:
        """Store a chord's header size."""

    @abc.abstractmethod
    def _extend_chord(self, group_id: str, count: int) -> int:
        """Add ``count`` to a chord's extra parts; returns the new extra count."""

    @abc.abstractmethod
    def _add_chord_part(
        self, group_id: str, part: bytes, index: int | None, size: int | None
    ) -> list[bytes] | None:
        """Add a serialized part atomically; once parts == size + extra, return them all
        (by index, then arrival) and delete the chord; else None. ``size`` stands in for a
        missing stored size."""

    def _add_chord_parts(
        self, writes: Sequence[tuple[str, bytes, int | None, int | None]]
    ) -> list[list[bytes] | None]:
        """:meth:`_add_chord_part` for each ``(group_id, part, index, size)``, in order;
        backends that can do it in one round trip override it."""
        return [self._add_chord_part(*write) for write in writes]

    @abc.abstractmethod
    def _delete_chord(self, group_id: str) -> None:
        """Delete a chord's size, extra count and parts."""

    def _begin_wait(self) -> None:  # noqa: B027 - only polling backends need it
        """A caller starts waiting for a result: a polling backend may speed up."""

    @abc.abstractmethod
    def _change_token(self) -> int:
        """A number that changes whenever a record may have been stored."""

    @abc.abstractmethod
    def _wait_change(self, token: int, timeout: float) -> None:
        """Return once the change token differs from ``token``, or after ``timeout`` seconds."""


# --- helpers ---------------------------------------------------------------------------------


class ChordPartDone(NamedTuple):
    """A finished chord header task to record (see :meth:`ResultBackend.chord_parts_done`)."""

    group_id: str
    task_id: str
    state: str
    result: Any
    #: The part's position in the header (``group_index``); None sorts it last.
    position: int | None = None
    size: int | None = None


class ChordPart(NamedTuple):
    """One finished chord header task, as :meth:`ResultBackend.chord_part_done` returns it.

    Attributes:
        task_id: the header task's id.
        state: its final state.
        result: its return value, or the rebuilt exception for exception states.
    """

    task_id: str
    state: str
    result: Any


#: Where Celery keeps the exceptions that celeriac mirrors (by class name; the rest of
#: celeriac's exceptions live in ``celery.exceptions`` there). Results name Celery's home, so
#: a Celery client catches ``celery.exceptions.ChordError`` raised by a celeriac worker,
#: and a celeriac client reading them rebuilds celeriac's own class.
_CELERY_HOMES = {
    "ContentDisallowed": "kombu.exceptions",
    "DecodeError": "kombu.exceptions",
    "EncodeError": "kombu.exceptions",
    "OperationalError": "kombu.exceptions",
    "SerializationError": "kombu.exceptions",
    "SoftTimeLimitExceeded": "billiard.exceptions",
    "Terminated": "billiard.exceptions",
    "TimeLimitExceeded": "billiard.exceptions",
    "WorkerLostError": "billiard.exceptions",
}
_CELERIAC_ONLY = frozenset({"CeleriacError", "UnknownSettingError"})
_MIRROR_MODULES = frozenset({"celery.exceptions", "kombu.exceptions", "billiard.exceptions"})


def _wire_module(cls: type[BaseException]) -> str:
    """The module a result names for ``cls``: Celery's home for celeriac's mirrored ones."""
    module = cls.__module__
    if module != "celeriac.exceptions" or cls.__qualname__ in _CELERIAC_ONLY:
        return module
    return _CELERY_HOMES.get(cls.__qualname__, "celery.exceptions")


def _mirrored_class(module: str | None, name: str) -> type[BaseException] | None:
    """celeriac's class for an exception a result names by its Celery home."""
    if module not in _MIRROR_MODULES:
        return None
    from celeriac import exceptions

    cls = getattr(exceptions, name, None)
    if isinstance(cls, type) and issubclass(cls, BaseException) and name in exceptions.__all__:
        return cls
    return None


def replaces(stored: str, new: str) -> bool:
    """Whether a record in state ``new`` may replace a live one in state ``stored``.

    SUCCESS is final. FAILURE and REVOKED give way only to another finished state, so a
    late RETRY or STARTED write (a retried task's next attempt can finish before the
    previous attempt's RETRY is written) never hides how the task ended.
    """
    if stored == states.SUCCESS:
        return False
    if stored in states.READY_STATES:
        return new in states.READY_STATES
    return True


def pending_meta(task_id: str) -> dict[str, Any]:
    """The record of a task the backend knows nothing about."""
    return {
        "status": states.PENDING,
        "result": None,
        "traceback": None,
        "children": [],
        "date_done": None,
        "task_id": task_id,
    }


def parse_date(value: Any) -> dt.datetime | None:
    """A stored ``date_done`` as an aware datetime (naive values are taken as UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise DecodeError(f"Stored date_done {value!r} is not an ISO-8601 date") from exc
    if not isinstance(value, dt.datetime):
        raise DecodeError(f"Stored date_done {value!r} is not a date")
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``**`` (for messages and reprs)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:**@{host}"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _format(exc: BaseException) -> str:
    return "".join(tb.format_exception(type(exc), exc, exc.__traceback__))


def _children(request: Any) -> list[Any]:
    children = getattr(request, "children", None) if request is not None else None
    if not children:
        return []
    return [child.as_tuple() if hasattr(child, "as_tuple") else child for child in children]


def _routing_key(delivery_info: Any) -> Any:
    if isinstance(delivery_info, dict):
        return delivery_info.get("routing_key")
    return None


def _check_serializer(name: str) -> str:
    try:
        codec_for(name)
    except EncodeError as exc:
        raise ImproperlyConfigured(f"Unknown result_serializer: {exc}") from exc
    return name


def _seconds_or_none(expires: float | dt.timedelta | None) -> float | None:
    seconds = expires.total_seconds() if isinstance(expires, dt.timedelta) else expires
    return float(seconds) if seconds else None


def _unknown_option_message(cls: type[ResultBackend], name: str) -> str:
    import difflib

    known = sorted(cls.option_names)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    accepted = ", ".join(known) if known else "none"
    return f"{cls.__name__} has no option {name!r} (accepted: {accepted}).{hint}"


def _is_encoded_exception(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("exc_type"), str)
        and bool(value["exc_type"])
    )


_MISSING = object()
#: Longest dotted exc_type walked (nested classes); longer names get a stand-in.
_MAX_QUALNAME_PARTS = 8


def _find_class(module_name: str | None, qualname: str) -> object | None:
    """Walk ``qualname`` from an already-imported module, without running descriptors."""
    if module_name is None:
        return None
    target: object | None = sys.modules.get(module_name)
    parts = qualname.split(".")
    if target is None or len(parts) > _MAX_QUALNAME_PARTS:
        return None
    for index, part in enumerate(parts):
        if index and not isinstance(target, type):
            return None  # only classes nest inside the first name
        target = inspect.getattr_static(target, part, _MISSING)
        if target is _MISSING:
            return None
    return target


@functools.lru_cache(maxsize=256)
def _stand_in(module: str, qualname: str) -> type[Exception]:
    """An Exception subclass named like a class this process cannot find (cached)."""
    name = qualname.rsplit(".", 1)[-1]
    return type(name, (Exception,), {"__module__": module, "__qualname__": qualname})
