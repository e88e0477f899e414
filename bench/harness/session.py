"""One run's surroundings: a temporary work directory, the completion listener, the adapter."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from systems.base import Context, System

from harness.completion import CompletionListener
from harness.cpu import listening_pid
from harness.process import WorkerProcess


@dataclass
class Session:
    system: System
    listener: CompletionListener
    workdir: Path
    broker_pid: int | None

    def worker(self, io: bool = False) -> WorkerProcess:
        """The worker process for this session (not started: use it in a ``with`` block)."""
        env = dict(os.environ)
        env.update(self.system.worker_env(io))
        env["BENCH_DONE_SOCKET"] = str(self.listener.path)
        env["PYTHONPATH"] = str(self.workdir)
        argv = self.system.worker_argv(io)
        return WorkerProcess(argv, self.workdir, env, self.workdir / "worker.log")


@contextlib.contextmanager
def session(system_cls: type[System], results: bool) -> Iterator[Session]:
    """Set up a fresh work directory and broker namespace; clean both up whatever happens."""
    home = Path.cwd()
    workdir = Path(tempfile.mkdtemp(prefix="celeriac-bench-"))
    os.chdir(workdir)
    system = system_cls(Context(workdir=workdir, results=results))
    try:
        with CompletionListener(workdir / "done.sock") as listener:
            system.install()
            system.reset()
            broker = listening_pid(system.broker_port) if system.broker_port else None
            try:
                yield Session(system, listener, workdir, broker)
            finally:
                with contextlib.suppress(Exception):
                    system.reset()
                with contextlib.suppress(Exception):
                    system.close()
    finally:
        os.chdir(home)
        shutil.rmtree(workdir, ignore_errors=True)
