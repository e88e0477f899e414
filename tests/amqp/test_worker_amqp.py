"""celeriac workers on RabbitMQ, started from the CLI: routing, priorities, delayed delivery,
rpc:// results, prefetch, and surviving lost connections.

Each module works in its own virtual host (see ``conftest.py``).
"""

from __future__ import annotations

import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.amqp.rabbit import close_connections, url_for
from tests.helpers import WorkerProcess, run_python, write_module

TASKS = """
    import os, time
    from celeriac import Celery, Queue, Exchange

    app = Celery("amqp_tasks", broker={broker!r}, backend={backend!r})
    app.conf.task_queues = [
        Queue("default", Exchange("default"), routing_key="default"),
        Queue("email", Exchange("tasks", type="topic"), routing_key="email.#"),
        Queue("high_priority", Exchange("high_priority"), routing_key="high_priority"),
    ]
    app.conf.task_default_queue = "default"
    app.conf.task_queue_max_priority = 10
    app.conf.task_routes = {{"amqp_tasks.send_email": {{"queue": "email",
                                                        "routing_key": "email.welcome"}}}}
    app.conf.task_acks_late = True
    app.conf.broker_connection_max_retries = 3

    @app.task
    def add(x, y):
        return x + y

    @app.task
    def send_email(to):
        return "sent to " + to

    @app.task
    def record(n, path):
        with open(path, "a") as f:
            f.write(f"{{n}}\\n")
        return n

    @app.task
    def slow_record(n, path, seconds):
        time.sleep(seconds)
        with open(path, "a") as f:
            f.write(f"{{n}}\\n")
        return n

    @app.task
    def when():
        return time.time()
"""


@pytest.fixture
def project(tmp_path: Path, vhost: str) -> Path:
    url = url_for(vhost)
    write_module(tmp_path, "amqp_tasks", TASKS.format(broker=url, backend="rpc://"))
    return tmp_path


def _client(project: Path, code: str, timeout: float = 60.0) -> str:
    return run_python(project, textwrap.dedent(code), timeout=timeout)


def test_round_trip_with_rpc_results_and_routes(project: Path) -> None:
    with WorkerProcess("amqp_tasks", project, "-Q", "default,email", "-c", "2") as worker:
        out = _client(
            project,
            """
            from amqp_tasks import add, send_email
            r1 = add.delay(2, 3)
            r2 = send_email.delay("ann")
            print(r1.get(timeout=20), r2.get(timeout=20))
            """,
        )
        assert out.split() == ["5", "sent", "to", "ann"]
        worker.wait_for_output("succeeded")
    # The topic route reached the email queue through exchange 'tasks' with its key.
    assert "amqp_tasks.send_email[" in worker.output


def test_priorities_nine_first(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "order.txt"
    _client(
        project,
        f"""
        from amqp_tasks import record
        for n, p in [(1, 0), (2, 5), (3, 9), (4, 0), (5, 9), (6, 5)]:
            record.apply_async((n, {str(path)!r}), queue="high_priority", priority=p)
        """,
    )
    with WorkerProcess(
        "amqp_tasks", project, "-Q", "high_priority", "-c", "1", "--prefetch-multiplier", "1"
    ) as worker:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_lines(path)) < 6:
            time.sleep(0.1)
    assert _lines(path) == ["3", "5", "2", "6", "1", "4"], worker.output


def test_countdown_waits_in_the_broker_not_the_worker(project: Path) -> None:
    with WorkerProcess("amqp_tasks", project, "-Q", "default", "-c", "1") as worker:
        out = _client(
            project,
            """
            import time
            from amqp_tasks import when
            sent = time.time()
            r = when.apply_async(countdown=2)
            print(r.get(timeout=30) - sent)
            """,
        )
        waited = float(out.strip())
        assert 1.9 <= waited < 10, waited
    # The worker never held it: no 'received' line before the message was due.
    assert worker.output.count("amqp_tasks.when[") >= 2  # received + succeeded


def test_prefetch_is_concurrency_times_multiplier(project: Path, vhost: str) -> None:
    samples: list[tuple[int, int]] = []
    with WorkerProcess(
        "amqp_tasks", project, "-Q", "default", "-c", "3", "--prefetch-multiplier", "2"
    ):
        _client(
            project,
            """
            from amqp_tasks import slow_record
            rs = [slow_record.delay(n, "/dev/null", 0.5) for n in range(40)]
            """,
        )
        # Sampled while tasks finish and their slots are claimed again, wave after wave.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and len(samples) < 10:
            samples.append(_channel_window(vhost))
            time.sleep(0.2)
    prefetch = max(sample[0] for sample in samples)
    unacked = max(sample[1] for sample in samples)
    # The window is 3 x 2 = 6, and the server holds the worker to it: a finished task's
    # slot frees a moment before the settling thread writes its ack, and the claim for
    # that slot waits for the ack instead of widening the window.
    assert 1 <= unacked <= 6, samples
    assert prefetch == 6, samples


def _channel_window(vhost: str) -> tuple[int, int]:
    """(prefetch, unacknowledged messages) of the vhost's busiest channel."""
    rows = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_channels",
            "vhost",
            "prefetch_count",
            "global_prefetch_count",
            "messages_unacknowledged",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    mine = [line.split("\t") for line in rows.splitlines() if line.startswith(vhost + "\t")]
    prefetch = max(max(int(row[1]), int(row[2])) for row in mine)
    return prefetch, max(int(row[3]) for row in mine)


def test_a_drain_settles_every_message_exactly_once(
    project: Path, tmp_path: Path, vhost: str
) -> None:
    path = tmp_path / "drain.txt"
    _client(
        project,
        f"""
        from celeriac import group
        from amqp_tasks import record
        group(record.s(n, {str(path)!r}) for n in range(400)).apply_async()
        """,
    )
    with WorkerProcess("amqp_tasks", project, "-Q", "default", "-c", "4") as worker:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_lines(path)) < 400:
            time.sleep(0.1)
        # Acks go out folded into multiple acks: none may be left over, none doubled.
        while time.monotonic() < deadline and _queue_counts(vhost, "default") != (0, 0):
            time.sleep(0.2)
        assert _queue_counts(vhost, "default") == (0, 0)
    assert sorted(int(n) for n in _lines(path)) == list(range(400)), worker.output


def _queue_counts(vhost: str, queue: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of ``queue``."""
    rows = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_queues",
            "-p",
            vhost,
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for line in rows.splitlines():
        name, ready, unacked = line.split("\t")
        if name == queue:
            return int(ready), int(unacked)
    return (0, 0)


def test_lost_connection_redelivers_with_acks_late(
    project: Path, tmp_path: Path, vhost: str
) -> None:
    path = tmp_path / "done.txt"
    with WorkerProcess("amqp_tasks", project, "-Q", "default", "-c", "2") as worker:
        _client(
            project,
            f"""
            from amqp_tasks import slow_record
            for n in range(6):
                slow_record.delay(n, {str(path)!r}, 1.0)
            """,
        )
        worker.wait_for_output("received", timeout=20)
        assert close_connections(vhost, containing="consumer") >= 1
        worker.wait_for_output("Trying to re-establish", timeout=20)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(set(_lines(path))) < 6:
            time.sleep(0.2)
        # After the server dropped the connection, the worker still publishes results.
        out = _client(project, "from amqp_tasks import add\nprint(add.delay(1, 1).get(timeout=20))")
        assert out.strip() == "2"
    assert set(_lines(path)) == {str(n) for n in range(6)}, worker.output


def test_start_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "amqp_tasks",
        TASKS.format(broker="amqp://guest:guest@127.0.0.1:1//", backend="rpc://"),
    )
    worker = WorkerProcess("amqp_tasks", tmp_path, "-c", "1", ready_timeout=1)
    with pytest.raises(AssertionError):
        worker.start()  # never ready: it keeps retrying
    output = worker.output
    assert "Cannot connect to amqp://guest:**@127.0.0.1:1//" in output
    assert "Trying again in" in output


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []
