"""Completion detection, the same for every system: each task writes one byte to a Unix socket.

The generated task module (see ``systems/taskmodule.py``) opens one stream connection per
worker process to the socket this listener serves and sends one byte at the end of every task
body. The listener counts bytes and timestamps the first and the last one. It costs a task
one ``send()`` system call (a few microseconds), touches neither the broker nor the result
backend under test, and cannot lose a completion (a stream socket, unlike a datagram, blocks
instead of dropping).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from pathlib import Path


class CompletionListener:
    """Counts task completions reported over a Unix stream socket at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self._target = 1 << 62
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(512)
        self._server.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._server, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._serve, name="completions", daemon=True)

    def __enter__(self) -> CompletionListener:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        for key in list(self._selector.get_map().values()):
            with contextlib.suppress(OSError):
                key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def reset(self) -> None:
        """Forget what was counted (between two phases of one run)."""
        with self._cond:
            self.count = 0
            self.first = self.last = None

    def progress(self) -> tuple[int, float, float]:
        """(count, first, last) read together; times are 0.0 before the first completion."""
        with self._cond:
            return self.count, self.first or 0.0, self.last or 0.0

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until ``count`` completions were seen or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._target = count
            while self.count < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
            return True

    def _serve(self) -> None:
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                if key.fileobj is self._server:
                    self._accept()
                else:
                    self._read(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError):
            conn, _ = self._server.accept()
            conn.setblocking(False)
            self._selector.register(conn, selectors.EVENT_READ)

    def _read(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._selector.unregister(conn)
            conn.close()
            return
        now = time.perf_counter()
        with self._cond:
            if self.first is None:
                self.first = now
            self.count += len(data)
            self.last = now
            if self.count >= self._target:
                self._cond.notify_all()
