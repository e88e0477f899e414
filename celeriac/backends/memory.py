"""The in-process result backend (``memory://``), for tests and eager runs.

Every instance created with the same URL in one process shares one store, so a worker
thread and the client in a test see the same results. Records are kept serialized, as a
real backend keeps them: a value that cannot be encoded fails here too, and what comes back
is a copy. :meth:`MemoryBackend.reset_all` empties every store between tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from celeriac import states
from celeriac.backends.base import RecordWrite, ResultBackend, StoredRecord, replaces

__all__ = ["MemoryBackend"]


@dataclass(slots=True)
class _Entry:
    state: str
    record: StoredRecord
    expires_at: float | None

    def live(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass
class _Chord:
    """A running chord: its header size, parts added later, and the parts finished so far."""

    size: int | None = None
    extra: int = 0
    parts: list[tuple[float, int, bytes]] = field(default_factory=list)


@dataclass
class _Store:
    """The records behind one URL, guarded by one condition (which also wakes waiters)."""

    results: dict[str, _Entry] = field(default_factory=dict)
    groups: dict[str, _Entry] = field(default_factory=dict)
    chords: dict[str, _Chord] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)
    version: int = 0

    def bump(self) -> None:
        """Record a change and wake every waiter; the caller holds ``changed``."""
        self.version += 1
        self.changed.notify_all()


_STORES: dict[str, _Store] = {}
_STORES_LOCK = threading.Lock()


def _store_for(url: str) -> _Store:
    # memory://x and cache+memory://x name the same store.
    key = url.removeprefix("cache+")
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = _Store()
        return store


class MemoryBackend(ResultBackend):
    """Results kept in this process, shared by every instance with the same URL."""

    schemes = ("memory", "cache+memory")

    _shared: _Store

    def _setup(self) -> None:
        self._shared = _store_for(self.url)

    @staticmethod
    def reset_all() -> None:
        """Empty every memory store in this process (instances stay connected to theirs)."""
        with _STORES_LOCK:
            stores = list(_STORES.values())
        for store in stores:
            with store.changed:
                store.results.clear()
                store.groups.clear()
                store.chords.clear()
                store.bump()

    # --- primitives ------------------------------------------------------------------------

    def _store(self, items: list[RecordWrite]) -> None:
        now = self._now()
        shared = self._shared
        with shared.changed:
            for item in items:
                current = shared.results.get(item.task_id)
                if current and current.live(now) and not replaces(current.state, item.state):
                    continue
                record = StoredRecord(item.payload, item.content_type, item.content_encoding)
                shared.results[item.task_id] = _Entry(item.state, record, item.expires_at)
            shared.bump()

    def _load_many(self, task_ids: Sequence[str]) -> dict[str, StoredRecord]:
        now = self._now()
        with self._shared.changed:
            entries = {task_id: self._shared.results.get(task_id) for task_id in task_ids}
        return {
            task_id: entry.record
            for task_id, entry in entries.items()
            if entry is not None and entry.live(now)
        }

    def _delete(self, task_id: str) -> None:
        with self._shared.changed:
            self._shared.results.pop(task_id, None)

    def _store_group(self, group_id: str, record: StoredRecord, expires_at: float | None) -> None:
        with self._shared.changed:
            self._shared.groups[group_id] = _Entry(states.SUCCESS, record, expires_at)

    def _load_group(self, group_id: str) -> StoredRecord | None:
        with self._shared.changed:
            entry = self._shared.groups.get(group_id)
        return entry.record if entry is not None and entry.live(self._now()) else None

    def _delete_group(self, group_id: str) -> None:
        with self._shared.changed:
            self._shared.groups.pop(group_id, None)

    def _cleanup(self, now: float) -> int:
        with self._shared.changed:
            return _drop_expired(self._shared.results, now) + _drop_expired(
                self._shared.groups, now
            )

    def _set_chord_size(self, group_id: str, size: int) -> None:
        with self._shared.changed:
            self._shared.chords.setdefault(group_id, _Chord()).size = size

    def _extend_chord(self, group_id: str, count: int) -> int:
        with self._shared.changed:
            chord = self._shared.chords.setdefault(group_id, _Chord())
            chord.extra += count
            return chord.extra

    def _add_chord_part(
        self, group_id: str, part: bytes, index: int | None, size: int | None
    ) -> list[bytes] | None:
        with self._shared.changed:
            chord = self._shared.chords.setdefault(group_id, _Chord())
            order = float("inf") if index is None else float(index)
            chord.parts.append((order, len(chord.parts), part))
            total = chord.size if chord.size is not None else size
            if not total or len(chord.parts) != total + chord.extra:
                return None
            del self._shared.chords[group_id]
        return [payload for _, _, payload in sorted(chord.parts)]

    def _delete_chord(self, group_id: str) -> None:
        with self._shared.changed:
            self._shared.chords.pop(group_id, None)

    def _change_token(self) -> int:
        return self._shared.version

    def _wait_change(self, token: int, timeout: float) -> None:
        shared = self._shared
        with shared.changed:
            shared.changed.wait_for(lambda: shared.version != token, timeout)

    @staticmethod
    def _now() -> float:
        return time.time()


def _drop_expired(entries: dict[str, _Entry], now: float) -> int:
    expired = [key for key, entry in entries.items() if not entry.live(now)]
    for key in expired:
        del entries[key]
    return len(expired)
