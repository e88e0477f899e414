"""The embedded SQLite file shared by the default broker and result backend.

One connection per thread (SQLite connections are not shared across threads), WAL so readers
never wait for the writer, a bounded busy timeout so a locked file is an error and not a hang,
and SQLite's own errors translated into :class:`~celeriac.exceptions.OperationalError`
messages that name the file and the fix.

Cross-process wake-ups use ``PRAGMA data_version``: it changes whenever another connection
commits, costs a few microseconds to read, and so lets an idle consumer poll every
millisecond or two without touching any table.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from celeriac.exceptions import ImproperlyConfigured, OperationalError

__all__ = ["SQLiteFile", "path_from_url"]

T = TypeVar("T")

#: How long a writer waits for another process's lock before the call fails (seconds).
BUSY_TIMEOUT = 10.0
#: Poll delays while waiting for another process's commit, by how long the file has been
#: quiet: fast right after activity (round trips stay sub-millisecond), slower once idle so
#: an idle worker costs well under 1% of a core, and never slower than MAX_POLL_DELAY, which
#: bounds how late an idle consumer sees a new message.
FAST_POLL_DELAY = 0.0005
WARM_POLL_DELAY = 0.002
MAX_POLL_DELAY = 0.02
#: How long after activity each speed lasts (seconds).
FAST_WINDOW = 0.1
WARM_WINDOW = 1.0


def path_from_url(url: str) -> str:
    """The file path of a ``sqlite:///relative``, ``sqlite:////absolute`` or ``sqla+``/``db+`` URL.

    Raises:
        ImproperlyConfigured: the URL names no file.
    """
    for prefix in ("sqla+", "sqlalchemy+", "db+"):
        if url.startswith(prefix):
            url = url[len(prefix) :]
    scheme, sep, rest = url.partition("://")
    if scheme != "sqlite" or not sep:
        raise ImproperlyConfigured(f"Not a SQLite URL: {url!r} (expected sqlite:///path)")
    path = rest[1:] if rest.startswith("/") else rest
    path = path.split("?", 1)[0]
    if not path:
        raise ImproperlyConfigured(f"SQLite URL {url!r} names no file (expected sqlite:///path)")
    if path == ":memory:":
        raise ImproperlyConfigured("An in-memory SQLite database cannot be shared; use memory://")
    return path


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL unless it is already (WAL is a property of the file).

    The switch needs the file to itself and fails at once, without the busy timeout, when
    another process holds it, as every opener of a fresh file does at the same moment: it
    is retried, with short pauses, until the file is in WAL (whoever switched it) or the
    busy timeout has passed.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    pause = 0.005
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            # Switched, or a file system without WAL keeps its mode (and is used so).
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
            time.sleep(pause + random.random() * pause)  # apart, not in step again
            pause = min(pause * 2, 0.1)


class SQLiteFile:
    """One SQLite database file, opened lazily once per thread and per process.

    Args:
        path: the database file; created with its directory's permissions if missing.
        schema: SQL run once per process (``CREATE TABLE IF NOT EXISTS`` statements).
    """

    def __init__(self, path: str, schema: str) -> None:
        self.path = os.path.abspath(path)
        self._schema = schema
        self._local = threading.local()
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._pid = os.getpid()
        self._active_at = 0.0

    # --- connections -----------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (reopened after a fork)."""
        if self._pid != os.getpid():
            self._after_fork()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _after_fork(self) -> None:
        # A connection must never be used in a child it was not opened in.
        self._local = threading.local()
        self._pid = os.getpid()

    def _open(self) -> sqlite3.Connection:
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            raise OperationalError(
                f"Cannot open SQLite database {self.path}: directory {directory} does not exist"
            )
        with self.errors("open"):
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
            _use_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
            self._ensure_schema(conn)
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        with self._schema_lock:
            if self._schema_ready:
                return
            conn.executescript(self._schema)
            self._schema_ready = True

    def close(self) -> None:
        """Close this thread's connection (other threads' close when they exit)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- transactions ----------------------------------------------------------------------

    def write(self, what: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one write transaction (``BEGIN IMMEDIATE``) and commit it."""
        conn = self.connection()
        with self.errors(what):
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def read(self, what: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` outside a write transaction (autocommit reads)."""
        with self.errors(what):
            return work(self.connection())

    def data_version(self) -> int:
        """A number that changes whenever another connection commits to the file."""
        with self.errors("poll"):
            row = self.connection().execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def mark_active(self) -> None:
        """Note that a change is expected soon (a result is awaited): poll fast for a while."""
        self._active_at = time.monotonic()

    def wait_for_change(self, since: int, timeout: float) -> int:
        """Block until another connection commits (or ``timeout`` passes); returns the version.

        Polls quickly while the file is busy or a change is expected, and more slowly once
        it has been quiet for a while, never slower than every ``MAX_POLL_DELAY`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            version = self.data_version()
            now = time.monotonic()
            if version != since:
                self._active_at = now
                return version
            remaining = deadline - now
            if remaining <= 0:
                return version
            time.sleep(min(self._poll_delay(now), remaining))

    def _poll_delay(self, now: float) -> float:
        quiet = now - self._active_at
        if quiet < FAST_WINDOW:
            return FAST_POLL_DELAY
        if quiet < WARM_WINDOW:
            return WARM_POLL_DELAY
        return MAX_POLL_DELAY

    # --- errors ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Translate SQLite's errors into OperationalError naming the file and the fix."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise OperationalError(self._explain(what, exc)) from exc
        except sqlite3.DatabaseError as exc:
            raise OperationalError(
                f"SQLite database {self.path} is not usable ({what}): {exc}. "
                "Is it a celeriac database file?"
            ) from exc

    def _explain(self, what: str, exc: sqlite3.OperationalError) -> str:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return (
                f"SQLite database {self.path} is locked by another process "
                f"(waited {BUSY_TIMEOUT:.0f}s to {what}). Is something holding a long "
                "transaction on it?"
            )
        if "readonly" in text or "read-only" in text:
            return (
                f"SQLite database {self.path} is read-only ({what}): celeriac needs write "
                "access to the file and its directory (for the -wal and -shm files)."
            )
        if "unable to open" in text:
            return (
                f"Cannot open SQLite database {self.path}: {text}. Check the path and permissions."
            )
        return f"SQLite database {self.path} failed to {what}: {text}"
