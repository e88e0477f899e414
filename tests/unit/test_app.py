"""The app and task API without a worker: naming, options, eager mode, configuration."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import celeriac
from celeriac import Celeriac, Celery, Task, current_app, shared_task, states
from celeriac.exceptions import ImproperlyConfigured, NotRegistered, UnknownSettingError
from celeriac.message import Message
from celeriac.protocol import parse_task
from celeriac.result import AsyncResult, EagerResult


class Boom(Exception):
    """A task's own error type."""


def test_default_urls_are_the_embedded_sqlite_file() -> None:
    app = Celery("proj", set_as_current=False)
    assert app.broker_url == "sqlite:///celeriac.db"
    assert app.result_backend_url == "sqlite:///celeriac.db"
    app.conf.sqlite_path = "other.db"
    assert app.broker_url == "sqlite:///other.db"


def test_a_broker_url_without_backend_disables_results() -> None:
    app = Celery("proj", broker="memory://", set_as_current=False)
    assert app.result_backend_url is None
    assert Celery("p", broker="memory://", backend="memory://").result_backend_url == "memory://"


def test_celeriac_alias_and_current_app() -> None:
    assert Celeriac is Celery
    app = Celery("current")
    assert current_app.main == "current" and current_app == app
    other = Celery("other", set_as_current=False)
    assert current_app.main == "current" and other.main == "other"


def test_task_names(memory_app: Celery) -> None:
    @memory_app.task
    def plain() -> None: ...

    @memory_app.task(name="custom.name")
    def named() -> None: ...

    assert plain.name == f"{__name__}.plain"
    assert named.name == "custom.name"
    assert memory_app.tasks["custom.name"] is named
    with pytest.raises(NotRegistered):
        memory_app.tasks["nope"]


def test_task_defined_in_main_takes_the_app_name() -> None:
    app = Celery("tasks", broker="memory://", set_as_current=False)

    def add(x: int, y: int) -> int:
        return x + y

    add.__module__ = "__main__"
    assert app.task(add).name == "tasks.add"


def test_direct_call_and_bind(memory_app: Celery) -> None:
    @memory_app.task(bind=True)
    def whoami(self: Task[Any, Any], x: int) -> tuple[str, bool, int]:
        return self.name, self.request.called_directly, x

    assert whoami(3) == (whoami.name, True, 3)


def test_unknown_decorator_and_call_options_are_errors(memory_app: Celery) -> None:
    with pytest.raises(TypeError, match="unknown option"):

        @memory_app.task(max_retrys=3)
        def typo() -> None: ...

    @memory_app.task
    def fine() -> None: ...

    with pytest.raises(TypeError, match=r"'countdwn'.*Did you mean 'countdown'"):
        fine.apply_async(countdwn=3)


def test_message_layout_of_apply_async(memory_app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    @memory_app.task(time_limit=30, soft_time_limit=10)
    def add(x: int, y: int) -> int:
        return x + y

    sent: list[tuple[str, Message, float | None]] = []
    monkeypatch.setattr(
        memory_app.broker,
        "publish",
        lambda queue, message, eta=None: sent.append((queue, message, eta)),
    )
    result = add.apply_async((1, 2), {}, countdown=60, expires=120, priority=3, headers={"x": 1})
    ((queue, delivery, eta),) = sent
    assert queue == "celery" and eta is not None
    envelope = parse_task(delivery)
    assert envelope.id == result.id and envelope.name == add.name
    assert envelope.eta is not None and envelope.expires is not None
    assert envelope.time_limit == 30 and envelope.soft_time_limit == 10
    assert envelope.headers["x"] == 1 and envelope.root_id == result.id
    assert delivery.properties["priority"] == 3
    assert envelope.decode_body(None)[:2] == ([1, 2], {})


def test_eager_mode(memory_app: Celery) -> None:
    memory_app.conf.task_always_eager = True

    @memory_app.task(bind=True)
    def add(self: Task[Any, Any], x: int, y: int) -> int:
        assert self.request.is_eager and not self.request.called_directly
        return x + y

    result = add.delay(4, 6)
    assert isinstance(result, EagerResult)
    assert result.get() == 10 and result.state == states.SUCCESS and result.successful()
    assert memory_app.broker.size("celery") == 0


def test_eager_failures_propagate_only_when_asked(memory_app: Celery) -> None:
    memory_app.conf.task_always_eager = True

    @memory_app.task
    def boom() -> None:
        raise Boom("x")

    result = boom.delay()
    assert result.state == states.FAILURE and isinstance(result.result, Boom)
    with pytest.raises(Boom):
        result.get()
    memory_app.conf.task_eager_propagates = True
    with pytest.raises(Boom):
        boom.delay()


def test_eager_retry_runs_again_until_max_retries(memory_app: Celery) -> None:
    attempts: list[int] = []

    @memory_app.task(bind=True, max_retries=2)
    def flaky(self: Task[Any, Any]) -> int:
        attempts.append(self.request.retries)
        if len(attempts) < 3:
            raise self.retry(countdown=100)
        return len(attempts)

    assert flaky.apply().get() == 3
    assert attempts == [0, 1, 2]


def test_autoretry_for_in_eager_mode(memory_app: Celery) -> None:
    attempts: list[int] = []

    @memory_app.task(autoretry_for=(Boom,), retry_kwargs={"max_retries": 4}, retry_backoff=True)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise Boom("transient")
        return "ok"

    assert flaky.apply().get() == "ok"
    assert len(attempts) == 3


def test_base_class_options_and_handlers(memory_app: Celery) -> None:
    calls: list[str] = []

    class Tracked(Task[Any, Any]):
        max_retries = 7

        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append(f"success {retval}")

        def on_failure(
            self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
        ) -> None:
            calls.append(f"failure {exc}")

        def after_return(self, status: str, *rest: Any) -> None:
            calls.append(f"after {status}")

    @memory_app.task(base=Tracked)
    def ok() -> int:
        return 1

    @memory_app.task(base=Tracked)
    def bad() -> None:
        raise Boom("no")

    assert isinstance(ok, Tracked) and ok.max_retries == 7
    ok.apply()
    bad.apply()
    assert calls == ["success 1", "after SUCCESS", "failure no", "after FAILURE"]


def test_class_based_task(memory_app: Celery) -> None:
    class Multiply(Task[Any, Any]):
        name = "math.multiply"

        def run(self, x: int, y: int) -> int:
            return x * y

    task = memory_app.register_task(Multiply())
    assert memory_app.tasks["math.multiply"] is task
    assert task.apply((3, 4)).get() == 12


def test_shared_task_binds_to_every_app() -> None:
    @shared_task
    def shared_add(x: int, y: int) -> int:
        return x + y

    first = Celery("first", broker="memory://")
    assert shared_add.name in first.tasks
    second = Celery("second", broker="memory://")
    assert shared_add.name in second.tasks
    assert shared_add.app is second  # follows the current app
    assert shared_add(2, 3) == 5


def test_tasks_pickle_by_name(memory_app: Celery) -> None:
    @memory_app.task
    def picklable() -> None: ...

    memory_app.set_current()
    assert pickle.loads(pickle.dumps(picklable)) is picklable


def test_async_result_requires_an_id(memory_app: Celery) -> None:
    with pytest.raises(ValueError):
        AsyncResult("", app=memory_app)
    result = AsyncResult("abc", app=memory_app)
    assert result.state == states.PENDING and not result.ready() and result.result is None
    assert str(result) == "abc" and result == "abc"


def test_unknown_setting_names_the_closest(memory_app: Celery) -> None:
    with pytest.raises(UnknownSettingError, match="task_serializer"):
        Celery("x", task_serialiser="json")
    with pytest.raises(UnknownSettingError, match="worker_prefetch_multiplier"):
        memory_app.conf.worker_prefetch_multipler = 1


def test_config_from_object_and_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "proj_settings.py"
    module.write_text("CELERY_TASK_ALWAYS_EAGER = True\nCELERY_RESULT_EXPIRES = 60\nDEBUG = True\n")
    plain = tmp_path / "celeryconfig_x.py"
    plain.write_text("task_serializer = 'pickle'\naccept_content = ['pickle', 'json']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    app = Celery("proj", broker="memory://", set_as_current=False)
    app.config_from_object("proj_settings", namespace="CELERY")
    assert app.conf.task_always_eager is True and app.conf.result_expires == 60
    app.config_from_object("celeryconfig_x")
    assert app.conf.task_serializer == "pickle"
    monkeypatch.setenv("MY_CONFIG", "celeryconfig_x")
    other = Celery("other", broker="memory://", set_as_current=False)
    other.config_from_envvar("MY_CONFIG")
    assert other.conf["task_serializer"] == "pickle"
    with pytest.raises(ImproperlyConfigured):
        other.config_from_envvar("NOT_SET_ANYWHERE")


def test_worker_imports_include_and_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "inc_mod_a.py").write_text(
        "from celeriac import current_app\n@current_app.task\ndef a():\n    return 'a'\n"
    )
    (tmp_path / "inc_mod_b.py").write_text(
        "from celeriac import current_app\n@current_app.task\ndef b():\n    return 'b'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    app = Celery("proj", broker="memory://", include=["inc_mod_a"], imports=["inc_mod_b"])
    assert app.loader_import_modules() == ["inc_mod_b", "inc_mod_a"]
    assert {"inc_mod_a.a", "inc_mod_b.b"} <= set(app.tasks)
    for name in ("inc_mod_a", "inc_mod_b"):
        sys.modules.pop(name, None)


def test_public_surface() -> None:
    assert set(celeriac.__all__) >= {
        "Celery",
        "Celeriac",
        "Task",
        "shared_task",
        "current_app",
        "current_task",
        "states",
        "Queue",
        "Exchange",
    }
    for name in celeriac.__all__:
        assert hasattr(celeriac, name), name
    assert isinstance(celeriac.states, types.ModuleType)
