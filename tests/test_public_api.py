"""Pins the public surface: what CONTRACT.md promises is importable, nothing vanishes."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "celeriac": {
        "Celeriac",
        "Celery",
        "Exchange",
        "Queue",
        "Task",
        "__version__",
        "current_app",
        "current_task",
        "shared_task",
        "states",
        "Signature",
        "chain",
        "chord",
        "chunks",
        "group",
        "maybe_signature",
        "signature",
        "subtask",
        "xmap",
        "xstarmap",
    },
    "celeriac.canvas": {
        "Signature",
        "chain",
        "chord",
        "chunks",
        "group",
        "maybe_signature",
        "signature",
        "subtask",
        "xmap",
        "xstarmap",
    },
    "celeriac.result": {
        "AsyncResult",
        "EagerResult",
        "GroupResult",
        "ResultSet",
        "result_from_tuple",
    },
    "celeriac.exceptions": {
        "Retry",
        "Reject",
        "Ignore",
        "IncompleteStream",
        "MaxRetriesExceededError",
        "SoftTimeLimitExceeded",
        "TimeLimitExceeded",
        "TimeoutError",
        "TaskRevokedError",
        "WorkerLostError",
        "NotRegistered",
        "ChordError",
        "ImproperlyConfigured",
        "CeleriacError",
        "CeleryError",
        "OperationalError",
        "EncodeError",
        "DecodeError",
        "ContentDisallowed",
        "SerializationError",
        "QueueNotFound",
        "Terminated",
        "TaskError",
        "SecurityError",
        "AlwaysEagerIgnored",
        "BackendStoreError",
        "UnknownSettingError",
    },
    "celeriac.states": {
        "PENDING",
        "RECEIVED",
        "STARTED",
        "SUCCESS",
        "FAILURE",
        "REVOKED",
        "REJECTED",
        "RETRY",
        "IGNORED",
        "READY_STATES",
        "UNREADY_STATES",
        "EXCEPTION_STATES",
        "PROPAGATE_STATES",
        "ALL_STATES",
        "PRECEDENCE",
        "precedence",
        "state",
    },
    "celeriac.utils.log": {"get_logger", "get_task_logger", "setup_logging"},
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_module_exports_exactly_the_contract(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name} is declared but missing"


def test_celery_names_of_exceptions_and_states() -> None:
    from celeriac import exceptions, states

    assert exceptions.CeleryError is exceptions.CeleriacError
    assert issubclass(exceptions.NotRegistered, KeyError)
    assert not issubclass(exceptions.SoftTimeLimitExceeded, exceptions.CeleriacError)
    assert {"SUCCESS", "FAILURE", "REVOKED"} == states.READY_STATES
    assert states.state(states.SUCCESS) > states.state(states.PENDING)
