"""Result backends, chosen by URL scheme: :func:`backend_for_url`.

==========================================  ==========================================
URL                                         backend
==========================================  ==========================================
``sqlite:///path``, ``db+sqlite:///path``   :class:`~celeriac.backends.sqlite.SQLiteBackend`
``memory://``, ``cache+memory://``          :class:`~celeriac.backends.memory.MemoryBackend`
``redis://``, ``rediss://``,                :class:`~celeriac.backends.redis.RedisBackend`
``redis+socket://``, ``sentinel://``        (needs redis-py: ``pip install celeriac[redis]``)
``rpc://``                                  :class:`~celeriac.backends.rpc.RPCBackend`
                                            (replies over RabbitMQ; ``celeriac[amqp]``)
``disabled`` or no URL                      :class:`DisabledBackend` (results are not kept)
==========================================  ==========================================

Each backend module is imported only when its scheme is used.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from celeriac.backends.base import (
    DEFAULT_EXPIRES,
    RecordWrite,
    ResultBackend,
    StoredRecord,
    StoreRequest,
    redact_url,
)
from celeriac.exceptions import ImproperlyConfigured

__all__ = ["DisabledBackend", "ResultBackend", "StoreRequest", "backend_for_url"]

#: Schemes celeriac serves, as shown in error messages.
SUPPORTED = (
    "sqlite:///path",
    "db+sqlite:///path",
    "memory://",
    "cache+memory://",
    "redis://",
    "rediss://",
    "redis+socket://",
    "sentinel://",
    "rpc://",
    "disabled",
)

#: Schemes served by the Redis backend (imported only when one is used).
_REDIS = ("redis", "rediss", "redis+socket", "sentinel")

#: Celery result backends that celeriac will serve later.
_PLANNED: tuple[str, ...] = ()

E_NO_BACKEND = (
    "No result backend is configured. Set the result_backend setting (for example "
    "result_backend = 'sqlite:///celeriac.db') to store and read task results; "
    "see the documentation for the supported backends."
)


class DisabledBackend(ResultBackend):
    """The backend used when results are turned off: stores are no-ops, reads raise.

    Reading (``AsyncResult.get()``, ``state``, ``wait_for``...) raises
    ``NotImplementedError`` with a message telling the user to set ``result_backend``,
    as Celery does.
    """

    schemes = ("disabled",)
    cleanup_interval = None

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        *,
        traceback: str | None = None,
        request: Any = None,
    ) -> None:
        """Do nothing: results are not kept."""

    def store_results(self, items: Sequence[StoreRequest]) -> None:
        """Do nothing: results are not kept."""

    def save_group(self, group_id: str, result_tuple: Any) -> None:
        """Do nothing: results are not kept."""

    def _store(self, items: list[RecordWrite]) -> None:
        pass

    def _load_many(self, task_ids: Sequence[str]) -> dict[str, StoredRecord]:
        _disabled()

    def _delete(self, task_id: str) -> None:
        pass

    def _store_group(self, group_id: str, record: StoredRecord, expires_at: float | None) -> None:
        pass

    def _load_group(self, group_id: str) -> StoredRecord | None:
        _disabled()

    def _delete_group(self, group_id: str) -> None:
        pass

    def _cleanup(self, now: float) -> int:
        return 0

    def _change_token(self) -> int:
        _disabled()

    def _set_chord_size(self, group_id: str, size: int) -> None:
        _no_chords()

    def _extend_chord(self, group_id: str, count: int) -> int:
        _no_chords()

    def _add_chord_part(
        self, group_id: str, part: bytes, index: int | None, size: int | None
    ) -> list[bytes] | None:
        _no_chords()

    def _delete_chord(self, group_id: str) -> None:
        _no_chords()

    def _wait_change(self, token: int, timeout: float) -> None:
        _disabled()


def _disabled() -> NoReturn:
    raise NotImplementedError(E_NO_BACKEND)


def _no_chords() -> NoReturn:
    raise NotImplementedError(
        "Starting chords requires a result backend to be configured, but none have been "
        "configured (set result_backend)."
    )


def backend_for_url(
    url: str | None,
    *,
    serializer: str = "json",
    accept: Iterable[str] | None = ("json",),
    expires: float | dt.timedelta | None = DEFAULT_EXPIRES,
    extended: bool = False,
    options: dict[str, Any] | None = None,
) -> ResultBackend:
    """The result backend for ``url`` (``result_backend``), created with these options.

    Raises:
        ImproperlyConfigured: the URL's scheme is unknown, or names a backend celeriac
            does not support yet.
    """
    url = url or "disabled"
    cls = _class_for(url)
    return cls(
        url,
        serializer=serializer,
        accept=accept,
        expires=expires,
        extended=extended,
        options=options,
    )


def _class_for(url: str) -> type[ResultBackend]:
    scheme = url.partition("://")[0].lower()
    if scheme == "disabled":
        return DisabledBackend
    if scheme in ("memory", "cache+memory"):
        from celeriac.backends.memory import MemoryBackend

        return MemoryBackend
    if scheme in ("sqlite", "db+sqlite"):
        from celeriac.backends.sqlite import SQLiteBackend

        return SQLiteBackend
    if scheme in _REDIS:
        return _redis_backend()
    if scheme == "rpc":
        return _rpc_backend()
    if scheme in _PLANNED or scheme.startswith("db+"):
        raise ImproperlyConfigured(
            f"celeriac does not support the {scheme} result backend yet "
            f"(supported: {', '.join(SUPPORTED)})."
        )
    raise ImproperlyConfigured(_unknown_message(url, scheme))


def _redis_backend() -> type[ResultBackend]:
    try:
        from celeriac.backends.redis import RedisBackend
    except ModuleNotFoundError as exc:
        if exc.name != "redis" and not (exc.name or "").startswith("redis."):
            raise
        raise ImproperlyConfigured(
            "The Redis result backend needs redis-py: pip install celeriac[redis]"
        ) from exc
    return RedisBackend


def _rpc_backend() -> type[ResultBackend]:
    try:
        from celeriac.backends.rpc import RPCBackend
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("amqp"):
            raise
        raise ImproperlyConfigured(
            "The rpc:// result backend needs py-amqp: pip install celeriac[amqp]"
        ) from exc
    return RPCBackend


def _unknown_message(url: str, scheme: str) -> str:
    known = ["sqlite", "db+sqlite", "memory", "cache+memory", *_REDIS, "rpc", "disabled"]
    close = difflib.get_close_matches(scheme, known, n=1)
    hint = f" Did you mean {close[0]}://?" if close else ""
    return (
        f"Unknown result backend URL {redact_url(url)!r}: celeriac supports "
        f"{', '.join(SUPPORTED)}.{hint}"
    )
