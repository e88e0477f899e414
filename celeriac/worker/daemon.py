"""Running a worker as a daemon: detaching, the pidfile lock, and file name expansion.

``celeriac worker --detach`` forks twice (so the daemon is not a session leader and can never
acquire a terminal), starts a new session, changes directory and umask, reads stdin from
``/dev/null`` and writes stdout/stderr to the log file. The process that started it waits on a
pipe until the daemon reports that it is ready (or dies), so ``celeriac worker --detach``, and
therefore ``celeriac multi start``, only says OK for a node that really started.

File names given to ``--logfile`` and ``--pidfile`` may use Celery's abbreviations: ``%p``
(full node name), ``%n`` (node name part before ``@``), ``%h`` (host name with domain), ``%d``
(domain), ``%i`` (pool process index, ``0`` in the main process) and ``%I`` (the index with a
separator: empty in the main process, ``-N`` in pool process N).
"""

from __future__ import annotations

import grp
import os
import pwd
import select
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from celeriac import signals
from celeriac.exceptions import CeleriacError

__all__ = [
    "DaemonOptions",
    "Pidfile",
    "ReadyPipe",
    "daemon_context",
    "detach",
    "expand_filename",
    "pid_is_alive",
    "read_pid",
    "resolve_gid",
    "resolve_uid",
]


def expand_filename(template: str, nodename: str, index: int | None = None) -> str:
    """Expand Celery's ``%`` abbreviations in a file name for node ``nodename``.

    ``index`` is the pool process index; ``None`` means the main process (``%i`` → ``0``,
    ``%I`` → empty). ``%%`` is a literal ``%``.
    """
    name, _, host = nodename.partition("@")
    host = host or socket.gethostname()
    domain = host.partition(".")[2]
    values = {
        "p": nodename,
        "n": name,
        "h": host,
        "d": domain,
        "i": str(index or 0),
        "I": "" if index is None else f"-{index}",
        "%": "%",
    }
    out: list[str] = []
    chars = iter(template)
    for char in chars:
        if char != "%":
            out.append(char)
            continue
        key = next(chars, "")
        # An unknown abbreviation stays as written, as Celery leaves it.
        out.append(values.get(key, "%" + key))
    return "".join(out)


# --- pid files -------------------------------------------------------------------------------


def pid_is_alive(pid: int) -> bool:
    """True when process ``pid`` exists and is not a zombie.

    A daemon's parent is init (or a container's PID 1), which may be slow to reap, or never
    reap: a zombie has exited and must count as gone.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            # The state follows the parenthesised command name, which may itself hold spaces.
            state = handle.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def read_pid(path: str) -> int | None:
    """The pid stored in ``path``; None when the file is missing, empty or not a number."""
    try:
        with open(path) as handle:
            text = handle.read().strip()
    except FileNotFoundError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


class Pidfile:
    """A pidfile used as a lock: one live process per file.

    ``acquire()`` refuses a file naming a live process and replaces a stale one (a process
    that died without cleaning up, e.g. after SIGKILL).
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._owned = False

    def check(self) -> None:
        """Raise if a live process holds the file; remove the file if its process is gone."""
        pid = read_pid(self.path)
        if pid is not None and pid != os.getpid() and pid_is_alive(pid):
            raise CeleriacError(
                f"Pidfile ({self.path}) already exists.\nSeems we're already running? (pid: {pid})"
            )
        if os.path.exists(self.path):
            os.remove(self.path)

    def acquire(self) -> None:
        """Write our pid; raises when another live process holds the file."""
        self.check()
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileExistsError:
            # Another process created it between check() and here: it won the race.
            raise CeleriacError(
                f"Pidfile ({self.path}) already exists.\n"
                f"Seems we're already running? (pid: {read_pid(self.path)})"
            ) from None
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        self._owned = True

    def release(self) -> None:
        """Remove the file if it still names this process."""
        if self._owned and read_pid(self.path) == os.getpid():
            os.remove(self.path)
        self._owned = False


# --- users and groups ------------------------------------------------------------------------


def resolve_uid(value: str) -> int:
    """The uid for a user name or number; raises a clear error for an unknown user."""
    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        pass
    try:
        return pwd.getpwuid(int(value)).pw_uid
    except (KeyError, ValueError):
        raise CeleriacError(f"--uid: no such user: {value!r}") from None


def resolve_gid(value: str) -> int:
    """The gid for a group name or number; raises a clear error for an unknown group."""
    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        pass
    try:
        return grp.getgrgid(int(value)).gr_gid
    except (KeyError, ValueError):
        raise CeleriacError(f"--gid: no such group: {value!r}") from None


@dataclass
class DaemonOptions:
    """The daemon options of ``celeriac worker`` (None: leave as is)."""

    logfile: str | None = None
    pidfile: str | None = None
    workdir: str | None = None
    umask: int | None = None
    uid: str | None = None
    gid: str | None = None

    def resolved_ids(self) -> tuple[int | None, int | None]:
        """(uid, gid) to switch to; raises unless they resolve and we may switch to them."""
        uid = resolve_uid(self.uid) if self.uid is not None else None
        gid = resolve_gid(self.gid) if self.gid is not None else None
        changes = (uid is not None and uid != os.geteuid()) or (
            gid is not None and gid != os.getegid()
        )
        if changes and os.geteuid() != 0:
            raise CeleriacError(
                "--uid/--gid can only switch user when the worker is started as root "
                f"(running as uid {os.geteuid()})."
            )
        return uid, gid


def drop_privileges(uid: int | None, gid: int | None) -> None:
    """Switch to ``gid`` then ``uid`` (in that order: after setuid, setgid is not allowed)."""
    if gid is not None and gid != os.getegid():
        os.setgroups([gid])
        os.setgid(gid)
    if uid is not None and uid != os.geteuid():
        if gid is None:
            entry = pwd.getpwuid(uid)
            os.initgroups(entry.pw_name, entry.pw_gid)
            os.setgid(entry.pw_gid)
        os.setuid(uid)


def parse_umask(value: str | None) -> int | None:
    """``--umask`` as Celery reads it: octal (``022``, ``0o22``); None when not given."""
    if value is None or value == "":
        return None
    try:
        return int(value, 8)
    except ValueError:
        raise CeleriacError(f"--umask must be an octal number, not {value!r}") from None


# --- detaching -------------------------------------------------------------------------------


#: How long the starting command waits for the daemon to say it is ready.
READY_TIMEOUT = 60.0


class ReadyPipe:
    """The daemon's way to tell the command that started it that it is ready (or failed)."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def wait(self, timeout: float = READY_TIMEOUT) -> str | None:
        """In the starting process: the daemon's message, or None if it died or timed out."""
        os.close(self.write_fd)
        data = b""
        deadline = time.monotonic() + timeout
        while b"\0" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                break
            chunk = os.read(self.read_fd, 4096)
            if not chunk:  # the daemon exited without a word
                break
            data += chunk
        os.close(self.read_fd)
        return data.partition(b"\0")[0].decode(errors="replace") if b"\0" in data else None

    def notify(self, message: str) -> None:
        """In the daemon: send ``message`` (NUL-terminated: it may span lines) once, then close."""
        if self.write_fd < 0:
            return
        try:
            os.write(self.write_fd, message.encode() + b"\0")
        except OSError:  # the starting command has gone: nobody to tell
            pass
        os.close(self.write_fd)
        self.write_fd = -1


def detach(options: DaemonOptions, log_path: str | None) -> ReadyPipe:
    """Turn this process into a daemon; the original process exits when the daemon reports.

    Returns, in the daemon only, the pipe on which to report readiness.
    """
    uid, gid = options.resolved_ids()
    pipe = ReadyPipe()
    if os.fork() > 0:
        _exit_when_ready(pipe, log_path)
    os.close(pipe.read_fd)
    os.setsid()
    if os.fork() > 0:
        # The session leader leaves, so the daemon can never reacquire a controlling terminal.
        os._exit(0)
    if options.workdir:
        os.chdir(options.workdir)
    os.umask(0o022 if options.umask is None else options.umask)
    drop_privileges(uid, gid)
    _redirect_streams(log_path)
    return pipe


def _exit_when_ready(pipe: ReadyPipe, log_path: str | None) -> None:
    message = pipe.wait()
    if message == "ok":
        os._exit(0)
    where = f" (see {log_path})" if log_path else ""
    sys.stderr.write(f"Error: {message or 'the detached worker exited during start-up'}{where}\n")
    sys.stderr.flush()
    os._exit(1)


def _redirect_streams(log_path: str | None) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    if log_path:
        directory = os.path.dirname(os.path.abspath(log_path))
        os.makedirs(directory, exist_ok=True)
        out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    else:
        out = null
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in {null, out}:
        if fd > 2:
            os.close(fd)


#: Carries the ready pipe's fd across ``--executable``'s exec into the new interpreter.
READY_FD_ENV = "CELERIAC_READY_FD"


@contextmanager
def daemon_context(
    options: DaemonOptions, *, detached: bool, executable: str | None = None
) -> Iterator[None]:
    """Run the body as the worker process: detached if asked, holding the pidfile.

    Reports readiness (the ``worker_ready`` signal) or the start-up error to the command that
    started a detached worker, and removes the pidfile on the way out.
    """
    pipe = _inherited_pipe()
    if detached:
        if options.pidfile:
            Pidfile(options.pidfile).check()  # fail in the foreground, where the user looks
        pipe = detach(options, options.logfile)
        if executable and not _same_file(executable, sys.executable):
            _exec_worker(executable, pipe)
    else:
        uid, gid = options.resolved_ids()
        drop_privileges(uid, gid)
        if options.umask is not None:
            os.umask(options.umask)
    pidlock = Pidfile(options.pidfile) if options.pidfile else None
    if pipe is not None:
        signals.worker_ready.connect(lambda sender, **_: pipe.notify("ok"), weak=False)
    try:
        if pidlock is not None:
            pidlock.acquire()
        yield
    except BaseException as exc:
        if pipe is not None:
            pipe.notify(str(exc) or type(exc).__name__)
        raise
    finally:
        if pidlock is not None:
            pidlock.release()


def _inherited_pipe() -> ReadyPipe | None:
    value = os.environ.pop(READY_FD_ENV, "")
    if not value.isdigit():
        return None
    pipe = ReadyPipe.__new__(ReadyPipe)
    pipe.read_fd, pipe.write_fd = -1, int(value)
    return pipe


def _same_file(first: str, second: str) -> bool:
    return os.path.realpath(first) == os.path.realpath(second)


def _exec_worker(executable: str, pipe: ReadyPipe) -> None:
    """Replace the daemon with ``executable -m celeriac ...`` (the same command, in place)."""
    os.set_inheritable(pipe.write_fd, True)
    os.environ[READY_FD_ENV] = str(pipe.write_fd)
    argv = [executable, "-m", "celeriac", *_without_detach(sys.argv[1:])]
    os.execv(executable, argv)


def _without_detach(args: list[str]) -> list[str]:
    """The command line minus ``--detach`` and ``--workdir`` (already applied: we are there)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-D", "--detach") or arg.startswith("--workdir="):
            continue
        elif arg == "--workdir":
            skip = True
        else:
            out.append(arg)
    return out
