"""``ExceptionInfo``: an exception with its traceback, as task handlers and signals receive it."""

from __future__ import annotations

import traceback as traceback_module
from types import TracebackType

__all__ = ["ExceptionInfo"]


class ExceptionInfo:
    """An exception caught while a task ran (Celery's ``einfo``).

    Attributes:
        exception: the exception instance.
        type: its class.
        tb: the traceback object.
        traceback: the formatted traceback text (what result backends store).
    """

    def __init__(self, exception: BaseException) -> None:
        self.exception = exception
        self.type: type[BaseException] = type(exception)
        self.tb: TracebackType | None = exception.__traceback__
        self.traceback = "".join(traceback_module.format_exception(self.type, exception, self.tb))

    def __str__(self) -> str:
        return self.traceback

    def __repr__(self) -> str:
        return f"<ExceptionInfo: {self.exception!r}>"
