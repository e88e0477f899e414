"""Logging: the worker's log format (Celery's shape) and loggers for tasks.

``get_task_logger(__name__)`` gives a logger whose records carry ``task_name`` and
``task_id`` of the task running at the time, so the task log format can show them.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import Any

from celeriac._context import get_current_task

__all__ = ["get_logger", "get_task_logger", "setup_logging"]

WORKER_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
TASK_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"

#: The parent of every task logger, so a handler can be attached to all task logs at once.
TASK_LOGGER_NAME = "celeriac.task"


def get_logger(name: str) -> logging.Logger:
    """A plain logger (Celery's ``get_logger``)."""
    return logging.getLogger(name)


class _TaskContextFilter(logging.Filter):
    """Adds ``task_name`` and ``task_id`` of the running task to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        task = get_current_task()
        record.task_name = task.name if task is not None else "???"
        record.task_id = (task.request.id if task is not None else None) or "???"
        return True


_task_filter = _TaskContextFilter()


def get_task_logger(name: str) -> logging.Logger:
    """A logger for task modules whose records name the running task and its id."""
    logger = logging.getLogger(f"{TASK_LOGGER_NAME}.{name}" if name != TASK_LOGGER_NAME else name)
    if _task_filter not in logger.filters:
        logger.addFilter(_task_filter)
    return logger


class _WorkerFormatter(logging.Formatter):
    """Uses the task format for records that carry task fields, the worker format otherwise."""

    def __init__(self, fmt: str, task_fmt: str) -> None:
        super().__init__(fmt)
        self._task = logging.Formatter(task_fmt)

    def format(self, record: logging.LogRecord) -> str:
        if hasattr(record, "task_id"):
            return self._task.format(record)
        return super().format(record)


def setup_logging(
    loglevel: int | str = logging.WARNING,
    logfile: str | None = None,
    fmt: str = WORKER_FORMAT,
    task_fmt: str = TASK_FORMAT,
    hijack_root: bool = True,
) -> logging.Logger:
    """Configure the root logger for a worker (or another long-running command)."""
    level = logging.getLevelName(loglevel.upper()) if isinstance(loglevel, str) else loglevel
    if not isinstance(level, int):
        raise ValueError(f"Unknown log level {loglevel!r} (use DEBUG, INFO, WARNING, ERROR)")
    root = logging.getLogger()
    handler: logging.Handler = (
        logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(_WorkerFormatter(fmt, task_fmt))
    if hijack_root:
        for existing in list(root.handlers):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    return root


def level_name(level: Any) -> str:
    return logging.getLevelName(level) if isinstance(level, int) else str(level).upper()


def configure_worker_logging(conf: Any, loglevel: int | str, logfile: str | None) -> None:
    """Set up logging for a worker, letting ``setup_logging`` receivers take over entirely.

    Sends ``setup_logging`` first: when anything is connected to it, celeriac configures
    nothing (the receiver owns logging, as in Celery). Then ``after_setup_logger`` and
    ``after_setup_task_logger`` with the loggers to decorate.
    """
    from celeriac import signals

    level = logging.getLevelName(str(loglevel).upper()) if isinstance(loglevel, str) else loglevel
    common = {"loglevel": level, "logfile": logfile, "colorize": False}
    if signals.setup_logging.has_receivers():
        signals.setup_logging.send(sender=None, format=conf.worker_log_format, **common)
    else:
        setup_logging(
            loglevel,
            logfile,
            conf.worker_log_format,
            conf.worker_task_log_format,
            hijack_root=bool(conf.worker_hijack_root_logger),
        )
    signals.after_setup_logger.send(
        sender=None, logger=logging.getLogger(), format=conf.worker_log_format, **common
    )
    signals.after_setup_task_logger.send(
        sender=None,
        logger=logging.getLogger(TASK_LOGGER_NAME),
        format=conf.worker_task_log_format,
        **common,
    )


class LoggingProxy(io.TextIOBase):
    """A file object whose complete lines become log records (``print()`` in tasks)."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self._logger = logger
        self._level = level
        self._buffer = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            if line.strip():
                self._logger.log(self._level, line)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            line, self._buffer = self._buffer, ""
        if line.strip():
            self._logger.log(self._level, line)

    def isatty(self) -> bool:
        return False


def redirect_stdouts(level: int | str = logging.WARNING) -> None:
    """Send what is printed to stdout and stderr to the log (``worker_redirect_stdouts``)."""
    numeric = logging.getLevelName(str(level).upper()) if isinstance(level, str) else level
    redirected = logging.getLogger("celeriac.redirected")
    sys.stdout = LoggingProxy(redirected, numeric)
    sys.stderr = LoggingProxy(redirected, numeric)
