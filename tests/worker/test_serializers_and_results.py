"""Serializers end to end through a worker, and the extended result fields."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.testing.worker import start_worker
from tests.helpers import run_cli, write_module

RICH = [
    dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc),
    dt.date(2024, 5, 6),
    dt.time(7, 8, 9),
    Decimal("12.50"),
    uuid.UUID(int=7),
    b"bytes",
    {"nested": [1, 2.5, None, True, "ünïcode"]},
]


@pytest.mark.parametrize("serializer", ["json", "pickle", "msgpack"])
def test_values_round_trip_through_a_worker(memory_app: Celery, serializer: str) -> None:
    memory_app.conf.update(
        task_serializer=serializer, result_serializer=serializer, accept_content=[serializer]
    )

    @memory_app.task
    def echo(values: list[Any]) -> list[Any]:
        assert [type(value) for value in values] == [type(value) for value in RICH]
        return values

    with start_worker(memory_app):
        assert echo.delay(RICH).get(timeout=10) == RICH


def test_per_call_serializer_must_be_accepted(memory_app: Celery) -> None:
    memory_app.conf.accept_content = ["json", "msgpack"]

    @memory_app.task
    def double(x: int) -> int:
        return x * 2

    with start_worker(memory_app):
        assert double.apply_async((21,), serializer="msgpack").get(timeout=10) == 42


def test_result_extended_fields(memory_app: Celery) -> None:
    memory_app.conf.result_extended = True

    @memory_app.task(name="tests.ext")
    def ext(x: int, *, y: int) -> int:
        return x + y

    with start_worker(memory_app, hostname="ext@%h", queues=["extq"]):
        result = ext.apply_async((1,), {"y": 2}, queue="extq")
        assert result.get(timeout=10) == 3
    assert result.name == "tests.ext"
    assert result.args == [1] and result.kwargs == {"y": 2}
    assert result.worker.startswith("ext@") and result.retries == 0 and result.queue == "extq"


def test_purge_selected_queues(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "tasks",
        """
        from celeriac import Celery
        app = Celery("tasks")

        @app.task
        def noop():
            return None
    """,
    )
    for queue in ("a", "a", "b", "celery"):
        sent = run_cli(["-A", "tasks", "call", "tasks.noop", "--queue", queue], tmp_path)
        assert sent.returncode == 0, sent.stderr
    purged = run_cli(["-A", "tasks", "purge", "-f", "-Q", "a,b", "-X", "b"], tmp_path)
    assert purged.stdout.strip() == "Purged 2 messages from 1 known task queue."
    rest = run_cli(["-A", "tasks", "purge", "-f", "-Q", "b,celery"], tmp_path)
    assert rest.stdout.strip() == "Purged 2 messages from 2 known task queues."
