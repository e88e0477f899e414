"""The result-backend conformance suite, run on every backend celeriac ships."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac.backends.base import ResultBackend
from celeriac.backends.memory import MemoryBackend
from celeriac.backends.sqlite import SQLiteBackend
from celeriac.testing.backend_suite import BackendConformance, BackendFactory


class TestMemoryBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self) -> Iterator[BackendFactory]:
        yield functools.partial(MemoryBackend, f"memory://{uuid.uuid4().hex}")
        MemoryBackend.reset_all()

    @pytest.fixture
    def backend(self, backend_factory: BackendFactory) -> ResultBackend:
        return backend_factory()


class TestSQLiteBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Iterator[BackendFactory]:
        made: list[ResultBackend] = []

        def make(**options: Any) -> ResultBackend:
            made.append(SQLiteBackend(f"sqlite:///{tmp_path / 'results.db'}", **options))
            return made[-1]

        yield make
        for backend in made:
            backend.close()

    @pytest.fixture
    def backend(self, backend_factory: BackendFactory) -> ResultBackend:
        return backend_factory()
