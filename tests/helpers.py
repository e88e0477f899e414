"""Helpers for tests that run celeriac the way a user does: real worker processes via the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["WorkerProcess", "run_cli", "run_python", "write_module"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_module(directory: Path, name: str, source: str) -> Path:
    """Write ``name.py`` into ``directory`` with dedented ``source``."""
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("CELERY_BROKER_URL", None)
    env.pop("CELERY_RESULT_BACKEND", None)
    if extra:
        env.update(extra)
    return env


def run_cli(
    args: Sequence[str],
    cwd: Path,
    *,
    timeout: float = 30.0,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``celeriac ARGS`` (as ``python -m celeriac``) in ``cwd`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "celeriac", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        env=_env(env),
    )


class WorkerProcess:
    """A ``celeriac worker`` subprocess; use as a context manager.

    Waits until the worker logs ``ready.``; on exit sends SIGTERM (warm shutdown) and waits,
    killing it if it does not stop in time. ``output`` holds everything it printed.
    """

    def __init__(
        self,
        app: str,
        cwd: Path,
        *args: str,
        loglevel: str = "INFO",
        env: dict[str, str] | None = None,
        ready_timeout: float = 20.0,
        ready_marker: str = " ready.",
    ) -> None:
        self.cmd = [sys.executable, "-m", "celeriac", "-A", app, "worker", "-l", loglevel, *args]
        self.cwd = cwd
        self.env = _env(env)
        self.ready_timeout = ready_timeout
        self.ready_marker = ready_marker
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def output(self) -> str:
        return "".join(self._lines)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> WorkerProcess:
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(self.ready_timeout):
            self.kill()
            raise AssertionError(f"worker did not become ready:\n{self.output}")
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)
            if self.ready_marker in line:
                self._ready.set()

    def wait_for_output(self, text: str, timeout: float = 10.0) -> None:
        """Wait until ``text`` appears in the output (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not in worker output:\n{self.output}")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 20.0) -> int:
        """Warm shutdown (SIGTERM); returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"worker did not stop on SIGTERM:\n{self.output}") from None
        self._join_reader()
        return code

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._join_reader()

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(5)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.stop()
        finally:
            self.kill()


def run_python(cwd: Path, code: str, timeout: float = 60.0) -> str:
    """Run ``python -c CODE`` in ``cwd`` (a producer, as a user would); returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
