"""Huey on SQLite (``SqliteHuey``, a file in the work directory)."""

from __future__ import annotations

import sqlite3

from systems._huey import SOURCE, HueyBase
from systems.base import QUEUE


class HueySqlite(HueyBase):
    name = "huey-sqlite"
    broker = "sqlite"

    def task_source(self) -> str:
        storage = "filename='huey.db'"
        return SOURCE.format(
            cls="SqliteHuey", queue=QUEUE, storage=storage, results=self.ctx.results
        )

    def results_stored(self) -> int | None:
        with sqlite3.connect(self.ctx.workdir / "huey.db") as db:
            return int(
                db.execute("SELECT count(*) FROM kv WHERE queue = ?", (QUEUE,)).fetchone()[0]
            )
