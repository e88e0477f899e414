"""celeriac on its embedded SQLite file (the default: no URL, ``celeriac.db`` in the cwd)."""

from __future__ import annotations

import sqlite3

from systems.base import System, bin_path, send_loop

SOURCE = """
import time

from celeriac import Celery

app = Celery("benchtasks")  # no URL: the embedded SQLite broker and backend, ./celeriac.db
app.conf.task_ignore_result = {ignore}


@app.task
def noop():
    done()


@app.task
def sleep():
    time.sleep(0.1)
    done()
"""


class CeleriacSqlite(System):
    name = "celeriac-sqlite"
    library = "celeriac"
    broker = "sqlite"
    io_pool = "threads, -c 100"
    call_api = "noop.delay()"

    def task_source(self) -> str:
        return SOURCE.format(ignore=not self.ctx.results)

    def enqueue(self, task: str, count: int, deadline: float) -> int:
        return send_loop(getattr(self.tasks, task).delay, count, deadline)

    def worker_argv(self, io: bool) -> list[str]:
        concurrency = "100" if io else "2"
        return [
            bin_path("celeriac"),
            "-A",
            "benchtasks",
            "worker",
            "-P",
            "threads",
            "-c",
            concurrency,
            "-l",
            "warning",
        ]

    def reset(self) -> None:
        if self.tasks is not None:
            self.tasks.app.broker.purge("celery")

    def results_stored(self) -> int | None:
        with sqlite3.connect(self.ctx.workdir / "celeriac.db") as db:
            return int(db.execute("SELECT count(*) FROM results").fetchone()[0])
