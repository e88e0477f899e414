"""The conformance suite every result backend passes, usable by third-party backends.

Subclass :class:`BackendConformance` in a test module and provide two pytest fixtures:

``backend_factory``
    A callable taking :class:`~celeriac.backends.base.ResultBackend`'s keyword options
    (``expires=``, ``extended=``, ``serializer=``, ``accept=``) and returning a *new*
    instance on the same storage, as another process would open it. Storage must be
    fresh and isolated for each test (its own file, database, key prefix...).
``backend``
    An instance made by ``backend_factory()`` with the default options.

For example::

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def backend_factory(self, tmp_path):
            return functools.partial(MyBackend, f"my://{tmp_path}")

        @pytest.fixture
        def backend(self, backend_factory):
            return backend_factory()

Add ``pytest.register_assert_rewrite("celeriac.testing.backend_suite")`` to a
``conftest.py`` for detailed assertion messages.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from celeriac import states
from celeriac.backends.base import RecordWrite, ResultBackend, StoreRequest
from celeriac.exceptions import (
    ContentDisallowed,
    EncodeError,
    SecurityError,
    TimeoutError,
)
from celeriac.serialization import dumps

__all__ = ["BackendConformance", "BackendFactory", "SuiteError"]

#: Makes a backend on the test's storage from ResultBackend's keyword options.
BackendFactory = Callable[..., ResultBackend]


class SuiteError(Exception):
    """An exception class defined outside the standard library (rebuilt by import)."""


class Outer:
    """Holds a nested exception class, stored under a dotted ``exc_type``."""

    class InnerError(Exception):
        """A nested exception class."""


class NeedsKeyword(Exception):
    """An exception whose constructor cannot be called with its stored args."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


class NotAnException:
    """A class a forged record names as its exception; it must never be instantiated."""

    created: list[Any] = []

    def __init__(self, *args: Any) -> None:
        NotAnException.created.append(args)


#: Values a SUCCESS must return unchanged under the default (json) serializer.
ROUND_TRIP_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -7,
    2**53 + 1,
    1.5,
    "",
    'text with ünïcode and "quotes" and \n newlines',
    [],
    [1, "two", 3.0, None, [4]],
    {},
    {"a": {"b": [1, 2, {"c": None}]}, "d": "e"},
    dt.datetime(2024, 5, 17, 12, 30, 1, 123456, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 5, 17, 12, 30, 1),
    dt.date(2024, 5, 17),
    Decimal("3.1415926535897932384626433832795"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    b"utf-8 bytes",
    b"\xff\x00\xfe binary",
    {"nested": [dt.date(2020, 1, 1), Decimal("1.10"), b"x", {"u": uuid.UUID(int=1)}]},
]


def _new_id() -> str:
    return str(uuid.uuid4())


def _request(**fields: Any) -> SimpleNamespace:
    return SimpleNamespace(**fields)


class BackendConformance:
    """Behaviour every :class:`~celeriac.backends.base.ResultBackend` must show."""

    # --- reading what is not there ---------------------------------------------------------

    def test_missing_id_is_pending(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        assert backend.get_task_meta(task_id) == {
            "status": "PENDING",
            "result": None,
            "traceback": None,
            "children": [],
            "date_done": None,
            "task_id": task_id,
        }

    # --- SUCCESS ---------------------------------------------------------------------------

    @pytest.mark.parametrize("value", ROUND_TRIP_VALUES, ids=repr)
    def test_success_round_trips_value(self, backend: ResultBackend, value: Any) -> None:
        task_id = _new_id()
        backend.store_result(task_id, value, states.SUCCESS)
        result = backend.get_task_meta(task_id)["result"]
        assert result == value
        assert type(result) is type(value)

    def test_stored_meta_has_celery_fields(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        before = dt.datetime.now(dt.timezone.utc)
        backend.store_result(task_id, 42, states.SUCCESS)
        meta = backend.get_task_meta(task_id)
        assert {"status", "result", "traceback", "children", "date_done", "task_id"} <= set(meta)
        assert (meta["status"], meta["result"], meta["task_id"]) == ("SUCCESS", 42, task_id)
        assert meta["traceback"] is None
        assert meta["children"] == []
        date_done = meta["date_done"]
        assert isinstance(date_done, dt.datetime)
        assert date_done.utcoffset() == dt.timedelta(0)
        assert before - dt.timedelta(seconds=1) <= date_done <= before + dt.timedelta(seconds=60)
        assert "name" not in meta  # not extended

    def test_other_instance_reads_the_result(
        self, backend: ResultBackend, backend_factory: BackendFactory
    ) -> None:
        task_id = _new_id()
        backend.store_result(task_id, {"x": 1}, states.SUCCESS)
        assert backend_factory().get_task_meta(task_id)["result"] == {"x": 1}

    def test_custom_state_keeps_meta_and_no_date(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        backend.store_result(task_id, {"progress": 50}, "PROGRESS")
        meta = backend.get_task_meta(task_id)
        assert (meta["status"], meta["result"], meta["date_done"]) == (
            "PROGRESS",
            {"progress": 50},
            None,
        )

    # --- failures and exceptions -----------------------------------------------------------

    def test_builtin_exception_round_trips(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        backend.store_result(
            task_id, ValueError("bad", 3), states.FAILURE, traceback="Traceback (most recent)"
        )
        meta = backend.get_task_meta(task_id)
        assert meta["status"] == "FAILURE"
        assert type(meta["result"]) is ValueError
        assert meta["result"].args == ("bad", 3)
        assert meta["traceback"] == "Traceback (most recent)"
        assert isinstance(meta["date_done"], dt.datetime)

    def test_exception_is_stored_in_celery_form(self, backend: ResultBackend) -> None:
        assert backend.encode_exception(KeyError("k")) == {
            "exc_type": "KeyError",
            "exc_message": ["k"],
            "exc_module": "builtins",
        }

    def test_exception_class_from_a_module_round_trips(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        backend.store_result(task_id, SuiteError("custom", 1), states.FAILURE)
        result = backend.get_task_meta(task_id)["result"]
        assert type(result) is SuiteError
        assert result.args == ("custom", 1)

    def test_nested_exception_class_round_trips(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        backend.store_result(task_id, Outer.InnerError("inner"), states.FAILURE)
        result = backend.get_task_meta(task_id)["result"]
        assert type(result) is Outer.InnerError
        assert result.args == ("inner",)

    def test_retry_and_revoked_rebuild_exceptions_without_date(
        self, backend: ResultBackend
    ) -> None:
        retry_id, revoked_id = _new_id(), _new_id()
        backend.store_result(retry_id, RuntimeError("again"), states.RETRY)
        backend.store_result(revoked_id, SuiteError("revoked"), states.REVOKED)
        retry = backend.get_task_meta(retry_id)
        assert type(retry["result"]) is RuntimeError
        assert retry["date_done"] is None
        revoked = backend.get_task_meta(revoked_id)
        assert type(revoked["result"]) is SuiteError
        assert isinstance(revoked["date_done"], dt.datetime)

    def test_unencodable_exception_args_become_reprs(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        thing = object()
        backend.store_result(task_id, ValueError("msg", thing), states.FAILURE)
        result = backend.get_task_meta(task_id)["result"]
        assert type(result) is ValueError
        assert result.args == ("msg", repr(thing))

    def test_unimportable_module_gives_a_stand_in(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        self._store_raw_failure(
            backend,
            task_id,
            {
                "exc_type": "VanishedError",
                "exc_module": "celeriac_no_such_module.errors",
                "exc_message": ["gone", 2],
            },
        )
        result = backend.get_task_meta(task_id)["result"]
        assert isinstance(result, Exception)
        assert type(result).__name__ == "VanishedError"
        assert type(result).__module__ == "celeriac_no_such_module.errors"
        assert result.args == ("gone", 2)

    def test_unconstructible_exception_gives_a_stand_in(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        backend.store_result(task_id, NeedsKeyword("needs code", code=3), states.FAILURE)
        result = backend.get_task_meta(task_id)["result"]
        assert isinstance(result, Exception)
        assert type(result).__name__ == "NeedsKeyword"
        assert result.args == ("needs code",)

    def test_non_exception_class_raises_security_error(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        self._store_raw_failure(
            backend,
            task_id,
            {
                "exc_type": NotAnException.__qualname__,
                "exc_module": NotAnException.__module__,
                "exc_message": ["payload"],
            },
        )
        NotAnException.created.clear()
        with pytest.raises(SecurityError):
            backend.get_task_meta(task_id)
        assert NotAnException.created == []

    @staticmethod
    def _store_raw_failure(backend: ResultBackend, task_id: str, result: Any) -> None:
        """Write a record through the primitives, as a foreign (or forged) writer would."""
        meta = {
            "status": "FAILURE",
            "result": result,
            "traceback": None,
            "children": [],
            "date_done": dt.datetime.now(dt.timezone.utc).isoformat(),
            "task_id": task_id,
        }
        payload, content_type, encoding = dumps(meta, "json")
        backend._store([RecordWrite(task_id, "FAILURE", payload, content_type, encoding, None)])

    # --- the SUCCESS rule ------------------------------------------------------------------

    def test_success_is_never_overwritten(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        backend.store_result(task_id, "first", states.SUCCESS)
        backend.store_result(task_id, ValueError("late"), states.FAILURE)
        backend.store_result(task_id, {"pid": 1}, states.STARTED)
        backend.store_results([StoreRequest(task_id, "batch", states.SUCCESS)])
        meta = backend.get_task_meta(task_id)
        assert (meta["status"], meta["result"]) == ("SUCCESS", "first")

    def test_success_is_not_overwritten_by_another_instance(
        self, backend: ResultBackend, backend_factory: BackendFactory
    ) -> None:
        task_id = _new_id()
        backend.store_result(task_id, "first", states.SUCCESS)
        backend_factory().store_result(task_id, RuntimeError("dup"), states.FAILURE)
        assert backend.get_task_meta(task_id)["status"] == "SUCCESS"

    def test_finished_state_is_not_replaced_by_an_unfinished_one(
        self, backend: ResultBackend
    ) -> None:
        task_id = _new_id()
        backend.store_result(task_id, ValueError("final"), states.FAILURE)
        backend.store_result(task_id, ValueError("late retry"), states.RETRY)
        backend.store_result(task_id, {"pid": 1}, states.STARTED)
        backend.store_result(task_id, {"done": 1}, "PROGRESS")
        meta = backend.get_task_meta(task_id)
        assert meta["status"] == states.FAILURE and meta["result"].args == ("final",)
        backend.store_result(task_id, "requeued and ran", states.SUCCESS)
        assert backend.get_task_meta(task_id)["status"] == states.SUCCESS

    def test_started_is_overwritten_by_success(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        backend.store_result(task_id, {"pid": 1, "hostname": "w1"}, states.STARTED)
        started = backend.get_task_meta(task_id)
        assert (started["status"], started["result"]) == ("STARTED", {"pid": 1, "hostname": "w1"})
        assert started["date_done"] is None
        backend.store_result(task_id, 5, states.SUCCESS)
        meta = backend.get_task_meta(task_id)
        assert (meta["status"], meta["result"]) == ("SUCCESS", 5)

    def test_failure_is_overwritten_by_a_retry_success(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        backend.store_result(task_id, ValueError("first try"), states.RETRY)
        backend.store_result(task_id, "done", states.SUCCESS)
        assert backend.get_task_meta(task_id)["result"] == "done"

    # --- encoding failures -----------------------------------------------------------------

    def test_store_result_with_unencodable_value_raises(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        with pytest.raises(EncodeError):
            backend.store_result(task_id, object(), states.SUCCESS)
        assert backend.get_task_meta(task_id)["status"] == "PENDING"

    def test_store_results_batch(self, backend: ResultBackend) -> None:
        ids = [_new_id() for _ in range(5)]
        backend.store_results(
            [StoreRequest(task_id, n, states.SUCCESS) for n, task_id in enumerate(ids)]
        )
        metas = backend.get_many(ids)
        assert [metas[task_id]["result"] for task_id in ids] == [0, 1, 2, 3, 4]

    def test_store_results_stores_encode_error_for_bad_item(self, backend: ResultBackend) -> None:
        good_a, bad, good_b = _new_id(), _new_id(), _new_id()
        backend.store_results(
            [
                StoreRequest(good_a, "a", states.SUCCESS),
                StoreRequest(bad, object(), states.SUCCESS),
                StoreRequest(good_b, ["b"], states.SUCCESS),
            ]
        )
        metas = backend.get_many([good_a, bad, good_b])
        assert metas[good_a]["result"] == "a"
        assert metas[good_b]["result"] == ["b"]
        failed = metas[bad]
        assert failed["status"] == "FAILURE"
        assert type(failed["result"]) is EncodeError
        assert "EncodeError" in (failed["traceback"] or "")

    # --- waiting ---------------------------------------------------------------------------

    def test_wait_for_sees_a_result_stored_by_another_instance(
        self, backend: ResultBackend, backend_factory: BackendFactory
    ) -> None:
        task_id = _new_id()
        writer = backend_factory()

        def store_later() -> None:
            time.sleep(0.05)
            writer.store_result(task_id, "late", states.SUCCESS)
            writer.close()

        thread = threading.Thread(target=store_later, daemon=True)
        started = time.monotonic()
        thread.start()
        try:
            meta = backend.wait_for(task_id, timeout=5.0, interval=2.0)
        finally:
            thread.join(5.0)
        assert time.monotonic() - started < 1.0
        assert (meta["status"], meta["result"]) == ("SUCCESS", "late")

    def test_wait_for_returns_a_stored_result_at_once(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        backend.store_result(task_id, ValueError("x"), states.FAILURE)
        started = time.monotonic()
        meta = backend.wait_for(task_id, timeout=5.0)
        assert time.monotonic() - started < 0.5
        assert type(meta["result"]) is ValueError

    def test_wait_for_times_out(self, backend: ResultBackend) -> None:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"^The operation timed out\.$"):
            backend.wait_for(_new_id(), timeout=0.2, interval=0.05)
        elapsed = time.monotonic() - started
        assert 0.19 <= elapsed < 1.5

    def test_wait_for_ignores_unready_states(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        backend.store_result(task_id, {"pid": 1}, states.STARTED)
        with pytest.raises(TimeoutError):
            backend.wait_for(task_id, timeout=0.1, interval=0.05)

    # --- forgetting and expiry -------------------------------------------------------------

    def test_forget_makes_it_pending(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        backend.store_result(task_id, 1, states.SUCCESS)
        backend.forget(task_id)
        assert backend.get_task_meta(task_id)["status"] == "PENDING"
        backend.forget(task_id)  # forgetting twice is fine

    def test_expired_result_is_pending_and_cleaned_up(
        self, backend_factory: BackendFactory
    ) -> None:
        short = backend_factory(expires=0.2)
        forever = backend_factory(expires=None)
        task_id, kept_id = _new_id(), _new_id()
        short.store_result(task_id, "soon gone", states.SUCCESS)
        forever.store_result(kept_id, "kept", states.SUCCESS)
        assert short.get_task_meta(task_id)["status"] == "SUCCESS"
        time.sleep(0.4)
        assert short.get_task_meta(task_id)["status"] == "PENDING"
        assert short.cleanup() == 1
        assert short.cleanup() == 0
        assert forever.get_task_meta(kept_id)["result"] == "kept"

    def test_expired_success_may_be_stored_again(self, backend_factory: BackendFactory) -> None:
        short = backend_factory(expires=0.1)
        task_id = _new_id()
        short.store_result(task_id, "old", states.SUCCESS)
        time.sleep(0.25)
        short.store_result(task_id, "new", states.SUCCESS)
        assert short.get_task_meta(task_id)["result"] == "new"

    # --- request fields --------------------------------------------------------------------

    def test_parent_and_group_ids_are_stored(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        request = _request(parent_id="p-1", group_id="g-1", task="tasks.add", args=[1])
        backend.store_result(task_id, 3, states.SUCCESS, request=request)
        meta = backend.get_task_meta(task_id)
        assert (meta["parent_id"], meta["group_id"]) == ("p-1", "g-1")
        assert "name" not in meta and "args" not in meta

    def test_extended_fields_are_stored(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory(extended=True)
        task_id = _new_id()
        request = _request(
            task="tasks.add",
            args=[1, 2],
            kwargs={"z": 3},
            hostname="worker1@host",
            retries=2,
            delivery_info={"routing_key": "math", "exchange": ""},
            parent_id=None,
        )
        backend.store_result(task_id, 3, states.SUCCESS, request=request)
        meta = backend.get_task_meta(task_id)
        assert {key: meta[key] for key in ("name", "args", "kwargs", "worker", "retries")} == {
            "name": "tasks.add",
            "args": [1, 2],
            "kwargs": {"z": 3},
            "worker": "worker1@host",
            "retries": 2,
        }
        assert meta["queue"] == "math"
        assert "parent_id" not in meta and "group_id" not in meta

    def test_extended_fields_missing_from_request_are_none(
        self, backend_factory: BackendFactory
    ) -> None:
        backend = backend_factory(extended=True)
        task_id = _new_id()
        backend.store_result(task_id, 1, states.SUCCESS, request=_request(task="t"))
        meta = backend.get_task_meta(task_id)
        assert (meta["name"], meta["args"], meta["queue"], meta["worker"]) == (
            "t",
            None,
            None,
            None,
        )

    # --- content types ---------------------------------------------------------------------

    def test_disallowed_content_type_is_refused(
        self, backend: ResultBackend, backend_factory: BackendFactory
    ) -> None:
        task_id = _new_id()
        backend_factory(serializer="pickle", accept=None).store_result(task_id, 1, states.SUCCESS)
        with pytest.raises(ContentDisallowed):
            backend.get_task_meta(task_id)  # accepts json only

    # --- groups ----------------------------------------------------------------------------

    def test_group_save_restore_delete(self, backend: ResultBackend) -> None:
        group_id = _new_id()
        child = _new_id()
        result_tuple = [[group_id, None], [[[child, None], None]]]
        assert backend.restore_group(group_id) is None
        backend.save_group(group_id, result_tuple)
        meta = backend.restore_group(group_id)
        assert meta is not None
        assert meta["result"] == result_tuple
        assert isinstance(meta["date_done"], dt.datetime)
        backend.delete_group(group_id)
        assert backend.restore_group(group_id) is None

    def test_groups_and_results_are_separate(self, backend: ResultBackend) -> None:
        shared_id = _new_id()
        backend.save_group(shared_id, [[shared_id, None], []])
        assert backend.get_task_meta(shared_id)["status"] == "PENDING"
        backend.store_result(shared_id, "task", states.SUCCESS)
        meta = backend.restore_group(shared_id)
        assert meta is not None and meta["result"] == [[shared_id, None], []]

    def test_expired_group_is_gone(self, backend_factory: BackendFactory) -> None:
        short = backend_factory(expires=0.1)
        group_id = _new_id()
        short.save_group(group_id, [[group_id, None], []])
        time.sleep(0.25)
        assert short.restore_group(group_id) is None
        assert short.cleanup() == 1

    # --- get_many --------------------------------------------------------------------------

    def test_get_many(self, backend: ResultBackend) -> None:
        done, failed, missing = _new_id(), _new_id(), _new_id()
        backend.store_result(done, "ok", states.SUCCESS)
        backend.store_result(failed, KeyError("k"), states.FAILURE)
        metas = backend.get_many([done, missing, failed, done])
        assert list(metas) == [done, missing, failed]
        assert metas[done]["result"] == "ok"
        assert metas[missing]["status"] == "PENDING"
        assert type(metas[failed]["result"]) is KeyError
        assert backend.get_many([]) == {}

    def test_get_many_reads_large_batches(self, backend: ResultBackend) -> None:
        ids = [_new_id() for _ in range(1200)]
        backend.store_results(
            [StoreRequest(task_id, i, states.SUCCESS) for i, task_id in enumerate(ids)]
        )
        metas = backend.get_many(ids)
        assert [metas[task_id]["result"] for task_id in ids] == list(range(1200))

    # --- chords ------------------------------------------------------------------------

    def test_chord_completes_once_with_parts_in_header_order(
        self, backend: ResultBackend, backend_factory: BackendFactory
    ) -> None:
        group_id = _new_id()
        backend.set_chord_size(group_id, 3)
        other = backend_factory()  # another process's view of the same storage
        assert backend.chord_part_done(group_id, "t2", states.SUCCESS, "c", index=2) is None
        assert other.chord_part_done(group_id, "t0", states.SUCCESS, "a", index=0) is None
        parts = backend.chord_part_done(group_id, "t1", states.SUCCESS, "b", index=1)
        assert parts is not None
        assert [(p.task_id, p.state, p.result) for p in parts] == [
            ("t0", "SUCCESS", "a"),
            ("t1", "SUCCESS", "b"),
            ("t2", "SUCCESS", "c"),
        ]
        # The chord is gone once complete: a late duplicate part starts nothing.
        assert backend.chord_part_done(group_id, "t1", states.SUCCESS, "b", index=1) is None

    def test_chord_parts_in_one_batch_and_failures_rebuilt(self, backend: ResultBackend) -> None:
        from celeriac.backends.base import ChordPartDone

        group_id = _new_id()
        backend.set_chord_size(group_id, 2)
        error = KeyError("missing")
        results = backend.chord_parts_done(
            [
                ChordPartDone(group_id, "t1", states.FAILURE, error, 1),
                ChordPartDone(group_id, "t0", states.SUCCESS, 10, 0),
            ]
        )
        assert results[0] is None
        parts = results[1]
        assert parts is not None
        assert [p.task_id for p in parts] == ["t0", "t1"]
        assert type(parts[1].result) is KeyError
        assert parts[1].result.args == ("missing",)

    def test_chord_size_from_the_part_when_none_was_stored(self, backend: ResultBackend) -> None:
        group_id = _new_id()
        assert backend.chord_part_done(group_id, "t0", states.SUCCESS, 1, index=0, size=2) is None
        parts = backend.chord_part_done(group_id, "t1", states.SUCCESS, 2, index=1, size=2)
        assert parts is not None and [p.result for p in parts] == [1, 2]

    def test_parts_added_to_a_running_chord_are_waited_for(self, backend: ResultBackend) -> None:
        group_id = _new_id()
        backend.set_chord_size(group_id, 1)
        assert backend.add_to_chord(group_id, 1) == 1
        assert backend.chord_part_done(group_id, "t0", states.SUCCESS, 0, index=0) is None
        parts = backend.chord_part_done(group_id, "t1", states.SUCCESS, 1, index=1)
        assert parts is not None and len(parts) == 2

    def test_concurrent_parts_complete_the_chord_exactly_once(
        self, backend_factory: BackendFactory
    ) -> None:
        group_id = _new_id()
        size = 40
        backend_factory().set_chord_size(group_id, size)
        completions: list[int] = []
        lock = threading.Lock()

        def finish(indexes: range) -> None:
            own = backend_factory()
            for index in indexes:
                parts = own.chord_part_done(
                    group_id, f"t{index}", states.SUCCESS, index, index=index
                )
                if parts is not None:
                    with lock:
                        completions.append(len(parts))

        threads = [threading.Thread(target=finish, args=(range(i, size, 4),)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert completions == [size]

    def test_deleted_chord_starts_over(self, backend: ResultBackend) -> None:
        group_id = _new_id()
        backend.set_chord_size(group_id, 2)
        backend.chord_part_done(group_id, "t0", states.SUCCESS, 0, index=0)
        backend.delete_chord(group_id)
        assert backend.chord_part_done(group_id, "t1", states.SUCCESS, 1, index=1, size=2) is None
