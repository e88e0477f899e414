"""Time-limit helpers: limits resolution, the soft-limit enforcers, how a timeout settles."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
from celeriac.task import Context
from celeriac.worker.pools.base import Prepared
from celeriac.worker.pools.prefork import _settle_as, _Work
from celeriac.worker.time_limits import AlarmSoftLimit, ThreadSoftLimit, resolve_limits


def _app(**conf: Any) -> Celery:
    app = Celery("limits", broker="memory://")
    app.conf.update(**conf)
    return app


def _prepared(app: Celery, request: Context | None = None, **options: Any) -> Prepared:
    @app.task(name="limits.body", **options)
    def body() -> None:
        return None

    request = request or Context(id="t1")
    defaults = (app.conf.task_time_limit, app.conf.task_soft_time_limit)
    return Prepared(body, request, [], {}, *resolve_limits(request, body, defaults))


def _limits(prepared: Prepared) -> tuple[float | None, float | None]:
    return prepared.time_limit, prepared.soft_time_limit


def test_limits_resolve_message_then_task_then_setting() -> None:
    app = _app(task_time_limit=30, task_soft_time_limit=20)
    assert _limits(_prepared(app)) == (30.0, 20.0)
    app = _app(task_time_limit=30, task_soft_time_limit=20)
    assert _limits(_prepared(app, time_limit=10, soft_time_limit=5)) == (10.0, 5.0)
    app = _app(task_time_limit=30)
    request = Context(id="t1", time_limit=3, soft_time_limit=None)
    assert _limits(_prepared(app, request, time_limit=10, soft_time_limit=5)) == (3.0, 5.0)
    assert _limits(_prepared(_app())) == (None, None)


def test_alarm_soft_limit_interrupts_a_sleep_and_disarms() -> None:
    fired: list[bool] = []
    started = time.monotonic()
    with pytest.raises(SoftTimeLimitExceeded), AlarmSoftLimit(0.2, lambda: fired.append(True)):
        time.sleep(5)
    assert time.monotonic() - started < 2.0
    assert fired == [True]
    with AlarmSoftLimit(0.05):
        pass
    time.sleep(0.15)  # no alarm after the block


def test_thread_soft_limit_interrupts_a_python_loop_only_in_its_thread() -> None:
    results: list[str] = []

    def body() -> None:
        try:
            with ThreadSoftLimit(0.2, "limits.loop", "t1"):
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    pass
            results.append("ran to the end")
        except SoftTimeLimitExceeded:
            results.append("interrupted")

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(10)
    assert results == ["interrupted"]


def test_thread_soft_limit_does_nothing_after_the_task_returned() -> None:
    with ThreadSoftLimit(0.05, "limits.quick", "t1"):
        pass
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:  # would raise here if the timer were still armed
        pass


def _work(app: Celery, **options: Any) -> _Work:
    return _Work(job=None, prepared=_prepared(app, **options), seq=1, hard=1.0, soft=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("conf", "options", "exc", "state"),
    [
        ({}, {}, WorkerLostError("lost"), states.FAILURE),
        ({"task_acks_late": True}, {}, WorkerLostError("lost"), states.FAILURE),
        (
            {"task_acks_late": True, "task_reject_on_worker_lost": True},
            {},
            WorkerLostError("lost"),
            states.REJECTED,
        ),
        ({}, {"acks_late": True, "reject_on_worker_lost": True}, WorkerLostError("x"), "REJECTED"),
        ({"task_reject_on_worker_lost": True}, {}, WorkerLostError("lost"), states.FAILURE),
        ({}, {}, TimeLimitExceeded(1), states.FAILURE),
        ({"task_acks_late": True}, {}, TimeLimitExceeded(1), states.FAILURE),
        (
            {"task_acks_late": True, "task_acks_on_failure_or_timeout": False},
            {},
            TimeLimitExceeded(1),
            states.REJECTED,
        ),
        (
            {"task_acks_late": True, "task_acks_on_timeout": False},
            {},
            TimeLimitExceeded(1),
            states.REJECTED,
        ),
    ],
)
def test_lost_and_timed_out_jobs_settle_as_in_celery(
    conf: dict[str, Any], options: dict[str, Any], exc: Exception, state: str
) -> None:
    outcome = _settle_as(_work(_app(**conf), **options), exc, 1.0)
    assert outcome.state == state
    assert outcome.retval is exc
    assert outcome.requeue == (state == states.REJECTED)
