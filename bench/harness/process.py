"""Worker processes: started in a process group of their own, always stopped by that group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from harness.cpu import tree_pids


class WorkerProcess:
    """One worker command line, run in ``cwd`` with its output in ``log``.

    Used as a context manager: leaving the block stops the whole process group (SIGTERM, then
    SIGKILL after ``grace`` seconds: the measurements are over and the broker namespace is
    flushed afterwards), and any descendant that left the group, by pid.
    """

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0
        self._known: set[int] = set()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> WorkerProcess:
        with self.log.open("ab") as out:
            self.spawned_at = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def tree(self) -> set[int]:
        """The worker's live process tree (remembered, so stop() can reach strays)."""
        pids = tree_pids(self.pid)
        self._known |= pids
        return pids

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 1.0) -> None:
        if self.proc is None:
            return
        self.tree()
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.proc.wait(10)
        self._kill_strays()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def _kill_strays(self) -> None:
        # Children that outlived the group leader (a pool's processes still exiting) are ours:
        # give them a moment, then kill those still alive, by pid.
        deadline = time.monotonic() + 3
        strays = {pid for pid in self._known if pid != self.pid and _exists(pid)}
        while strays and time.monotonic() < deadline:
            time.sleep(0.05)
            strays = {pid for pid in strays if _exists(pid)}
        for pid in strays:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists": treat an exited-but-unreaped child as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
