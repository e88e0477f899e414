"""The worker in-process (``celeriac.testing.worker.start_worker``) on memory:// and SQLite."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest

from celeriac import Celery, Task, current_task, states
from celeriac.exceptions import EncodeError, NotRegistered, TaskRevokedError, TimeoutError
from celeriac.message import Message
from celeriac.result import AsyncResult
from celeriac.testing.worker import start_worker


class CustomError(Exception):
    """Raised by a task; get() must re-raise this very type."""


def test_round_trip_on_memory(memory_app: Celery) -> None:
    @memory_app.task
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(memory_app):
        result = add.delay(4, 6)
        assert result.get(timeout=10) == 10
        assert result.state == states.SUCCESS
        assert result.successful() and result.ready() and not result.failed()
        assert isinstance(result.date_done, dt.datetime)


def test_round_trip_on_sqlite(sqlite_app: Celery) -> None:
    @sqlite_app.task
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(sqlite_app, concurrency=2):
        results = [add.delay(i, i) for i in range(50)]
        assert [r.get(timeout=10) for r in results] == [i * 2 for i in range(50)]


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_pools_run_tasks(memory_app: Celery, pool: str) -> None:
    seen: list[str] = []

    @memory_app.task
    def where() -> str:
        seen.append(threading.current_thread().name)
        return "ok"

    with start_worker(memory_app, pool=pool, concurrency=2):
        assert where.delay().get(timeout=10) == "ok"
    assert seen and (seen[0] == "Consumer" if pool == "solo" else seen[0].startswith("ThreadPool"))


def test_failure_reraises_the_task_exception_type(memory_app: Celery) -> None:
    @memory_app.task
    def boom() -> None:
        raise CustomError("bad things", 42)

    with start_worker(memory_app):
        result = boom.delay()
        with pytest.raises(CustomError) as info:
            result.get(timeout=10)
        assert info.value.args == ("bad things", 42)
        assert result.state == states.FAILURE and result.failed()
        assert "CustomError" in (result.traceback or "")
        assert isinstance(result.result, CustomError)
        assert result.get(timeout=1, propagate=False).args == ("bad things", 42)


def test_request_context(memory_app: Celery) -> None:
    @memory_app.task(bind=True)
    def introspect(self: Task[Any, Any], a: int, *, b: int) -> dict[str, Any]:
        request = self.request
        assert current_task is not None and current_task.request.id == request.id
        return {
            "id": request.id,
            "args": list(request.args),
            "kwargs": request.kwargs,
            "retries": request.retries,
            "hostname": request.hostname,
            "routing_key": request.delivery_info["routing_key"],
            "is_eager": request.is_eager,
            "called_directly": request.called_directly,
            "root_id": request.root_id,
            "eta": request.eta,
            "expires": request.expires,
        }

    with start_worker(memory_app, hostname="node1@%h"):
        result = introspect.apply_async((1,), {"b": 2}, expires=60)
        info = result.get(timeout=10)
    assert info["id"] == result.id == info["root_id"]
    assert info["args"] == [1] and info["kwargs"] == {"b": 2}
    assert info["retries"] == 0 and info["is_eager"] is False and info["called_directly"] is False
    assert info["hostname"].startswith("node1@")
    assert info["routing_key"] == "celery"
    assert info["eta"] is None and info["expires"] is not None


def test_child_task_gets_parent_and_root_ids(memory_app: Celery) -> None:
    @memory_app.task
    def child() -> str:
        return "child"

    @memory_app.task(bind=True)
    def parent(self: Task[Any, Any]) -> str:
        return child.delay().id

    @memory_app.task(bind=True)
    def ids(self: Task[Any, Any]) -> list[Any]:
        return [self.request.parent_id, self.request.root_id]

    @memory_app.task(bind=True)
    def spawn(self: Task[Any, Any]) -> str:
        return ids.delay().id

    with start_worker(memory_app, concurrency=2):
        first = spawn.delay()
        child_id = first.get(timeout=10)
        assert AsyncResult(child_id, app=memory_app).get(timeout=10) == [first.id, first.id]


def test_countdown_waits_in_the_broker(memory_app: Celery) -> None:
    ran_at: list[float] = []

    @memory_app.task
    def stamp() -> None:
        ran_at.append(time.time())

    with start_worker(memory_app):
        sent = time.time()
        stamp.apply_async(countdown=0.5).get(timeout=10)
    assert ran_at[0] - sent >= 0.45


def test_expired_message_is_revoked_not_run(memory_app: Celery) -> None:
    ran: list[int] = []

    @memory_app.task
    def never() -> None:
        ran.append(1)

    result = never.apply_async(expires=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))
    with start_worker(memory_app), pytest.raises(TaskRevokedError):
        result.get(timeout=10)
    assert result.state == states.REVOKED
    assert ran == []


def test_priority_order(memory_app: Celery) -> None:
    order: list[int] = []

    @memory_app.task
    def record(n: int) -> None:
        order.append(n)

    for priority in (9, 5, 0, 5, 9, 0):
        record.apply_async((priority,), priority=priority)
    with start_worker(memory_app, pool="solo", prefetch_multiplier=1):
        memory_app.broker.join("celery", timeout=10)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 5
        while len(order) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert order == [0, 0, 5, 5, 9, 9]


def test_unknown_task_fails_and_is_dead_lettered(memory_app: Celery) -> None:
    result = memory_app.send_task("tasks.not_deployed", (1,))
    with start_worker(memory_app), pytest.raises(NotRegistered) as info:
        result.get(timeout=10)
    assert "tasks.not_deployed" in str(info.value)
    letters = memory_app.broker.dead_letters()
    assert [letter.message.id for letter in letters] == [result.id]
    assert "NotRegistered" in letters[0].reason and letters[0].queue == "celery"

    @memory_app.task(name="tasks.not_deployed")
    def now_deployed(x: int) -> int:
        return x + 1

    memory_app.backend.forget(result.id)
    assert memory_app.broker.requeue_dead_letters() == 1
    with start_worker(memory_app):
        assert AsyncResult(result.id, app=memory_app).get(timeout=10) == 2
    assert memory_app.broker.dead_letters() == []


def test_content_type_outside_accept_content_is_refused(memory_app: Celery) -> None:
    ran: list[int] = []

    @memory_app.task
    def unpickled(value: Any) -> None:
        ran.append(1)

    result = unpickled.apply_async(({"a": 1},), serializer="pickle")
    with start_worker(memory_app), pytest.raises(Exception, match=r"untrusted content") as info:
        result.get(timeout=10)
    assert type(info.value).__name__ == "ContentDisallowed"
    assert ran == []
    assert len(memory_app.broker.dead_letters()) == 1


def test_undecodable_body_is_refused(memory_app: Celery) -> None:
    @memory_app.task
    def fine() -> None:
        """Never runs: its message is garbage."""

    headers = {"task": fine.name, "id": "garbled-1", "lang": "py"}
    memory_app.broker.publish("celery", Message(b"{not json", headers, {}, "application/json"))
    with start_worker(memory_app), pytest.raises(Exception) as info:
        AsyncResult("garbled-1", app=memory_app).get(timeout=10)
    assert type(info.value).__name__ == "DecodeError"
    assert len(memory_app.broker.dead_letters()) == 1


def test_unserializable_arguments_fail_in_the_caller(memory_app: Celery) -> None:
    @memory_app.task
    def take(value: Any) -> None:
        """Never sent."""

    with pytest.raises(EncodeError):
        take.delay(object())
    assert memory_app.broker.size("celery") == 0


def test_unserializable_return_value_is_a_failure(memory_app: Celery) -> None:
    @memory_app.task
    def give() -> object:
        return object()

    with start_worker(memory_app):
        result = give.delay()
        with pytest.raises(EncodeError):
            result.get(timeout=10)
    assert result.state == states.FAILURE


def test_retry_then_success(memory_app: Celery) -> None:
    attempts: list[int] = []

    @memory_app.task(bind=True, max_retries=3)
    def flaky(self: Task[Any, Any]) -> int:
        attempts.append(self.request.retries)
        if len(attempts) < 3:
            raise self.retry(exc=CustomError("again"), countdown=0)
        return len(attempts)

    with start_worker(memory_app):
        assert flaky.delay().get(timeout=10) == 3
    assert attempts == [0, 1, 2]


def test_retry_gives_up_after_max_retries(memory_app: Celery) -> None:
    @memory_app.task(bind=True, max_retries=2)
    def hopeless(self: Task[Any, Any]) -> None:
        raise self.retry(exc=CustomError("never"), countdown=0)

    with start_worker(memory_app), pytest.raises(CustomError):
        hopeless.delay().get(timeout=10)


def test_ignore_result_stores_nothing(memory_app: Celery) -> None:
    done = threading.Event()

    @memory_app.task(ignore_result=True)
    def quiet() -> int:
        done.set()
        return 1

    with start_worker(memory_app):
        result = quiet.delay()
        assert done.wait(10)
        memory_app.broker.join("celery", timeout=10)  # type: ignore[attr-defined]
        time.sleep(0.05)
    assert result.state == states.PENDING


def test_update_state_progress(memory_app: Celery) -> None:
    release = threading.Event()

    @memory_app.task(bind=True)
    def slow(self: Task[Any, Any]) -> str:
        self.update_state(state="PROGRESS", meta={"done": 50})
        release.wait(10)
        return "finished"

    with start_worker(memory_app):
        result = slow.delay()
        deadline = time.monotonic() + 10
        while result.state != "PROGRESS" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert result.state == "PROGRESS" and result.info == {"done": 50}
        release.set()
        assert result.get(timeout=10) == "finished"


def test_get_times_out(memory_app: Celery) -> None:
    with pytest.raises(TimeoutError):
        memory_app.AsyncResult("never-sent").get(timeout=0.2)


def test_get_inside_a_task_is_refused(memory_app: Celery) -> None:
    @memory_app.task
    def inner() -> int:
        return 1

    @memory_app.task
    def outer() -> int:
        return inner.delay().get(timeout=1)

    with (
        start_worker(memory_app, concurrency=2),
        pytest.raises(RuntimeError, match=r"Never call result\.get"),
    ):
        outer.delay().get(timeout=10)


def test_queues_and_routes(memory_app: Celery) -> None:
    memory_app.conf.task_routes = {"tests.routed": {"queue": "high_priority"}}

    @memory_app.task(name="tests.routed")
    def routed() -> str:
        return "routed"

    @memory_app.task(name="tests.plain")
    def plain() -> str:
        return "plain"

    routed_result = routed.delay()
    plain_result = plain.delay()
    assert memory_app.broker.size("high_priority") == 1
    with start_worker(memory_app, queues=["high_priority"]):
        assert routed_result.get(timeout=10) == "routed"
        with pytest.raises(TimeoutError):
            plain_result.get(timeout=0.3)
    assert memory_app.broker.size("celery") == 1
    explicit = plain.apply_async(queue="other")
    with start_worker(memory_app, queues=["other", "celery"]):
        assert explicit.get(timeout=10) == "plain"
        assert plain_result.get(timeout=10) == "plain"


def test_acks_late_message_stays_leased_while_running(memory_app: Celery) -> None:
    memory_app.conf.task_acks_late = True
    started, release = threading.Event(), threading.Event()

    @memory_app.task
    def hold() -> str:
        started.set()
        release.wait(10)
        return "done"

    with start_worker(memory_app):
        result = hold.delay()
        assert started.wait(10)
        assert memory_app.broker.size("celery") == 0  # claimed, not waiting
        release.set()
        assert result.get(timeout=10) == "done"
        memory_app.broker.join("celery", timeout=10)  # type: ignore[attr-defined]


def _blocked_queue(
    app: Celery, waiting: int, **options: Any
) -> tuple[threading.Event, threading.Event, AsyncResult[Any], list[AsyncResult[Any]]]:
    """A task that blocks until released (sent first), then ``waiting`` quick ones:
    (started, release, the blocking task's result, the quick ones' results)."""
    started, release = threading.Event(), threading.Event()

    @app.task(**options)
    def block() -> str:
        started.set()
        release.wait(10)
        return "finished"

    @app.task
    def queued(n: int) -> int:
        return n

    first = block.delay()
    return started, release, first, [queued.delay(n) for n in range(waiting)]


def test_warm_shutdown_gives_back_unstarted_messages(memory_app: Celery) -> None:
    started, release, first, _ = _blocked_queue(memory_app, 5)
    with start_worker(memory_app, pool="threads", concurrency=1, prefetch_multiplier=4) as node:
        assert started.wait(10)
        threading.Timer(0.3, release.set).start()
        node.stop()
    assert first.get(timeout=10) == "finished"
    assert memory_app.broker.size("celery") == 5  # every unstarted one is back, none ran


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_async_def_task_under_a_sync_pool(memory_app: Celery, pool: str) -> None:
    import asyncio

    @memory_app.task(bind=True)
    async def fetch(self: Task[Any, Any], delay: float) -> str:
        await asyncio.sleep(delay)
        return f"fetched {self.request.id == current_task.request.id}"  # type: ignore[union-attr]

    with start_worker(memory_app, pool=pool, concurrency=2):
        results = [fetch.delay(0.05) for _ in range(4)]
        assert [r.get(timeout=10) for r in results] == ["fetched True"] * 4
    assert fetch.apply((0.0,)).get() == "fetched True"


@pytest.mark.parametrize(("acks_late", "waiting"), [(False, 1), (True, 2)])
def test_a_running_task_holds_its_prefetch_slot_until_acked(
    memory_app: Celery, acks_late: bool, waiting: int
) -> None:
    # As in Celery, the window counts unacked messages: an early-acked task frees its slot
    # when it starts (the worker reserves the next message), an acks_late one when it ends.
    started, release, first, rest = _blocked_queue(memory_app, 2, acks_late=acks_late)
    with start_worker(memory_app, pool="threads", concurrency=1, prefetch_multiplier=1):
        assert started.wait(10)
        time.sleep(0.3)  # time to claim what the window allows
        assert memory_app.broker.size("celery") == waiting
        release.set()
        assert first.get(timeout=10) == "finished"
        assert [r.get(timeout=10) for r in rest] == [0, 1]
