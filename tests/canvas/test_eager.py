"""Eager mode (``task_always_eager``) runs whole canvases here, with a worker's results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, chain, chord, group
from celeriac.exceptions import ChordError


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[Celery]:
    app = Celery("eager", broker="memory://eager", backend="memory://eager")
    app.conf.task_always_eager = True
    calls: list[Any] = []
    app.calls = calls  # type: ignore[attr-defined]

    @app.task(name="e.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="e.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="e.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="e.fail")
    def fail(*args: Any) -> None:
        raise ValueError("boom")

    @app.task(name="e.errback")
    def errback(request: Any, exc: BaseException, traceback: Any) -> None:
        calls.append(("errback", request.id, repr(exc)))

    @app.task(name="e.callback")
    def callback(value: Any) -> None:
        calls.append(("callback", value))

    @app.task(name="e.replacing", bind=True)
    def replacing(self: Any, n: int) -> Any:
        return self.replace(add.s(n, n) | mul.s(10))

    yield app


def t(app: Celery, name: str) -> Any:
    return app.tasks[f"e.{name}"]


def test_chain_group_chord(app: Celery) -> None:
    add, mul, tsum = t(app, "add"), t(app, "mul"), t(app, "tsum")
    assert chain(add.s(4, 6) | mul.s(3))().get() == 30
    assert group(add.s(i, i) for i in range(4))().get() == [0, 2, 4, 6]
    assert chord(group(add.s(i, i) for i in range(4)))(tsum.s()).get() == 12
    assert chain(add.s(1, 1), group(mul.s(2), mul.s(3)), tsum.s())().get() == 10
    assert add.chunks([(i, i) for i in range(4)], 2)().get() == [[0, 2], [4, 6]]
    assert add.starmap([(1, 2)]).apply().get() == [3]


def test_link_callback_and_errback_run_eagerly(app: Celery) -> None:
    add = t(app, "add")
    add.apply_async((2, 2), link=t(app, "callback").s())
    assert ("callback", 4) in app.calls  # type: ignore[attr-defined]
    result = t(app, "fail").apply_async(link_error=t(app, "errback").s())
    assert result.failed()
    assert ("errback", result.id, "ValueError('boom')") in app.calls  # type: ignore[attr-defined]


def test_failing_chain_stops(app: Celery) -> None:
    result = chain(t(app, "add").s(1, 1), t(app, "fail").s(), t(app, "add").s(5))()
    assert result.failed()
    with pytest.raises(ValueError, match="boom"):
        result.get()


def test_failing_chord_header_raises(app: Celery) -> None:
    with pytest.raises((ValueError, ChordError)):
        chord([t(app, "add").s(1, 1), t(app, "fail").s()])(t(app, "tsum").s())


def test_replace_runs_the_replacement_here(app: Celery) -> None:
    assert t(app, "replacing").delay(2).get() == 40
