"""A locked or read-only SQLite file: a clear error naming the file, for workers and clients."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import run_cli, write_module

TASKS = """
    from celeriac import Celery

    app = Celery("tasks")

    @app.task
    def add(x, y):
        return x + y
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_module(tmp_path, "tasks", TASKS)
    created = run_cli(["-A", "tasks", "purge", "-f"], tmp_path)  # creates the file and tables
    assert created.returncode == 0, created.stderr
    return tmp_path


@pytest.fixture
def immutable_db(project: Path) -> Iterator[Path]:
    """The database file made immutable (read-only even for root), restored afterwards."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available to make the file read-only for root")
    database = project / "celeriac.db"
    sqlite3.connect(database).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    made = subprocess.run(["chattr", "+i", str(database)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag: {made.stderr.strip()}")
    try:
        yield database
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=True)


def test_worker_on_a_read_only_file_fails_at_start(project: Path, immutable_db: Path) -> None:
    started = time.monotonic()
    done = run_cli(["-A", "tasks", "worker", "-l", "info"], project, timeout=60)
    assert done.returncode != 0
    assert "read-only" in done.stderr and str(immutable_db) in done.stderr
    assert time.monotonic() - started < 30


def test_client_on_a_read_only_file_gets_operational_error(
    project: Path, immutable_db: Path
) -> None:
    code = (
        "from celeriac.exceptions import OperationalError\n"
        "from tasks import add\n"
        "try:\n    add.delay(1, 2)\nexcept OperationalError as exc:\n    print('error:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("error:") and "read-only" in done.stdout


def test_worker_on_a_locked_file_fails_instead_of_hanging(project: Path) -> None:
    holder = sqlite3.connect(project / "celeriac.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        done = run_cli(["-A", "tasks", "worker"], project, timeout=60)
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode != 0
    assert "locked" in done.stderr and "celeriac.db" in done.stderr
    assert elapsed < 30
