"""Shared fixtures: isolated apps on memory:// and on a private SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("celeriac.testing.broker_suite", "celeriac.testing.backend_suite")

from celeriac import Celery  # noqa: E402
from celeriac.backends.memory import MemoryBackend  # noqa: E402
from celeriac.brokers.memory import MemoryBroker  # noqa: E402


@pytest.fixture
def memory_app() -> Iterator[Celery]:
    """An app on memory:// (broker and backend), emptied before and after the test."""
    MemoryBroker.reset_all()
    MemoryBackend.reset_all()
    app = Celery("tests", broker="memory://", backend="memory://")
    yield app
    app.close()
    MemoryBroker.reset_all()
    MemoryBackend.reset_all()


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Celery]:
    """An app on its own embedded SQLite file (the default deployment, isolated)."""
    app = Celery("tests", sqlite_path=str(tmp_path / "celeriac.db"))
    yield app
    app.close()
