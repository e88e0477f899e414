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
            return int(results) + int(groups)

        return self._file.write("delete expired results", delete)

    def _change_token(self) -> int:
        return self._file.data_version()

    def _begin_wait(self) -> None:
        self._file.mark_active()

    def _wait_change(self, token: int, timeout: float) -> None:
        self._file.wait_for_change(token, timeout)
