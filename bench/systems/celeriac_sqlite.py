"""celeriac on its embedded SQLite file (the default: no URL, ``celeriac.db`` in the cwd).

The primary row, ``-P threads -c 2``, is the one every ratio is computed against; the prefork
row shows celeriac's other way to use both cores.
"""

from __future__ import annotations

import sqlite3

from systems._celeriac import CeleriacBase
from systems.base import QUEUE


class CeleriacSqlite(CeleriacBase):
    name = "celeriac-sqlite"
    broker = "sqlite"

    def reset(self) -> None:
        if self.tasks is not None:
            self.tasks.app.broker.purge(QUEUE)

    def results_stored(self) -> int | None:
        with sqlite3.connect(self.ctx.workdir / "celeriac.db") as db:
            return int(db.execute("SELECT count(*) FROM results").fetchone()[0])


class CeleriacSqlitePrefork(CeleriacSqlite):
    name = "celeriac-sqlite-prefork"
    pool = "prefork"
