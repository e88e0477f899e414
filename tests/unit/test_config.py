"""The settings table, ``Settings`` (``app.conf``) and the config-source loaders."""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from celeriac.config import (
    DEFAULTS,
    ENV_VARS,
    OLD_NAMES,
    SETTINGS,
    SETTINGS_BY_NAME,
    Settings,
    closest_settings,
    load_object_settings,
    resolve_config_source,
)
from celeriac.exceptions import ImproperlyConfigured, UnknownSettingError
from celeriac.utils.imports import import_module, symbol_by_name

# A sample spread over every section of Celery's settings reference, with Celery's defaults.
SAMPLE_DEFAULTS: dict[str, Any] = {
    "accept_content": ("json",),
    "enable_utc": True,
    "timezone": "UTC",
    "imports": (),
    "task_serializer": "json",
    "task_protocol": 2,
    "task_acks_on_failure_or_timeout": True,
    "task_publish_retry_policy": {
        "max_retries": 3,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 1,
    },
    "task_always_eager": False,
    "result_serializer": "json",
    "result_expires": timedelta(days=1),
    "result_cache_max": -1,
    "result_chord_join_timeout": 3.0,
    "result_backend_max_retries": math.inf,
    "result_backend_max_sleep_between_retries_ms": 10000,
    "result_exchange": "celeryresults",
    "broker_connection_timeout": 4.0,
    "broker_connection_max_retries": 100,
    "broker_heartbeat": 120,
    "broker_pool_limit": 10,
    "broker_transport_options": {},
    "database_table_names": {},
    "database_engine_options": {"pool_pre_ping": True, "pool_recycle": 3600},
    "redis_socket_timeout": 120.0,
    "cassandra_port": 9042,
    "azureblockblob_container_name": "celery",
    "cosmosdbsql_max_retry_attempts": 9,
    "elasticsearch_timeout": 10.0,
    "security_digest": "sha256",
    "worker_prefetch_multiplier": 4,
    "worker_concurrency": None,
    "worker_lost_wait": 10.0,
    "worker_redirect_stdouts_level": "WARNING",
    "task_time_limit": None,
    "task_default_queue": "celery",
    "task_default_exchange_type": "direct",
    "task_default_delivery_mode": 2,
    "beat_schedule": {},
    "beat_schedule_filename": "celerybeat-schedule",
    "beat_scheduler": "celery.beat:PersistentScheduler",
    "control_queue_ttl": 300.0,
    "control_queue_expires": 10.0,
    "event_queue_ttl": 5.0,
    "event_queue_expires": 60.0,
    "event_exchange": "celeryev",
    "worker_pidfile": None,
    "events_executable": None,
}

LEGACY_NAMES = {
    "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
    "CELERY_TASK_RESULT_EXPIRES": "result_expires",
    "CELERY_RESULT_EXPIRES": "result_expires",
    "BROKER_URL": "broker_url",
    "CELERY_RESULT_BACKEND": "result_backend",
    "CELERY_ALWAYS_EAGER": "task_always_eager",
    "CELERYBEAT_SCHEDULE": "beat_schedule",
    "CELERY_TASK_SERIALIZER": "task_serializer",
    "CELERY_ACCEPT_CONTENT": "accept_content",
    "CELERY_TIMEZONE": "timezone",
    "CELERY_IMPORTS": "imports",
    "CELERY_INCLUDE": "include",
    "CELERY_ROUTES": "task_routes",
    "CELERY_QUEUES": "task_queues",
    "CELERYD_CONCURRENCY": "worker_concurrency",
    "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
    "CELERY_SEND_EVENTS": "worker_send_task_events",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)


# -- the table ---------------------------------------------------------------------------------


def test_table_covers_every_celery_setting_once() -> None:
    names = [setting.name for setting in SETTINGS]
    assert len(SETTINGS) >= 222
    assert len(names) == len(set(names))
    assert all(name == name.lower() for name in names)


def test_every_row_has_a_one_line_doc_and_a_known_type() -> None:
    types_ = {"any", "bool", "int", "float", "seconds", "str", "list", "dict"}
    for setting in SETTINGS:
        assert setting.doc.strip() and "\n" not in setting.doc, setting.name
        assert setting.type in types_, setting.name


@pytest.mark.parametrize(("name", "default"), sorted(SAMPLE_DEFAULTS.items()))
def test_sample_defaults_are_celerys(name: str, default: Any) -> None:
    assert SETTINGS_BY_NAME[name].default == default
    assert Settings()[name] == default


def test_celeriac_rows_document_their_difference(clean_env: None) -> None:
    conf = Settings()
    assert conf.broker_url is None
    assert "embedded SQLite broker" in SETTINGS_BY_NAME["broker_url"].doc
    assert conf.result_backend is None
    assert (
        "the embedded SQLite backend when no broker URL is given; otherwise disabled"
        in SETTINGS_BY_NAME["result_backend"].doc
    )
    assert conf.worker_pool == "prefork"
    assert conf.sqlite_path == "celeriac.db"
    assert conf.worker_dead_letter is True
    assert SETTINGS_BY_NAME["sqlite_path"].doc.startswith("celeriac only")
    assert SETTINGS_BY_NAME["worker_dead_letter"].doc.startswith("celeriac only")


@pytest.mark.parametrize(("old", "new"), sorted(LEGACY_NAMES.items()))
def test_legacy_names_map_to_new_names(old: str, new: str) -> None:
    assert OLD_NAMES[old] == new
    assert old in SETTINGS_BY_NAME[new].old


def test_defaults_in_the_table_cannot_be_mutated() -> None:
    for setting in SETTINGS:
        assert not isinstance(setting.default, (list, dict, set)), setting.name
    with pytest.raises(TypeError):
        DEFAULTS["beat_schedule"]["x"] = 1


# -- access ------------------------------------------------------------------------------------


def test_attribute_and_item_access_read_and_write_the_same_value() -> None:
    conf = Settings()
    conf.task_serializer = "pickle"
    assert conf["task_serializer"] == "pickle"
    conf["task_default_queue"] = "default"
    assert conf.task_default_queue == "default"
    assert conf.changes == {"task_serializer": "pickle", "task_default_queue": "default"}


def test_update_get_in_iter_len() -> None:
    conf = Settings()
    conf.update({"task_acks_late": True}, worker_concurrency=2)
    assert (conf.task_acks_late, conf.worker_concurrency) == (True, 2)
    assert conf.get("task_acks_late") is True
    assert conf.get("no_such_setting", "fallback") == "fallback"
    assert "task_acks_late" in conf and "no_such_setting" not in conf
    assert list(conf)[: len(SETTINGS)] == [setting.name for setting in SETTINGS]
    assert len(conf) == len(SETTINGS)


def test_constructor_takes_changes_and_keywords() -> None:
    conf = Settings({"task_serializer": "msgpack"}, timezone="Europe/Paris")
    assert conf.changes == {"task_serializer": "msgpack", "timezone": "Europe/Paris"}
    with pytest.raises(UnknownSettingError):
        Settings(task_serialiser="json")


def test_deleting_a_setting_restores_its_default() -> None:
    conf = Settings(task_serializer="pickle", worker_concurrency=3)
    del conf.task_serializer
    assert conf.task_serializer == "json"
    conf.clear()
    assert conf.worker_concurrency is None and conf.changes == {}


def test_private_attributes_are_plain_python_attributes() -> None:
    conf = Settings()
    conf._note = "kept"
    assert conf._note == "kept"
    assert "_note" not in conf.changes
    with pytest.raises(AttributeError):
        _ = conf._missing


# -- unknown names -----------------------------------------------------------------------------


def test_writing_an_unknown_attribute_names_the_closest_setting() -> None:
    conf = Settings()
    with pytest.raises(UnknownSettingError) as info:
        conf.task_serialiser = "json"
    assert str(info.value) == "Unknown setting 'task_serialiser'. Did you mean 'task_serializer'?"


def test_unknown_names_fail_on_item_write_and_update() -> None:
    conf = Settings()
    with pytest.raises(UnknownSettingError, match="'broker_url'"):
        conf["brokerurl"] = "redis://"
    with pytest.raises(UnknownSettingError, match="task_acks_late"):
        conf.update(task_acks_late=True, task_ack_late=True)
    # The whole update is refused, not only the bad name.
    assert conf.changes == {}


def test_reading_an_unknown_name_raises_attribute_or_key_error_with_the_hint() -> None:
    conf = Settings()
    with pytest.raises(AttributeError, match="Did you mean 'worker_concurrency'"):
        _ = conf.worker_concurency
    with pytest.raises(KeyError, match="Did you mean 'worker_concurrency'"):
        _ = conf["worker_concurency"]
    assert getattr(conf, "worker_concurency_x", 7) == 7


def test_closest_settings_for_legacy_spellings() -> None:
    assert closest_settings("CELERYD_CONCURENCY")[0] == "CELERYD_CONCURRENCY"
    assert closest_settings("celery_always_eager") == ["task_always_eager"]
    assert closest_settings("worker_prefetch") == ["worker_prefetch_multiplier"]
    assert closest_settings("zzzz") == []


# -- legacy names ------------------------------------------------------------------------------


def test_legacy_names_are_stored_under_the_new_name() -> None:
    conf = Settings()
    conf.CELERYD_PREFETCH_MULTIPLIER = 1
    conf.update(CELERY_ALWAYS_EAGER=True)
    assert conf.changes == {"worker_prefetch_multiplier": 1, "task_always_eager": True}
    assert conf.CELERY_ALWAYS_EAGER is True
    assert conf["CELERYD_PREFETCH_MULTIPLIER"] == 1


def test_legacy_and_new_name_for_one_setting_in_one_update_is_an_error() -> None:
    conf = Settings()
    with pytest.raises(ImproperlyConfigured, match="'CELERY_ALWAYS_EAGER' and 'task_always_eager'"):
        conf.update({"CELERY_ALWAYS_EAGER": True}, task_always_eager=False)
    assert conf.changes == {}


def test_legacy_and_new_name_in_one_config_module_is_an_error() -> None:
    module = types.ModuleType("mixedconfig")
    module.BROKER_URL = "redis://a"  # type: ignore[attr-defined]
    module.broker_url = "redis://b"  # type: ignore[attr-defined]
    with pytest.raises(ImproperlyConfigured, match="both set 'broker_url'"):
        load_object_settings(module)


# -- values ------------------------------------------------------------------------------------


def test_a_clearly_wrong_type_names_setting_value_and_expected_type() -> None:
    conf = Settings()
    with pytest.raises(ImproperlyConfigured) as info:
        conf.worker_prefetch_multiplier = "abc"
    message = str(info.value)
    assert "'worker_prefetch_multiplier'" in message
    assert "'abc'" in message
    assert "integer" in message
    with pytest.raises(ImproperlyConfigured, match="'task_serializer' expects a string"):
        conf.task_serializer = 5
    with pytest.raises(ImproperlyConfigured, match="boolean"):
        conf.task_acks_late = "maybe"
    with pytest.raises(ImproperlyConfigured, match="dict"):
        conf.beat_schedule = ["not", "a", "dict"]


def test_unambiguous_strings_are_coerced() -> None:
    conf = Settings()
    conf.update(task_acks_late="true", task_always_eager="0", worker_concurrency="8")
    assert conf.task_acks_late is True
    assert conf.task_always_eager is False
    assert conf.worker_concurrency == 8
    conf.accept_content = "json, msgpack"
    assert tuple(conf.accept_content) == ("json", "msgpack")
    conf.task_time_limit = "30"
    assert conf.task_time_limit == 30.0


def test_none_is_accepted_for_every_type() -> None:
    conf = Settings(worker_prefetch_multiplier=None, task_acks_late=None, task_serializer=None)
    assert conf.worker_prefetch_multiplier is None


def test_timedelta_is_kept_and_seconds_converts() -> None:
    conf = Settings(result_expires=timedelta(hours=2), task_soft_time_limit=5)
    assert conf.result_expires == timedelta(hours=2)
    assert conf.seconds("result_expires") == 7200.0
    assert conf.seconds("task_soft_time_limit") == 5.0
    assert conf.seconds("task_time_limit") is None
    assert conf.seconds("event_queue_ttl") == 5.0


def test_mutable_defaults_are_not_shared_between_settings() -> None:
    first, second = Settings(), Settings()
    first.beat_schedule["tick"] = {"task": "proj.tick", "schedule": 1.0}
    first.broker_transport_options["visibility_timeout"] = 10
    assert first.beat_schedule == {"tick": {"task": "proj.tick", "schedule": 1.0}}
    assert second.beat_schedule == {}
    assert second.broker_transport_options == {}
    assert SETTINGS_BY_NAME["beat_schedule"].default == {}


def test_copy_is_independent() -> None:
    conf = Settings(task_routes={"a": {"queue": "q"}})
    clone = conf.copy()
    clone.task_routes["b"] = {"queue": "r"}
    assert conf.task_routes == {"a": {"queue": "q"}}


def test_add_defaults_sits_under_explicit_changes() -> None:
    conf = Settings(task_default_queue="explicit")
    conf.add_defaults({"task_default_queue": "added", "task_default_priority": 3})
    assert conf.task_default_queue == "explicit"
    assert conf.task_default_priority == 3
    assert conf.defaults["task_default_priority"] == 3
    assert conf.changes == {"task_default_queue": "explicit"}


def test_find_value_for_key_accepts_loose_names() -> None:
    conf = Settings(task_always_eager=True)
    assert conf.find_value_for_key("task_always_eager") is True
    assert conf.find_value_for_key("always_eager") is True
    assert conf.find_value_for_key("TASK_ALWAYS_EAGER") is True
    with pytest.raises(UnknownSettingError):
        conf.find_value_for_key("nothing_like_it")


# -- environment -------------------------------------------------------------------------------


def test_env_broker_url_wins_over_the_default_only(
    clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://env/0")
    conf = Settings()
    assert conf.broker_url == "redis://env/0"
    conf.broker_url = "amqp://explicit//"
    assert conf.broker_url == "amqp://explicit//"
    conf.broker_url = None  # None means "not set", e.g. Celery(broker=None)
    assert conf.broker_url == "redis://env/0"


def test_env_result_backend_and_read_url(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://env/1")
    monkeypatch.setenv("CELERY_BROKER_READ_URL", "redis://replica/0")
    conf = Settings()
    assert conf.result_backend == "redis://env/1"
    assert conf.broker_read_url == "redis://replica/0"
    assert conf.broker_write_url is None


# -- display -----------------------------------------------------------------------------------


def test_humanize_masks_url_passwords_and_secret_names() -> None:
    conf = Settings(
        broker_url="redis://:secret@host/0",
        result_backend="db+postgresql://user:hunter2@db/results",
        security_key_password="p4ss",
        broker_transport_options={"global_keyprefix": "app:", "sentinel_kwargs": {"password": "x"}},
    )
    text = conf.humanize()
    assert "broker_url: 'redis://:********@host/0'" in text
    assert "db+postgresql://user:********@db/results" in text
    assert "security_key_password: '********'" in text
    assert "'global_keyprefix': 'app:'" in text
    assert "secret" not in text and "hunter2" not in text and "p4ss" not in text
    assert len(text.splitlines()) == 4


def test_humanize_with_defaults_lists_every_setting() -> None:
    lines = Settings().humanize(with_defaults=True).splitlines()
    assert len(lines) == len(SETTINGS)
    assert "worker_prefetch_multiplier: 4" in lines


def test_table_is_censored_unless_asked_not_to() -> None:
    conf = Settings(broker_url="amqp://guest:guest@localhost//")
    assert conf.table() == {"broker_url": "amqp://guest:********@localhost//"}
    assert conf.table(censored=False) == {"broker_url": "amqp://guest:guest@localhost//"}
    assert len(conf.table(with_defaults=True)) == len(SETTINGS)


# -- loading config sources --------------------------------------------------------------------


def test_namespace_maps_prefixed_names() -> None:
    settings = types.ModuleType("djangosettings")
    settings.CELERY_BROKER_URL = "redis://localhost/0"  # type: ignore[attr-defined]
    settings.CELERY_TASK_ALWAYS_EAGER = True  # type: ignore[attr-defined]
    settings.CELERY_TIMEZONE = "Europe/Oslo"  # type: ignore[attr-defined]
    settings.DEBUG = True  # type: ignore[attr-defined]
    settings.BROKER_URL = "amqp://ignored"  # type: ignore[attr-defined]
    loaded = load_object_settings(settings, namespace="CELERY")
    assert loaded == {
        "broker_url": "redis://localhost/0",
        "task_always_eager": True,
        "timezone": "Europe/Oslo",
    }


def test_namespace_accepts_legacy_names_that_carry_the_prefix() -> None:
    loaded = load_object_settings({"CELERY_ALWAYS_EAGER": True}, namespace="CELERY")
    assert loaded == {"task_always_eager": True}


def test_unknown_name_under_a_namespace_names_the_closest() -> None:
    settings = types.ModuleType("djangosettings")
    settings.CELERY_TASK_SERIALISER = "json"  # type: ignore[attr-defined]
    with pytest.raises(UnknownSettingError, match="Did you mean 'CELERY_TASK_SERIALIZER'"):
        load_object_settings(settings, namespace="CELERY")


def test_config_module_keeps_settings_and_ignores_code() -> None:
    module = types.ModuleType("celeryconfig")
    module.timedelta = timedelta  # type: ignore[attr-defined]
    module.math = math  # type: ignore[attr-defined]
    module.CeleryConfig = type("CeleryConfig", (), {})  # type: ignore[attr-defined]
    module.helper = lambda: None  # type: ignore[attr-defined]
    module._private = 1  # type: ignore[attr-defined]
    module.SOME_CONSTANT = 3  # type: ignore[attr-defined]
    module.task_serializer = "json"  # type: ignore[attr-defined]
    module.CELERYD_CONCURRENCY = 4  # type: ignore[attr-defined]
    module.beat_dburi = "sqlite:///schedule.db"  # type: ignore[attr-defined]
    loaded = load_object_settings(module)
    assert loaded == {
        "task_serializer": "json",
        "worker_concurrency": 4,
        "beat_dburi": "sqlite:///schedule.db",
    }
    conf = Settings(loaded)
    assert conf.beat_dburi == "sqlite:///schedule.db"
    assert "beat_dburi" in conf and "beat_dburi" in list(conf)


def test_misspelt_lowercase_name_in_a_config_module_is_reported() -> None:
    module = types.ModuleType("celeryconfig")
    module.task_serialiser = "json"  # type: ignore[attr-defined]
    with pytest.raises(UnknownSettingError) as info:
        load_object_settings(module)
    assert "'task_serialiser'" in str(info.value)
    assert "Did you mean 'task_serializer'?" in str(info.value)
    assert "'celeryconfig'" in str(info.value)


def test_config_class_and_mapping_sources() -> None:
    class Base:
        task_acks_late = True

    class Config(Base):
        worker_prefetch_multiplier = 1

        def helper(self) -> None:
            """Methods are not settings."""

    assert load_object_settings(Config) == {"task_acks_late": True, "worker_prefetch_multiplier": 1}
    assert load_object_settings({"result_expires": 60}) == {"result_expires": 60}
    with pytest.raises(UnknownSettingError, match="result_expires"):
        load_object_settings({"result_expire": 60})


def test_other_objects_contribute_only_known_names() -> None:
    # Objects such as Django's settings carry unrelated lower-case attributes.
    source = types.SimpleNamespace(configured=True, task_default_queue="jobs")
    assert load_object_settings(source) == {"task_default_queue": "jobs"}


@pytest.fixture
def config_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "celeriac_test_cfg"
    (tmp_path / f"{name}.py").write_text(
        "broker_url = 'memory://'\n\nclass Config:\n    task_default_queue = 'jobs'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_resolve_config_source_accepts_the_three_spellings(config_module: str) -> None:
    module = resolve_config_source(config_module)
    assert isinstance(module, types.ModuleType) and module.broker_url == "memory://"
    by_colon = resolve_config_source(f"{config_module}:Config")
    by_dot = resolve_config_source(f"{config_module}.Config")
    assert by_colon is by_dot is module.Config
    assert load_object_settings(by_colon) == {"task_default_queue": "jobs"}


def test_resolve_config_source_passes_objects_through() -> None:
    source = {"task_serializer": "json"}
    assert resolve_config_source(source) is source


def test_bad_import_paths_raise_import_error_naming_the_path(config_module: str) -> None:
    with pytest.raises(ImportError, match="has no attribute 'Missing'"):
        symbol_by_name(f"{config_module}:Missing")
    with pytest.raises(ImportError, match="no_such_pkg_celeriac"):
        symbol_by_name("no_such_pkg_celeriac.settings")
    with pytest.raises(ImportError, match="Invalid import path"):
        symbol_by_name("a:b:c")
    with pytest.raises(ImportError, match="Invalid import path"):
        symbol_by_name("")


def test_import_errors_inside_a_module_are_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "celeriac_broken_cfg.py").write_text("import celeriac_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ModuleNotFoundError) as info:
            import_module("celeriac_broken_cfg")
        assert info.value.name == "celeriac_missing_dependency"
    finally:
        sys.modules.pop("celeriac_broken_cfg", None)
