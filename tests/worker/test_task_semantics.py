"""Task semantics through a worker: signals, rate limits, STARTED, abort, hooks, rejects."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery, Task, signals, states
from celeriac.contrib.abortable import AbortableAsyncResult, AbortableTask
from celeriac.exceptions import Ignore, MaxRetriesExceededError, Reject, TimeoutError
from celeriac.message import Message
from celeriac.testing.worker import start_worker


class Flaky(Exception):
    """Raised by tasks that fail on purpose."""


@pytest.fixture
def recorded() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every task signal sent during the test, in order, with its keyword arguments."""
    seen: list[tuple[str, dict[str, Any]]] = []
    names = [
        "before_task_publish", "after_task_publish", "task_received", "task_prerun",
        "task_postrun", "task_success", "task_failure", "task_retry", "task_revoked",
        "task_unknown", "task_rejected",
    ]  # fmt: skip

    def make(name: str) -> Any:
        def receiver(signal: Any, sender: Any, **kwargs: Any) -> None:
            seen.append((name, {"sender": sender, **kwargs}))

        return receiver

    receivers = {name: make(name) for name in names}
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver)
    yield seen
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


def _names(seen: list[tuple[str, dict[str, Any]]], task_id: str | None = None) -> list[str]:
    return [
        name
        for name, kw in seen
        if task_id is None
        or kw.get("task_id") == task_id
        or getattr(kw.get("request"), "id", None) == task_id
        or (kw.get("headers") or {}).get("id") == task_id
    ]


def test_signals_of_a_successful_task(memory_app: Celery, recorded: list[Any]) -> None:
    @memory_app.task
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(memory_app):
        result = add.delay(2, 3)
        assert result.get(timeout=10) == 5
    assert _names(recorded) == [
        "before_task_publish", "after_task_publish", "task_received", "task_prerun",
        "task_success", "task_postrun",
    ]  # fmt: skip
    by_name = dict(recorded)
    assert by_name["before_task_publish"]["sender"] == add.name
    assert by_name["before_task_publish"]["routing_key"] == "celery"
    assert by_name["task_prerun"]["task"] is add and by_name["task_prerun"]["args"] == [2, 3]
    assert by_name["task_success"]["result"] == 5 and by_name["task_success"]["sender"] is add
    assert by_name["task_postrun"]["retval"] == 5 and by_name["task_postrun"]["state"] == "SUCCESS"
    assert by_name["task_received"]["request"].id == result.id


def test_before_task_publish_can_add_headers(memory_app: Celery) -> None:
    def stamp(headers: dict[str, Any], **_: Any) -> None:
        headers["tenant"] = "acme"

    signals.before_task_publish.connect(stamp)
    try:

        @memory_app.task(bind=True)
        def tenant(self: Task[Any, Any]) -> Any:
            return self.request.headers.get("tenant")

        with start_worker(memory_app):
            assert tenant.delay().get(timeout=10) == "acme"
    finally:
        signals.before_task_publish.disconnect(stamp)


def test_failure_and_retry_signals(memory_app: Celery, recorded: list[Any]) -> None:
    attempts: list[int] = []

    @memory_app.task(bind=True, max_retries=1)
    def shaky(self: Task[Any, Any]) -> None:
        attempts.append(1)
        raise self.retry(exc=Flaky("again"), countdown=0)

    with start_worker(memory_app), pytest.raises(Flaky):
        shaky.delay().get(timeout=10)
    names = _names(recorded)
    assert names.count("task_retry") == 1 and names.count("task_failure") == 1
    failure = dict(recorded)["task_failure"]
    assert isinstance(failure["exception"], Flaky)
    assert failure["einfo"].type is Flaky and "Flaky" in failure["einfo"].traceback
    assert failure["traceback"] is failure["einfo"].tb


def test_unknown_rejected_and_revoked_signals(memory_app: Celery, recorded: list[Any]) -> None:
    @memory_app.task
    def known() -> None:
        """Expires before it runs."""

    memory_app.send_task("nope.missing")
    headers = {"task": known.name, "id": "broken-1", "lang": "py"}
    memory_app.broker.publish("celery", Message(b"\x00", headers, {}, "application/x-unknown"))
    expired = known.apply_async(expires=-1)
    with start_worker(memory_app):
        with pytest.raises(Exception):  # noqa: B017 - REVOKED raises TaskRevokedError
            expired.get(timeout=10)
        memory_app.broker.join("celery", timeout=10)  # type: ignore[attr-defined]
    by_name = dict(recorded)
    assert by_name["task_unknown"]["name"] == "nope.missing"
    assert type(by_name["task_rejected"]["exc"]).__name__ == "ContentDisallowed"
    assert by_name["task_revoked"]["expired"] is True
    assert by_name["task_revoked"]["request"].id == expired.id


def test_a_raising_receiver_does_not_break_the_task(memory_app: Celery) -> None:
    def broken(**_: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.task_prerun.connect(broken)
    try:

        @memory_app.task
        def fine() -> str:
            return "fine"

        with start_worker(memory_app):
            assert fine.delay().get(timeout=10) == "fine"
    finally:
        signals.task_prerun.disconnect(broken)


def test_signal_sender_filter(memory_app: Celery) -> None:
    seen: list[str] = []

    @memory_app.task
    def watched() -> None: ...

    @memory_app.task
    def ignored() -> None: ...

    @signals.task_success.connect(sender=watched)
    def on_watched(sender: Any, **_: Any) -> None:
        seen.append(sender.name)

    watched.apply()
    ignored.apply()
    assert seen == [watched.name]
    signals.task_success.disconnect(on_watched, sender=watched)


def test_rate_limit_delays_and_never_drops(memory_app: Celery) -> None:
    ran_at: list[float] = []

    @memory_app.task(rate_limit="10/s")
    def limited(n: int) -> int:
        ran_at.append(time.monotonic())
        return n

    with start_worker(memory_app, concurrency=4):
        results = [limited.delay(n) for n in range(6)]
        assert [r.get(timeout=10) for r in results] == list(range(6))
    assert ran_at[-1] - ran_at[0] >= 0.45  # six slots 0.1 s apart


def test_rate_limits_can_be_disabled(memory_app: Celery) -> None:
    memory_app.conf.worker_disable_rate_limits = True

    @memory_app.task(rate_limit="1/m")
    def limited(n: int) -> int:
        return n

    with start_worker(memory_app, concurrency=2):
        results = [limited.delay(n) for n in range(3)]
        assert [r.get(timeout=5) for r in results] == [0, 1, 2]


def test_bad_rate_limit_is_reported(memory_app: Celery) -> None:
    from celeriac.exceptions import ImproperlyConfigured
    from celeriac.worker.rate_limits import parse_rate

    assert parse_rate("100/m") == pytest.approx(100 / 60)
    assert parse_rate("5/h") == pytest.approx(5 / 3600) and parse_rate(3) == 3.0
    assert parse_rate("0") is None and parse_rate(None) is None
    with pytest.raises(ImproperlyConfigured, match="Invalid rate limit"):
        parse_rate("fast")


def test_track_started(memory_app: Celery) -> None:
    memory_app.conf.task_track_started = True
    release = threading.Event()

    @memory_app.task
    def slow() -> str:
        release.wait(10)
        return "done"

    with start_worker(memory_app, hostname="tracker@%h"):
        result = slow.delay()
        deadline = time.monotonic() + 10
        while result.state != states.STARTED and time.monotonic() < deadline:
            time.sleep(0.01)
        assert result.state == states.STARTED
        assert result.info["hostname"].startswith("tracker@") and result.info["pid"] > 0
        release.set()
        assert result.get(timeout=10) == "done"


def test_abortable_task(memory_app: Celery) -> None:
    started = threading.Event()

    @memory_app.task(bind=True, base=AbortableTask)
    def long_job(self: AbortableTask) -> str:
        started.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.is_aborted():
                return "aborted"
            time.sleep(0.01)
        return "finished"

    with start_worker(memory_app):
        result = long_job.delay()
        assert isinstance(result, AbortableAsyncResult)
        assert started.wait(10)
        result.abort()
        assert result.get(timeout=10) == "aborted"


def test_overriding_call_wraps_every_execution(memory_app: Celery) -> None:
    calls: list[str] = []

    class Locked(Task[Any, Any]):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            calls.append("lock")
            try:
                return super().__call__(*args, **kwargs)
            finally:
                calls.append("unlock")

    @memory_app.task(base=Locked)
    def guarded(x: int) -> int:
        calls.append("body")
        return x

    with start_worker(memory_app):
        assert guarded.delay(3).get(timeout=10) == 3
    assert calls == ["lock", "body", "unlock"]


def test_reject_requeue_redelivers_with_acks_late(memory_app: Celery) -> None:
    memory_app.conf.task_acks_late = True
    deliveries: list[bool] = []

    @memory_app.task(bind=True)
    def picky(self: Task[Any, Any]) -> str:
        deliveries.append(bool(self.request.delivery_info["redelivered"]))
        if len(deliveries) == 1:
            raise Reject("not now", requeue=True)
        return "accepted"

    with start_worker(memory_app):
        assert picky.delay().get(timeout=10) == "accepted"
    assert deliveries == [False, True]


def test_ignore_leaves_no_state(memory_app: Celery) -> None:
    @memory_app.task
    def silent() -> None:
        raise Ignore()

    with start_worker(memory_app):
        result = silent.delay()
        with pytest.raises(TimeoutError):
            result.get(timeout=0.5)
    assert result.state == states.PENDING


def test_max_retries_exceeded_chains_the_original_error(memory_app: Celery) -> None:
    @memory_app.task(bind=True, max_retries=0)
    def once(self: Task[Any, Any]) -> None:
        try:
            raise Flaky("root cause")
        except Flaky:
            raise self.retry(countdown=0) from None

    with start_worker(memory_app), pytest.raises(MaxRetriesExceededError):
        once.delay().get(timeout=10)


def test_max_retries_none_retries_until_it_works(memory_app: Celery) -> None:
    attempts: list[int] = []

    @memory_app.task(bind=True, max_retries=None)
    def stubborn(self: Task[Any, Any]) -> int:
        attempts.append(self.request.retries)
        if len(attempts) < 6:
            raise self.retry(countdown=0)
        return len(attempts)

    with start_worker(memory_app):
        assert stubborn.delay().get(timeout=10) == 6
    assert attempts == [0, 1, 2, 3, 4, 5]


def test_max_retries_exceeded_has_the_original_error_as_context(memory_app: Celery) -> None:
    memory_app.conf.task_eager_propagates = True

    @memory_app.task(bind=True, max_retries=0)
    def once(self: Task[Any, Any]) -> None:
        try:
            raise Flaky("root cause")
        except Flaky:
            self.retry(countdown=0)

    with pytest.raises(MaxRetriesExceededError) as info:
        once.apply()
    assert isinstance(info.value.__context__, Flaky)


def test_internal_error_is_reported_and_the_message_kept(
    memory_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory_app.conf.task_acks_late = True
    seen: list[Any] = []

    def on_internal(exception: BaseException, **_: Any) -> None:
        seen.append(exception)

    signals.task_internal_error.connect(on_internal)

    @memory_app.task
    def fine() -> int:
        return 1

    import celeriac.worker.consumer as consumer_module

    def broken_request(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in celeriac")

    monkeypatch.setattr(consumer_module, "execute", broken_request)
    try:
        with start_worker(memory_app):
            fine.delay()
            deadline = time.monotonic() + 10
            while not memory_app.broker.dead_letters() and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        signals.task_internal_error.disconnect(on_internal)
    assert [str(exc) for exc in seen] == ["bug in celeriac"]
    (letter,) = memory_app.broker.dead_letters()
    assert "internal error" in letter.reason


def test_retry_to_another_queue_with_new_arguments(memory_app: Celery) -> None:
    seen: list[tuple[str, int]] = []

    @memory_app.task(bind=True, max_retries=1)
    def move(self: Task[Any, Any], n: int) -> int:
        seen.append((self.request.delivery_info["routing_key"], n))
        if self.request.retries == 0:
            raise self.retry(args=(n + 10,), queue="retries", countdown=0)
        return n

    with start_worker(memory_app, queues=["celery", "retries"]):
        assert move.delay(1).get(timeout=10) == 11
    assert seen == [("celery", 1), ("retries", 11)]
