"""The prefork supervisor, driven directly for cases a real worker hits only by chance."""

from __future__ import annotations

import multiprocessing
import selectors
import sys

import pytest

from celeriac.worker.pools.prefork import PreforkPool, _Child

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork")


def _exit_at_once() -> None:
    pass


def test_an_exit_and_a_readable_pipe_in_one_select_are_handled_once() -> None:
    # A child's death makes both its sentinel and its pipe (EOF) readable; one select can
    # report both. The exit is handled first and closes the pipe: the pipe's own report
    # must then be ignored, not crash the supervisor.
    pool = PreforkPool(1)
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=True)
    process = ctx.Process(target=_exit_at_once)
    process.start()
    child_end.close()
    process.join(10)
    child = _Child(process, parent_end)
    pipe_fd, sentinel = parent_end.fileno(), process.sentinel
    pool._children.append(child)
    pool._selector.register(pipe_fd, selectors.EVENT_READ, child)
    pool._selector.register(sentinel, selectors.EVENT_READ, child)

    pool._on_readable(child, sentinel)
    pool._on_readable(child, pipe_fd)

    assert pool._children == []
    assert child.forgotten


def test_a_failed_supervisor_tells_the_worker() -> None:
    pool = PreforkPool(1)
    calls: list[str] = []
    pool.on_failure = lambda: calls.append("failed")

    def broken() -> None:
        raise RuntimeError("boom")

    pool._take_submitted = broken  # type: ignore[method-assign]
    pool._supervise()  # logs the failure and returns; the worker is told
    assert calls == ["failed"]
