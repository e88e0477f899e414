"""Every error celeriac raises, under one root, with Celery's names.

The tree::

    CeleriacError
    ├── ImproperlyConfigured           a setting, URL or option is wrong (raised at start)
    │   └── UnknownSettingError        a setting name that does not exist
    ├── OperationalError               the broker or backend cannot be reached or used
    ├── NotRegistered (also KeyError)  a message names a task this worker does not know
    ├── QueueNotFound (also KeyError)  a route names a queue that is not declared
    ├── SerializationError
    │   ├── EncodeError                a value cannot be serialized
    │   ├── DecodeError                a payload cannot be deserialized
    │   └── ContentDisallowed          a content type outside ``accept_content``
    ├── TimeoutError                   ``AsyncResult.get(timeout=...)`` ran out
    ├── IncompleteStream               ``collect()`` met a result that is not ready
    ├── TaskError                      raised around the running of a task
    │   ├── Retry                      the task asked to be retried
    │   ├── Ignore                     the task asked its state not to be recorded
    │   ├── Reject                     the task asked its message to be rejected
    │   ├── MaxRetriesExceededError
    │   ├── TaskRevokedError
    │   ├── WorkerLostError
    │   ├── Terminated
    │   ├── TimeLimitExceeded
    │   └── ChordError
    ├── AlwaysEagerIgnored (a warning)
    └── SecurityError                  an exception class that may not be rebuilt from a result

``SoftTimeLimitExceeded`` derives from ``Exception`` (not ``CeleriacError``) on purpose,
as in Celery: code that catches ``Exception`` inside a task must see it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlwaysEagerIgnored",
    "BackendStoreError",
    "CeleriacError",
    "CeleryError",
    "ChordError",
    "ContentDisallowed",
    "DecodeError",
    "EncodeError",
    "Ignore",
    "ImproperlyConfigured",
    "IncompleteStream",
    "MaxRetriesExceededError",
    "NotRegistered",
    "OperationalError",
    "QueueNotFound",
    "Reject",
    "Retry",
    "SecurityError",
    "SerializationError",
    "SoftTimeLimitExceeded",
    "TaskError",
    "TaskRevokedError",
    "Terminated",
    "TimeLimitExceeded",
    "TimeoutError",
    "UnknownSettingError",
    "WorkerLostError",
]


class CeleriacError(Exception):
    """Root of every error celeriac raises."""


#: Celery's name for the root, so ``except CeleryError`` keeps working after the switch.
CeleryError = CeleriacError


class ImproperlyConfigured(CeleriacError):
    """A setting, URL or option is wrong; raised at start, naming the culprit."""


class UnknownSettingError(ImproperlyConfigured, KeyError):
    """A setting name that celeriac does not know (the message names the closest one)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class OperationalError(CeleriacError):
    """The broker or result backend could not be reached or used."""


class NotRegistered(CeleriacError, KeyError):
    """A message names a task that is not registered."""

    def __str__(self) -> str:
        return f"Task of kind {self.args[0]!r} never registered, please make sure it's imported."

    def __repr__(self) -> str:
        return f"NotRegistered({self.args[0]!r})" if self.args else "NotRegistered()"


class QueueNotFound(CeleriacError, KeyError):
    """A route names a queue that is not declared and may not be created."""


class SerializationError(CeleriacError):
    """A value could not be serialized or deserialized."""


class EncodeError(SerializationError):
    """A value could not be serialized (arguments at call time, or a task's return value)."""


class DecodeError(SerializationError):
    """A payload could not be deserialized."""


class ContentDisallowed(SerializationError):
    """A message's content type is not in ``accept_content``."""


class TimeoutError(CeleriacError):
    """The operation timed out (``AsyncResult.get(timeout=...)``)."""


class IncompleteStream(CeleriacError):
    """``AsyncResult.collect()`` found a result in the graph that is not ready yet."""


class TaskError(CeleriacError):
    """Base of the errors raised around running a task."""


class Retry(TaskError):
    """The task is to be retried; raised by ``Task.retry()``."""

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | str | None = None,
        when: Any = None,
        is_eager: bool = False,
        sig: Any = None,
        **kwargs: Any,
    ) -> None:
        self.message = message
        self.exc = exc
        self.when = when
        self.is_eager = is_eager
        self.sig = sig
        super().__init__(self, exc, when, **kwargs)

    def humanize(self) -> str:
        if isinstance(self.when, (int, float)):
            return f"in {self.when}s"
        return f"at {self.when}"

    def __str__(self) -> str:
        if self.message:
            return self.message
        if self.exc:
            return f"Retry {self.humanize()}: {self.exc!r}"
        return f"Retry {self.humanize()}"

    def __reduce__(self) -> Any:
        return self.__class__, (self.message, self.exc, self.when)


RetryTaskError = Retry


class Ignore(TaskError):
    """The task asked for its state not to be recorded."""


class Reject(TaskError):
    """The task asked for its message to be rejected (optionally requeued)."""

    def __init__(self, reason: Any = None, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)

    def __repr__(self) -> str:
        return f"reject requeue={self.requeue}: {self.reason}"


class MaxRetriesExceededError(TaskError):
    """The task was retried more than ``max_retries`` times."""

    def __init__(self, *args: Any, task_args: Any = None, task_kwargs: Any = None) -> None:
        self.task_args = task_args
        self.task_kwargs = task_kwargs
        super().__init__(*args)


class TaskRevokedError(TaskError):
    """The task was revoked (or expired) and will not run."""


class WorkerLostError(TaskError):
    """The process running the task died."""


class Terminated(TaskError):
    """The task was terminated on request."""


class TimeLimitExceeded(TaskError):
    """The task ran past its hard time limit."""


class SoftTimeLimitExceeded(Exception):
    """Raised inside a task that ran past its soft time limit."""

    def __str__(self) -> str:
        return "SoftTimeLimitExceeded" + (f"{self.args}" if self.args else "()")


class ChordError(TaskError):
    """A task in a chord's header failed."""


class AlwaysEagerIgnored(UserWarning):
    """``send_task`` ignores ``task_always_eager``."""


class SecurityError(CeleriacError):
    """A stored exception names a class that may not be rebuilt."""


class BackendStoreError(CeleriacError):
    """The result backend refused a value (too large, unencodable)."""
