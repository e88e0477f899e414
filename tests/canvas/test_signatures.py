"""Signatures and workflows as values: building, merging, copying, and their dict form."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import (
    Celery,
    Signature,
    chain,
    chord,
    chunks,
    group,
    maybe_signature,
    signature,
    xmap,
    xstarmap,
)


@pytest.fixture()
def app() -> Iterator[Celery]:
    app = Celery("sigs", broker="memory://sigs", backend="memory://sigs")
    app.conf.task_always_eager = True

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    with app_as_current(app):
        yield app


class app_as_current:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def __enter__(self) -> Celery:
        from celeriac import _context

        self._previous = _context.get_current_app()
        self.app.set_current()
        return self.app

    def __exit__(self, *exc: object) -> None:
        self._previous.set_current()


def add_of(app: Celery) -> Any:
    return app.tasks["t.add"]


def test_signature_has_celerys_keys(app: Celery) -> None:
    sig = add_of(app).s(2, 2)
    assert dict(sig) == {
        "task": "t.add",
        "args": (2, 2),
        "kwargs": {},
        "options": {},
        "subtask_type": None,
        "immutable": False,
    }
    assert json.loads(json.dumps(sig))["args"] == [2, 2]


def test_partial_arguments_come_first_and_kwargs_merge(app: Celery) -> None:
    sig = add_of(app).s(2)
    assert sig.clone((1,)).args == (1, 2)
    assert sig.delay(4).get() == 6
    kw = add_of(app).s(y=1)
    assert kw.delay(x=5).get() == 6
    assert kw.clone(kwargs={"y": 3}).kwargs == {"y": 3}
    assert sig.args == (2,)  # clone left the original alone


def test_immutable_ignores_partial_arguments(app: Celery) -> None:
    sig = add_of(app).si(1, 1)
    assert sig.immutable
    assert sig._merge((5,), {"z": 1}, None)[:2] == ((1, 1), {})
    assert sig.delay(100).get() == 2


def test_set_and_options_merge(app: Celery) -> None:
    sig = add_of(app).s(1, 1).set(countdown=10, queue="q")
    assert sig.options == {"countdown": 10, "queue": "q"}
    _, _, options = sig._merge((), {}, {"queue": "other", "priority": 3})
    assert options == {"countdown": 10, "queue": "other", "priority": 3}
    frozen = sig.set(group_id="g1")
    _, _, kept = frozen._merge((), {}, {"group_id": "g2"})
    assert kept["group_id"] == "g1"  # a frozen group id is not overridden


def test_freeze_fixes_the_id(app: Celery) -> None:
    sig = add_of(app).s(1, 1)
    result = sig.freeze()
    assert sig.id == result.id
    assert sig.freeze().id == result.id


def test_link_and_link_error_append(app: Celery) -> None:
    sig = add_of(app).s(1, 1)
    callback = add_of(app).s(2)
    assert sig.link(callback) is callback
    sig.link_error(add_of(app).si(0, 0))
    assert sig.options["link"] == [callback]
    assert len(sig.options["link_error"]) == 1
    assert sig.on_error(add_of(app).si(9, 9)) is sig


def test_pipe_builds_chains_and_chords(app: Celery) -> None:
    add = add_of(app)
    tsum = app.tasks["t.tsum"]
    c = add.s(1, 1) | add.s(2) | add.s(3)
    assert isinstance(c, chain)
    assert [t.args for t in c.tasks] == [(1, 1), (2,), (3,)]
    assert c().get() == 7
    g = group(add.s(1, 1), add.s(2, 2))
    c2 = g | tsum.s()
    assert isinstance(c2, chord)
    assert c2().get() == 6


def test_dict_round_trip_rebuilds_the_right_classes(app: Celery) -> None:
    add = add_of(app)
    tsum = app.tasks["t.tsum"]
    workflows = [
        chain(add.s(1, 1), add.s(2)),
        group(add.s(1, 1), add.s(2, 2)),
        chord([add.s(1, 1)], tsum.s()),
        chunks(add.s(), [(1, 2), (3, 4)], 1),
        xmap(add.s(), [1]),
        xstarmap(add.s(), [(1, 2)]),
    ]
    for workflow in workflows:
        wire = json.loads(json.dumps(workflow))
        rebuilt = signature(wire, app=app)
        assert type(rebuilt) is type(workflow), wire
        assert json.loads(json.dumps(rebuilt)) == wire


def test_signatures_pickle(app: Celery) -> None:
    sig = add_of(app).s(1, 2).set(countdown=1)
    again = pickle.loads(pickle.dumps(sig))
    assert isinstance(again, Signature)
    assert dict(again) == dict(sig)


def test_maybe_signature(app: Celery) -> None:
    assert maybe_signature(None) is None
    as_dict = dict(add_of(app).s(1, 1))
    assert isinstance(maybe_signature(as_dict, app=app), Signature)
    assert maybe_signature(5) == 5


def test_repr_reads_as_a_call(app: Celery) -> None:
    assert repr(add_of(app).s(1, y=2)) == "t.add(1, y=2)"


def test_unknown_signature_type_is_a_clear_error(app: Celery) -> None:
    with pytest.raises(ValueError, match="Unknown signature type 'nonsense'"):
        signature({"task": "x", "subtask_type": "nonsense"})


def test_chunks_need_a_positive_size(app: Celery) -> None:
    with pytest.raises(ValueError, match="chunk size"):
        add_of(app).chunks([(1, 1)], 0)


def test_unknown_calling_option_is_refused(app: Celery) -> None:
    app.conf.task_always_eager = False
    with pytest.raises(TypeError, match="unknown option 'countdwn'"):
        add_of(app).s(1, 1).apply_async(countdwn=1)


def test_chord_without_a_body_is_a_clear_error(app: Celery) -> None:
    with pytest.raises(ValueError, match="needs a body"):
        chord([add_of(app).s(1, 1)]).apply_async()
