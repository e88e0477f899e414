"""SQLiteBackend beyond the conformance suite: other processes, locked and read-only files,
the table layout; and backend_for_url's choices and errors."""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import celeriac
import celeriac.utils.sqlite
from celeriac import states
from celeriac.backends import DisabledBackend, StoreRequest, backend_for_url
from celeriac.backends.memory import MemoryBackend
from celeriac.backends.sqlite import SQLiteBackend
from celeriac.exceptions import ImproperlyConfigured, OperationalError

#: Run by a separate interpreter: store a SUCCESS for argv[2] after argv[3] seconds, try to
#: overwrite argv[4]'s SUCCESS with a FAILURE, then print the time of the store.
CHILD = textwrap.dedent(
    """
    import sys, time
    from celeriac.backends.sqlite import SQLiteBackend

    backend = SQLiteBackend(sys.argv[1])
    backend.store_result(sys.argv[4], ValueError("late duplicate"), "FAILURE")
    backend.get_task_meta("warm-up")
    time.sleep(float(sys.argv[3]))
    backend.store_result(sys.argv[2], {"from": "child"}, "SUCCESS")
    print(repr(time.time()), flush=True)
    """
)


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _child_env() -> dict[str, str]:
    root = str(Path(celeriac.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def _raw_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# --- other processes -------------------------------------------------------------------------


def test_wait_for_sees_a_result_stored_by_another_process(tmp_path: Path) -> None:
    url = _url(tmp_path / "results.db")
    backend = SQLiteBackend(url)
    task_id, done_id = str(uuid.uuid4()), str(uuid.uuid4())
    backend.store_result(done_id, "first", states.SUCCESS)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, task_id, "0.3", done_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(),
    )
    try:
        # A long interval: only the change detection can wake the wait in time.
        meta = backend.wait_for(task_id, timeout=30.0, interval=10.0)
        seen_at = time.time()
    finally:
        out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert meta["result"] == {"from": "child"}
    assert seen_at - float(out.strip()) < 1.0
    assert backend.get_task_meta(done_id)["result"] == "first"


# --- unusable files --------------------------------------------------------------------------


def test_locked_file_gives_operational_error_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(celeriac.utils.sqlite, "BUSY_TIMEOUT", 0.05)
    path = tmp_path / "results.db"
    backend = SQLiteBackend(_url(path))
    assert backend.get_task_meta("t")["status"] == "PENDING"  # opens the file and tables
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(OperationalError, match=re.escape(str(path))) as info:
            backend.store_result("t", 1, states.SUCCESS)
        assert "locked" in str(info.value)
        assert backend.get_task_meta("t")["status"] == "PENDING"  # WAL: reads go on
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    backend.store_result("t", 1, states.SUCCESS)
    assert backend.get_task_meta("t")["result"] == 1


def test_read_only_file_gives_operational_error_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chmod does not stop root, so the file is opened read-only the way SQLite itself
    # reports a read-only database: through a mode=ro URI.
    path = tmp_path / "results.db"
    SQLiteBackend(_url(path)).store_result("t", 1, states.SUCCESS)
    connect = sqlite3.connect

    def read_only(database: str, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = connect(f"{Path(database).as_uri()}?mode=ro", uri=True, **kwargs)
        return conn

    monkeypatch.setattr(sqlite3, "connect", read_only)
    backend = SQLiteBackend(_url(path))
    assert backend.get_task_meta("t")["result"] == 1
    with pytest.raises(OperationalError, match=re.escape(str(path))) as info:
        backend.store_result("u", 2, states.SUCCESS)
    assert "read-only" in str(info.value)


def test_missing_directory_gives_operational_error(tmp_path: Path) -> None:
    backend = SQLiteBackend(_url(tmp_path / "nowhere" / "results.db"))
    with pytest.raises(OperationalError, match="does not exist"):
        backend.get_task_meta("t")


# --- the table layout ------------------------------------------------------------------------


def test_rows_carry_status_date_done_and_expires_at(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    backend = SQLiteBackend(_url(path), expires=dt.timedelta(hours=1))
    before = time.time()
    backend.store_results(
        [StoreRequest("done", 1, states.SUCCESS), StoreRequest("running", None, states.STARTED)]
    )
    rows = dict(
        (row[0], row[1:])
        for row in _raw_rows(path, "SELECT task_id, status, date_done, expires_at FROM results")
    )
    status, date_done, expires_at = rows["done"]
    assert status == "SUCCESS"
    assert before - 1 <= date_done <= time.time()
    assert 3590 <= expires_at - before <= 3610
    assert rows["running"][:2] == ("STARTED", None)


def test_stores_clean_up_expired_rows_at_most_once_a_minute(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    short = SQLiteBackend(_url(path), expires=0.05)
    writer = SQLiteBackend(_url(path))
    short.store_result("old", 1, states.SUCCESS)
    time.sleep(0.15)
    writer.store_result("a", 1, states.SUCCESS)  # first store: cleans up
    assert _raw_rows(path, "SELECT task_id FROM results WHERE task_id = 'old'") == []
    short.store_result("old-2", 1, states.SUCCESS)
    time.sleep(0.15)
    writer.store_result("b", 1, states.SUCCESS)  # within the minute: no cleanup
    assert _raw_rows(path, "SELECT task_id FROM results WHERE task_id = 'old-2'") == [("old-2",)]
    assert writer.get_task_meta("old-2")["status"] == "PENDING"


def test_shares_the_file_with_other_tables(tmp_path: Path) -> None:
    path = tmp_path / "celeriac.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, body BLOB)")
    conn.commit()
    conn.close()
    backend = SQLiteBackend(f"db+sqlite:///{path}")
    backend.store_result("t", "x", states.SUCCESS)
    tables = {
        row[0] for row in _raw_rows(path, "SELECT name FROM sqlite_master WHERE type='table'")
    }
    assert {"messages", "results", "result_groups"} <= tables


# --- backend_for_url ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "cls"),
    [
        ("memory://", MemoryBackend),
        ("cache+memory://", MemoryBackend),
        ("sqlite:///results.db", SQLiteBackend),
        ("db+sqlite:///results.db", SQLiteBackend),
        ("disabled", DisabledBackend),
        (None, DisabledBackend),
    ],
)
def test_backend_for_url_picks_the_class(url: str | None, cls: type[Any]) -> None:
    backend = backend_for_url(url, expires=10.0, extended=True)
    assert type(backend) is cls
    assert (backend.expires, backend.extended) == (10.0, True)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("db+postgresql://user:pw@localhost/db", "db+postgresql"),
        ("db+mysql://localhost/db", "db+mysql"),
    ],
)
def test_backend_for_url_refuses_backends_not_supported_yet(url: str, name: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=f"does not support the {re.escape(name)} "):
        backend_for_url(url)


def test_backend_for_url_names_an_unknown_url_and_the_supported_schemes() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        backend_for_url("mongodb://admin:s3cret@db.example/results")
    message = str(info.value)
    assert "mongodb://admin:**@db.example/results" in message
    assert "s3cret" not in message
    assert "sqlite:///path" in message and "memory://" in message


def test_backend_for_url_suggests_the_closest_scheme() -> None:
    with pytest.raises(ImproperlyConfigured, match="Did you mean sqlite://"):
        backend_for_url("sqlit:///results.db")


def test_sqlite_url_without_a_file_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="names no file"):
        backend_for_url("sqlite://")


def test_unknown_option_and_serializer_are_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="'global_keyprefix'"):
        backend_for_url("memory://", options={"global_keyprefix": "x"})
    with pytest.raises(ImproperlyConfigured, match="yaml"):
        backend_for_url("memory://", serializer="yaml")


def test_disabled_backend_ignores_stores_and_refuses_reads() -> None:
    backend = backend_for_url("disabled")
    backend.store_result("t", object(), states.SUCCESS)
    backend.store_results([StoreRequest("t", 1, states.SUCCESS)])
    for read in (
        lambda: backend.get_task_meta("t"),
        lambda: backend.get_many(["t"]),
        lambda: backend.wait_for("t", timeout=0.1),
        lambda: backend.restore_group("g"),
    ):
        with pytest.raises(
            NotImplementedError, match=r"No result backend is configured\..*result_backend"
        ):
            read()


def test_memory_reset_all_empties_every_shared_store() -> None:
    first = MemoryBackend("memory://reset-test")
    second = backend_for_url("cache+memory://reset-test")
    first.store_result("t", 1, states.SUCCESS)
    assert second.get_task_meta("t")["result"] == 1
    MemoryBackend.reset_all()
    assert second.get_task_meta("t")["status"] == "PENDING"
    second.store_result("t", 2, states.SUCCESS)
    assert first.get_task_meta("t")["result"] == 2
