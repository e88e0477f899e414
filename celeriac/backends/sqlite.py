"""The embedded result backend: one SQLite file (``sqlite:///path``), shared across processes.

By default it is the SQLite broker's own file, with tables of its own: ``results`` (one row
per task, Celery's record serialized in ``payload``) and ``result_groups``. The rule that a
SUCCESS is never replaced lives in the upsert's ``WHERE``, so it holds across processes.
Expired rows are invisible to reads at once and deleted by :meth:`~ResultBackend.cleanup`
(which stores also run, at most once a minute). Waiting for a result polls
``PRAGMA data_version``, which changes when any other connection commits, so a result stored
by another process is seen within a millisecond or two.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from celeriac import states
from celeriac.backends.base import RecordWrite, ResultBackend, StoredRecord
from celeriac.utils.sqlite import SQLiteFile, path_from_url

__all__ = ["SQLiteBackend"]

SCHEMA = """
-- results: task_id, status, payload, content_type, content_encoding, date_done, expires_at
CREATE TABLE IF NOT EXISTS results (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    payload BLOB NOT NULL,
    content_type TEXT NOT NULL,
    content_encoding TEXT NOT NULL,
    date_done REAL,
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS results_expires_at ON results (expires_at)
    WHERE expires_at IS NOT NULL;
-- result_groups: group_id, payload, content_type, content_encoding, date_done, expires_at
CREATE TABLE IF NOT EXISTS result_groups (
    group_id TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    content_type TEXT NOT NULL,
    content_encoding TEXT NOT NULL,
    date_done REAL,
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS result_groups_expires_at ON result_groups (expires_at)
    WHERE expires_at IS NOT NULL;
-- chord_state: group_id, size, extra, done, expires_at (a running chord's counters)
CREATE TABLE IF NOT EXISTS chord_state (
    group_id TEXT PRIMARY KEY,
    size INTEGER,
    extra INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    expires_at REAL
);
-- chord_parts: group_id, position, part (finished header tasks of a running chord)
CREATE TABLE IF NOT EXISTS chord_parts (
    seq INTEGER PRIMARY KEY,
    group_id TEXT NOT NULL,
    position REAL NOT NULL,
    part BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chord_parts_group ON chord_parts (group_id, position, seq);
"""

SET_CHORD_SIZE = """
-- chord_state: writes size, expires_at of group_id (inserting the row if needed)
INSERT INTO chord_state (group_id, size, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (group_id) DO UPDATE SET size = excluded.size, expires_at = excluded.expires_at
"""

EXTEND_CHORD = """
-- chord_state: adds to extra of group_id (inserting the row if needed); returns the new extra
INSERT INTO chord_state (group_id, extra, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (group_id) DO UPDATE SET extra = chord_state.extra + excluded.extra
RETURNING extra
"""

ADD_CHORD_PART = """
-- chord_parts: writes group_id, position, part
INSERT INTO chord_parts (group_id, position, part) VALUES (?, ?, ?)
"""

COUNT_CHORD_PART = """
-- chord_state: adds one to done of group_id (inserting the row if needed); returns done,
-- size and extra (a counter, so completing a chord of n parts costs n, not n squared)
INSERT INTO chord_state (group_id, done, expires_at) VALUES (?1, 1, ?2)
ON CONFLICT (group_id) DO UPDATE SET done = chord_state.done + 1
RETURNING done, size, extra
"""

LOAD_CHORD_PARTS = """
-- chord_parts: reads part of group_id in header order
SELECT part FROM chord_parts WHERE group_id = ? ORDER BY position, seq
"""

DELETE_CHORD_PARTS = """
-- chord_parts: deletes the rows of group_id
DELETE FROM chord_parts WHERE group_id = ?
"""

DELETE_CHORD = """
-- chord_state: deletes the row of group_id
DELETE FROM chord_state WHERE group_id = ?
"""

CLEANUP_CHORD_PARTS = """
-- chord_parts: deletes the parts of chords whose expires_at has passed
DELETE FROM chord_parts
WHERE group_id IN (SELECT group_id FROM chord_state WHERE expires_at <= ?)
"""

CLEANUP_CHORDS = """
-- chord_state: deletes rows whose expires_at has passed
DELETE FROM chord_state WHERE expires_at <= ?
"""

# Params: ?1 task_id, ?2 status, ?3 payload, ?4 content_type, ?5 content_encoding,
# ?6 date_done, ?7 expires_at, ?8 now. A live SUCCESS row is left untouched, and a live
# FAILURE/REVOKED row is only replaced by another finished state: a late RETRY or STARTED
# write (a retried task's next attempt may finish first) must not hide the final state.
STORE_RESULT = """
-- results: writes every column; reads status, expires_at of an existing row
INSERT INTO results (task_id, status, payload, content_type, content_encoding, date_done,
                     expires_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (task_id) DO UPDATE SET
    status = excluded.status,
    payload = excluded.payload,
    content_type = excluded.content_type,
    content_encoding = excluded.content_encoding,
    date_done = excluded.date_done,
    expires_at = excluded.expires_at
WHERE results.expires_at <= ?8
   OR (results.status != 'SUCCESS'
       AND (results.status NOT IN ('FAILURE', 'REVOKED')
            OR excluded.status IN ('SUCCESS', 'FAILURE', 'REVOKED')))
"""

LOAD_RESULTS = """
-- results: reads task_id, payload, content_type, content_encoding; filters on expires_at
SELECT task_id, payload, content_type, content_encoding FROM results
WHERE task_id IN ({marks}) AND (expires_at IS NULL OR expires_at > ?)
"""

DELETE_RESULT = """
-- results: deletes the row of task_id
DELETE FROM results WHERE task_id = ?
"""

STORE_GROUP = """
-- result_groups: writes every column (replacing the group's row)
INSERT OR REPLACE INTO result_groups (group_id, payload, content_type, content_encoding,
                                      date_done, expires_at)
VALUES (?, ?, ?, ?, ?, ?)
"""

LOAD_GROUP = """
-- result_groups: reads payload, content_type, content_encoding; filters on expires_at
SELECT payload, content_type, content_encoding FROM result_groups
WHERE group_id = ? AND (expires_at IS NULL OR expires_at > ?)
"""

DELETE_GROUP = """
-- result_groups: deletes the row of group_id
DELETE FROM result_groups WHERE group_id = ?
"""

CLEANUP_RESULTS = """
-- results: deletes rows whose expires_at has passed
DELETE FROM results WHERE expires_at <= ?
"""

CLEANUP_GROUPS = """
-- result_groups: deletes rows whose expires_at has passed
DELETE FROM result_groups WHERE expires_at <= ?
"""

#: Ids per ``IN (...)`` list (well under SQLite's bound-parameter limit).
_IDS_PER_QUERY = 500


class SQLiteBackend(ResultBackend):
    """Results in a SQLite file (WAL mode), readable and writable by many processes.

    The URL is ``sqlite:///relative/path``, ``sqlite:////absolute/path`` or
    ``db+sqlite:///path``; the file and its tables are created on first use.
    """

    schemes = ("sqlite", "db+sqlite")
    _file: SQLiteFile

    def _setup(self) -> None:
        self._file = SQLiteFile(path_from_url(self.url), SCHEMA)

    @property
    def path(self) -> str:
        """The database file's absolute path."""
        return self._file.path

    def close(self) -> None:
        """Close this thread's connection (it reopens on the next call)."""
        self._file.close()

    # --- primitives ------------------------------------------------------------------------

    def _store(self, items: list[RecordWrite]) -> None:
        now = time.time()
        rows = [
            (
                item.task_id,
                item.state,
                item.payload,
                item.content_type,
                item.content_encoding,
                now if item.state in states.READY_STATES else None,
                item.expires_at,
                now,
            )
            for item in items
        ]
        self._file.write("store results", lambda conn: conn.executemany(STORE_RESULT, rows))

    def _load_many(self, task_ids: Sequence[str]) -> dict[str, StoredRecord]:
        ids = list(task_ids)
        now = time.time()

        def load(conn: sqlite3.Connection) -> dict[str, StoredRecord]:
            found: dict[str, StoredRecord] = {}
            for start in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[start : start + _IDS_PER_QUERY]
                sql = LOAD_RESULTS.format(marks=",".join("?" * len(chunk)))
                for task_id, payload, content_type, encoding in conn.execute(sql, (*chunk, now)):
                    found[task_id] = StoredRecord(bytes(payload), content_type, encoding)
            return found

        return self._file.read("read results", load)

    def _delete(self, task_id: str) -> None:
        self._file.write("forget a result", lambda conn: conn.execute(DELETE_RESULT, (task_id,)))

    def _store_group(self, group_id: str, record: StoredRecord, expires_at: float | None) -> None:
        row = (group_id, *record, time.time(), expires_at)
        self._file.write("store a group", lambda conn: conn.execute(STORE_GROUP, row))

    def _load_group(self, group_id: str) -> StoredRecord | None:
        params = (group_id, time.time())
        row = self._file.read(
            "read a group", lambda conn: conn.execute(LOAD_GROUP, params).fetchone()
        )
        return None if row is None else StoredRecord(bytes(row[0]), row[1], row[2])

    def _delete_group(self, group_id: str) -> None:
        self._file.write("delete a group", lambda conn: conn.execute(DELETE_GROUP, (group_id,)))

    def _cleanup(self, now: float) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            results = conn.execute(CLEANUP_RESULTS, (now,)).rowcount
            groups = conn.execute(CLEANUP_GROUPS, (now,)).rowcount
            conn.execute(CLEANUP_CHORD_PARTS, (now,))
            conn.execute(CLEANUP_CHORDS, (now,))
            return int(results) + int(groups)

        return self._file.write("delete expired results", delete)

    def _set_chord_size(self, group_id: str, size: int) -> None:
        row = (group_id, size, self._expires_at())
        self._file.write("set a chord size", lambda conn: conn.execute(SET_CHORD_SIZE, row))

    def _extend_chord(self, group_id: str, count: int) -> int:
        row = (group_id, count, self._expires_at())
        return int(
            self._file.write(
                "extend a chord", lambda conn: conn.execute(EXTEND_CHORD, row).fetchone()[0]
            )
        )

    def _add_chord_part(
        self, group_id: str, part: bytes, index: int | None, size: int | None
    ) -> list[bytes] | None:
        return self._add_chord_parts([(group_id, part, index, size)])[0]

    def _add_chord_parts(
        self, writes: Sequence[tuple[str, bytes, int | None, int | None]]
    ) -> list[list[bytes] | None]:
        expires_at = self._expires_at()

        def add(conn: sqlite3.Connection) -> list[list[bytes] | None]:
            # One write transaction: the count that completes a chord is seen by one caller.
            return [_add_part(conn, *write, expires_at) for write in writes]

        return self._file.write("record chord parts", add)

    def _delete_chord(self, group_id: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.execute(DELETE_CHORD_PARTS, (group_id,))
            conn.execute(DELETE_CHORD, (group_id,))

        self._file.write("delete a chord", delete)

    def _change_token(self) -> int:
        return self._file.data_version()

    def _begin_wait(self) -> None:
        self._file.mark_active()

    def _wait_change(self, token: int, timeout: float) -> None:
        self._file.wait_for_change(token, timeout)


def _add_part(
    conn: sqlite3.Connection,
    group_id: str,
    part: bytes,
    index: int | None,
    size: int | None,
    expires_at: float | None,
) -> list[bytes] | None:
    """Add one chord part inside a write transaction; all parts once it completes the chord."""
    position = float("inf") if index is None else float(index)
    conn.execute(ADD_CHORD_PART, (group_id, position, part))
    ready, stored_size, extra = conn.execute(COUNT_CHORD_PART, (group_id, expires_at)).fetchone()
    total = stored_size if stored_size is not None else size
    if not total or ready != total + (extra or 0):
        return None
    parts = [bytes(row[0]) for row in conn.execute(LOAD_CHORD_PARTS, (group_id,))]
    conn.execute(DELETE_CHORD_PARTS, (group_id,))
    conn.execute(DELETE_CHORD, (group_id,))
    return parts
