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
    servers: set[int]  # pids of the broker and result-backend servers this run uses

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
            servers = {listening_pid(port) for port in system.server_ports()}
            try:
                yield Session(system, listener, workdir, {pid for pid in servers if pid})
            finally:
                with contextlib.suppress(Exception):
                    system.reset()
                with contextlib.suppress(Exception):
                    system.close()
    finally:
        os.chdir(home)
        shutil.rmtree(workdir, ignore_errors=True)
