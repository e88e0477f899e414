"""The embedded SQLite broker beyond the conformance suite: real processes, real files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import celeriac
from celeriac.brokers import SCHEMES, broker_for_url
from celeriac.brokers.base import Outgoing
from celeriac.brokers.memory import MemoryBroker
from celeriac.brokers.sqlite import MOVE_BATCH, SQLiteBroker
from celeriac.exceptions import ImproperlyConfigured, OperationalError
from celeriac.testing.broker_suite import claim_until, message, numbers

# The project root, so child processes import this checkout of celeriac.
ROOT = str(Path(celeriac.__file__).resolve().parent.parent)

# A consumer process: says "ready", waits for the go file, drains the queue in small
# batches, and prints the numbers it claimed as JSON.
DRAINER = """
import json, os, sys, time
from celeriac.brokers.sqlite import SQLiteBroker
url, queue, go = sys.argv[1:4]
broker = SQLiteBroker(url)
broker.size(queue)
print("ready", flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.002)
seen = []
while time.monotonic() < deadline:
    got = broker.claim([queue], limit=10, timeout=0.5)
    if not got:
        break
    seen.extend(d.message.headers["n"] for d in got)
    time.sleep(0.001)  # a little work, so the three consumers overlap
    broker.ack(got)
print(json.dumps(seen), flush=True)
"""

# A consumer process that claims five messages, reports them, and hangs until killed.
HOLDER = """
import json, sys, time
from celeriac.brokers.sqlite import SQLiteBroker
url, queue = sys.argv[1:3]
broker = SQLiteBroker(url, options={"visibility_timeout": 1.0})
got = broker.claim([queue], limit=5, timeout=10)
print(json.dumps([d.message.headers["n"] for d in got]), flush=True)
time.sleep(60)
"""


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'broker.db'}"


@pytest.fixture
def broker(url: str) -> Iterator[SQLiteBroker]:
    broker = SQLiteBroker(url)
    yield broker
    broker.close()


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def stop(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)


def count_rows(broker: SQLiteBroker, table: str) -> int:
    with sqlite3.connect(broker.path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


# --- several processes on one file -------------------------------------------------------


def test_three_processes_drain_each_message_once(
    broker: SQLiteBroker, url: str, tmp_path: Path
) -> None:
    total = 3000
    go = tmp_path / "go"
    processes = [spawn(DRAINER, url, "drain", str(go)) for _ in range(3)]
    try:
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.strip() == "ready", process.stderr.read() if process.stderr else line
        for start in range(0, total, 500):
            broker.publish_many([Outgoing("drain", message(n)) for n in range(start, start + 500)])
        assert broker.size("drain") == total
        go.touch()
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        stop(processes)
    assert all(process.returncode == 0 for process in processes), [err for _, err in outputs]
    seen = [json.loads(out) for out, _ in outputs]
    everything = [n for part in seen for n in part]
    assert len(everything) == total, "a message was lost or claimed twice"
    assert sorted(everything) == list(range(total))
    assert sum(1 for part in seen if part) >= 2, "the consumers did not run concurrently"
    assert broker.size("drain") == 0
    assert count_rows(broker, "messages") == 0  # nothing left claimed either


def test_killed_consumer_messages_come_back(url: str) -> None:
    broker = SQLiteBroker(url, options={"visibility_timeout": 1.0})
    broker.publish_many([Outgoing("kill", message(n)) for n in range(10)])
    holder = spawn(HOLDER, url, "kill")
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        held = json.loads(line or "null")
        assert held == [0, 1, 2, 3, 4], holder.stderr.read() if holder.stderr else line
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        killed = time.monotonic()
        got = claim_until(broker, ["kill"], 10, within=10.0)
    finally:
        stop([holder])
    assert sorted(numbers(got)) == list(range(10))
    redelivered = sorted(numbers([d for d in got if d.redelivered]))
    assert redelivered == held
    assert time.monotonic() - killed < 5.0
    broker.ack(got)
    assert count_rows(broker, "messages") == 0
    broker.close()


# --- files that cannot be used -----------------------------------------------------------


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions"
)
def test_read_only_file_is_an_operational_error(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    url = f"sqlite:///{directory / 'broker.db'}"
    first = SQLiteBroker(url)
    first.publish("q", message(1))
    first.close()
    (directory / "broker.db").chmod(0o444)
    directory.chmod(0o555)  # WAL needs to create the -wal and -shm files beside it
    try:
        with pytest.raises(OperationalError, match=r"broker\.db") as info:
            SQLiteBroker(url).publish("q", message(2))
        assert str(directory) in str(info.value)
    finally:
        directory.chmod(0o755)
        (directory / "broker.db").chmod(0o644)


def test_locked_file_is_an_operational_error(
    broker: SQLiteBroker, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker.publish("q", message(1))  # creates the file and its tables
    monkeypatch.setattr("celeriac.utils.sqlite.BUSY_TIMEOUT", 0.2)  # read when a connection opens
    holder = sqlite3.connect(broker.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        other = SQLiteBroker(url)
        started = time.monotonic()
        with pytest.raises(OperationalError, match="locked") as info:
            other.publish("q", message(2))
        assert time.monotonic() - started < 5.0
        assert broker.path in str(info.value)
        with pytest.raises(OperationalError, match="locked"):
            other.claim(["q"], limit=1, timeout=0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert numbers(other.claim(["q"], limit=10, timeout=1.0)) == [1]
    other.close()


def test_missing_directory_is_an_operational_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "broker.db"
    broker = SQLiteBroker(f"sqlite:///{missing}")
    with pytest.raises(OperationalError, match="does not exist") as info:
        broker.publish("q", message(1))
    assert str(missing) in str(info.value)


# --- delayed messages ---------------------------------------------------------------------


def test_many_delayed_messages_cost_no_claim_time(broker: SQLiteBroker) -> None:
    later = time.time() + 3600
    broker.publish_many([Outgoing("delayed", message(n), eta=later) for n in range(5000)])
    broker.publish("delayed", message(-1))
    assert count_rows(broker, "scheduled") == 5000
    assert broker.size("delayed") == 5001
    started = time.perf_counter()
    assert numbers(broker.claim(["delayed"], limit=10, timeout=0)) == [-1]
    assert broker.claim(["delayed"], limit=10, timeout=0) == []
    assert time.perf_counter() - started < 0.25  # about 1 ms; generous for a loaded machine
    assert count_rows(broker, "scheduled") == 5000  # the claims did not touch them


def test_due_messages_move_in_bounded_batches(broker: SQLiteBroker) -> None:
    total = MOVE_BATCH * 3
    due = time.time() + 0.2
    broker.publish_many([Outgoing("due", message(n), eta=due) for n in range(total)])
    time.sleep(0.25)
    started = time.perf_counter()
    first = broker.claim(["due"], limit=10, timeout=1.0)
    assert time.perf_counter() - started < 0.5
    assert numbers(first) == list(range(10))  # due order, then publication order
    assert count_rows(broker, "scheduled") == total - MOVE_BATCH
    rest = claim_until(broker, ["due"], total - 10, within=10.0)
    assert numbers(first + rest) == list(range(total))
    assert count_rows(broker, "scheduled") == 0


# --- the SQLite broker's own promises ------------------------------------------------------


def test_requeued_message_keeps_its_place(broker: SQLiteBroker) -> None:
    broker.publish_many([Outgoing("q", message(n)) for n in range(3)])
    first = broker.claim(["q"], limit=1, timeout=1.0)
    broker.reject(first, requeue=True)
    got = broker.claim(["q"], limit=10, timeout=1.0)
    assert numbers(got) == [0, 1, 2]
    assert [d.redelivered for d in got] == [True, False, False]


def test_priority_is_clamped(broker: SQLiteBroker) -> None:
    broker.publish_many(
        [
            Outgoing("q", message(0, priority=1000)),
            Outgoing("q", message(1, priority=255)),
            Outgoing("q", message(2, priority=-5)),
            Outgoing("q", message(3, priority=0)),
        ]
    )
    assert numbers(broker.claim(["q"], limit=10, timeout=1.0)) == [2, 3, 0, 1]


def test_foreign_tag_is_refused(broker: SQLiteBroker) -> None:
    broker.publish("q", message(1))
    delivery = broker.claim(["q"], limit=1, timeout=1.0)[0]
    delivery.tag = "not-a-tag"
    with pytest.raises(ValueError, match="not-a-tag"):
        broker.ack([delivery])


def test_bad_claim_arguments(broker: SQLiteBroker) -> None:
    with pytest.raises(TypeError):
        broker.claim("q", limit=1, timeout=0)
    with pytest.raises(ValueError, match="queue"):
        broker.claim([], limit=1, timeout=0)
    with pytest.raises(ValueError, match="limit"):
        broker.claim(["q"], limit=0, timeout=0)


def test_visibility_timeout_option(url: str) -> None:
    assert SQLiteBroker(url, options={"visibility_timeout": 5}).lease_seconds == 5.0
    assert SQLiteBroker(url).lease_seconds == 30.0


# --- broker_for_url ------------------------------------------------------------------------


def test_broker_for_url_picks_the_class(url: str) -> None:
    assert SCHEMES == (
        "memory",
        "sqlite",
        "sqla+sqlite",
        "redis",
        "rediss",
        "redis+socket",
        "sentinel",
        "amqp",
        "amqps",
        "pyamqp",
    )
    assert isinstance(broker_for_url("memory://"), MemoryBroker)
    assert isinstance(broker_for_url(url), SQLiteBroker)
    assert isinstance(broker_for_url("sqla+" + url), SQLiteBroker)
    sqlite = broker_for_url(url, options={"visibility_timeout": 2})
    assert sqlite.lease_seconds == 2.0


@pytest.mark.parametrize("bad", ["foo://x", "foo", "localhost:6379", "", "http://host/"])
def test_broker_for_url_unknown_scheme(bad: str) -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        broker_for_url(bad)
    text = str(info.value)
    assert repr(bad) in text
    assert "sqlite://" in text and "memory://" in text


def test_broker_for_url_masks_passwords() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        broker_for_url("kafka://guest:s3cret@localhost//")
    assert "s3cret" not in str(info.value)


def test_sqlite_url_without_a_path() -> None:
    with pytest.raises(ImproperlyConfigured, match="names no file"):
        broker_for_url("sqlite://")


OPENER = """
import sys, time
from celeriac.brokers.sqlite import SQLiteBroker
broker = SQLiteBroker("sqlite:///" + sys.argv[1])
start = float(sys.argv[2])
while time.time() < start:  # all processes open the fresh file at the same moment
    time.sleep(0.0005)
print(broker.size("celery"))
"""


def test_processes_opening_a_fresh_file_together_all_get_in(tmp_path: Path) -> None:
    # Switching a file to WAL needs it to itself and fails at once (no busy timeout) when
    # another process holds it: every opener of a fresh file used to race for that.
    for attempt in range(6):
        path = tmp_path / f"fresh{attempt}.db"
        start = time.time() + 1.0
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, str(path), str(start)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        outcomes = [proc.communicate(timeout=60) for proc in procs]
        for (out, err), proc in zip(outcomes, procs, strict=True):
            assert proc.returncode == 0 and out.strip() == "0", err
