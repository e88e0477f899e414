"""The embedded default broker: one SQLite file shared by every process that names it.

Three tables (see ``SCHEMA``): ``messages`` holds ready and claimed messages, ``scheduled``
holds delayed ones until they are due, ``dead_letters`` holds messages that could not run.
Remote control uses three more: ``broadcasts`` (fanout messages, read by every subscriber
from the id that was current when it subscribed, pruned by age), ``direct_bindings`` and
``direct_messages`` (transient reply queues, read and deleted by their one reader).

A claim is one ``BEGIN IMMEDIATE`` transaction that first moves due ``scheduled`` rows into
``messages`` (a bounded batch, by whichever consumer claims first, so delayed messages cost
nothing until due), every half second gives lapsed leases back, and then leases the first
ready rows in (priority, id) order under a fresh random token. A delivery tag is
``"<id>:<token>"`` and every settle statement matches both, so a consumer whose lease lapsed
and whose message went to someone else can no longer ack, reject or renew it.

An idle consumer never holds a transaction: it watches ``PRAGMA data_version`` (which moves
when another connection commits) through :meth:`SQLiteFile.wait_for_change`, and also wakes
when the earliest delayed message is due or the earliest lease lapses.
"""

from __future__ import annotations

import abc
import secrets
import sqlite3
import time
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, ClassVar

from celeriac.brokers.base import (
    Broker,
    DeadLetter,
    Delivery,
    ExchangeType,
    Outgoing,
    Subscription,
)
from celeriac.exceptions import EncodeError
from celeriac.message import Message
from celeriac.serialization import json_dumps, json_loads
from celeriac.utils.sqlite import SQLiteFile, path_from_url

__all__ = ["SCHEMA", "SQLiteBroker"]

#: How many due delayed messages one claim moves into ``messages`` (keeps claims short).
MOVE_BATCH = 500
#: How often (seconds) one broker instance looks for lapsed leases while claiming.
LEASE_SWEEP_INTERVAL = 0.5
#: Longest single wait on ``data_version``; each wait restarts its fast polling, which
#: keeps an idle consumer's pick-up latency at a few milliseconds.
POLL_SLICE = 0.02
#: Most SQL variables put in one ``IN (...)`` list (SQLite allows 32766 since 3.32).
IN_CHUNK = 500
#: How long a broadcast is kept for subscribers still to read it (seconds).
BROADCAST_KEEP = 60.0
#: How long an unread direct message, and a binding with no ``expires``, are kept (seconds).
DIRECT_KEEP = 300.0

SCHEMA = """
-- messages: ready (lease_until = 0) and claimed (lease_until = lease expiry, UNIX seconds)
-- messages. AUTOINCREMENT never reuses an id, so id order is publication order and an id
-- in a log line or delivery tag names one message forever.
CREATE TABLE IF NOT EXISTS messages (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    queue            TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,  -- 0..255, lower is claimed first
    headers          TEXT    NOT NULL,            -- kombu-dialect JSON object
    properties       TEXT    NOT NULL,            -- kombu-dialect JSON object
    body             BLOB    NOT NULL,
    content_type     TEXT    NOT NULL,
    content_encoding TEXT    NOT NULL,
    lease_until      REAL    NOT NULL DEFAULT 0,
    lease_token      TEXT,                        -- the claim's random token while leased
    redelivered      INTEGER NOT NULL DEFAULT 0,
    published_at     REAL    NOT NULL
);
-- Serves the claim: the ready rows of one queue in claim order, and size().
CREATE INDEX IF NOT EXISTS messages_ready
    ON messages (queue, priority, id) WHERE lease_until = 0;
-- Serves the lease sweep and the idle consumer's "when does the next lease lapse".
CREATE INDEX IF NOT EXISTS messages_leased
    ON messages (lease_until) WHERE lease_until > 0;

-- scheduled: delayed messages, moved into messages when due (by the next claim).
CREATE TABLE IF NOT EXISTS scheduled (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    due              REAL    NOT NULL,            -- UNIX seconds
    queue            TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    headers          TEXT    NOT NULL,
    properties       TEXT    NOT NULL,
    body             BLOB    NOT NULL,
    content_type     TEXT    NOT NULL,
    content_encoding TEXT    NOT NULL,
    published_at     REAL    NOT NULL
);
-- Serves the move of due rows and the wake-up time of idle consumers.
CREATE INDEX IF NOT EXISTS scheduled_due ON scheduled (due);
-- Serves size() and purge() without scanning every delayed message.
CREATE INDEX IF NOT EXISTS scheduled_queue ON scheduled (queue);

-- dead_letters: messages that could not run, kept until requeued.
CREATE TABLE IF NOT EXISTS dead_letters (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    queue            TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    time             REAL    NOT NULL,            -- when it was dead-lettered, UNIX seconds
    priority         INTEGER NOT NULL DEFAULT 0,
    headers          TEXT    NOT NULL,
    properties       TEXT    NOT NULL,
    body             BLOB    NOT NULL,
    content_type     TEXT    NOT NULL,
    content_encoding TEXT    NOT NULL,
    published_at     REAL    NOT NULL
);

-- broadcasts: fanout messages (remote control). A subscriber reads the rows of its
-- exchange with an id above the highest id it has seen; rows are pruned by age.
CREATE TABLE IF NOT EXISTS broadcasts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    exchange         TEXT    NOT NULL,
    routing_key      TEXT    NOT NULL,
    headers          TEXT    NOT NULL,
    properties       TEXT    NOT NULL,
    body             BLOB    NOT NULL,
    content_type     TEXT    NOT NULL,
    content_encoding TEXT    NOT NULL,
    published_at     REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS broadcasts_exchange ON broadcasts (exchange, id);

-- direct_bindings: transient queues bound to a direct exchange (reply queues); a binding
-- past its expires_at (UNIX seconds) is pruned with its messages.
CREATE TABLE IF NOT EXISTS direct_bindings (
    exchange         TEXT    NOT NULL,
    routing_key      TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    expires_at       REAL    NOT NULL,
    PRIMARY KEY (exchange, routing_key, queue)
);

-- direct_messages: what direct_publish routed to a transient queue, until its reader takes it.
CREATE TABLE IF NOT EXISTS direct_messages (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    queue            TEXT    NOT NULL,
    headers          TEXT    NOT NULL,
    properties       TEXT    NOT NULL,
    body             BLOB    NOT NULL,
    content_type     TEXT    NOT NULL,
    content_encoding TEXT    NOT NULL,
    published_at     REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS direct_messages_queue ON direct_messages (queue, id);
"""

# The columns a message carries from table to table, in this order everywhere.
_MESSAGE_COLUMNS = (
    "queue, priority, headers, properties, body, content_type, content_encoding, published_at"
)

_INSERT_READY = f"""
-- messages: one new ready row. args: {_MESSAGE_COLUMNS}
INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""

_INSERT_SCHEDULED = f"""
-- scheduled: one new delayed row. args: due, {_MESSAGE_COLUMNS}
INSERT INTO scheduled (due, {_MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_EARLIEST_DUE = """
-- scheduled.due: the earliest due time (NULL when nothing is delayed).
SELECT min(due) FROM scheduled
"""

# The next two statements pick the same rows (same filter, order and limit, same
# transaction): the first copies them, the second deletes them.
_MOVE_DUE = f"""
-- scheduled -> messages: copy the first due rows as ready, in due order. args: now, batch
INSERT INTO messages ({_MESSAGE_COLUMNS})
SELECT {_MESSAGE_COLUMNS} FROM scheduled WHERE due <= ? ORDER BY due, id LIMIT ?
"""

_DELETE_MOVED = """
-- scheduled: delete the rows _MOVE_DUE copied. args: now, batch
DELETE FROM scheduled
WHERE id IN (SELECT id FROM scheduled WHERE due <= ? ORDER BY due, id LIMIT ?)
"""

_RETURN_LAPSED = """
-- messages.lease_until, lease_token, redelivered: lapsed leases become ready again.
-- args: now
UPDATE messages SET lease_until = 0, lease_token = NULL, redelivered = 1
WHERE lease_until > 0 AND lease_until <= ?
"""

_CLAIMED_COLUMNS = (
    "id, queue, priority, headers, properties, body, content_type, content_encoding, redelivered"
)

_CLAIM_ONE_QUEUE = f"""
-- messages.lease_until, lease_token: lease the first ready rows of one queue.
-- args: lease_until, lease_token, queue, limit. Returns the rows, in no particular order.
UPDATE messages SET lease_until = ?, lease_token = ?
WHERE id IN (
    SELECT id FROM messages WHERE lease_until = 0 AND queue = ? ORDER BY priority, id LIMIT ?
)
RETURNING {_CLAIMED_COLUMNS}
"""

# One branch per queue, so each reads its own stretch of messages_ready and a backlog on
# one queue never has to be sorted whole.
_CLAIM_BRANCH = """SELECT * FROM (
        SELECT id, priority FROM messages WHERE lease_until = 0 AND queue = ?
        ORDER BY priority, id LIMIT ?)"""

_CLAIM_MANY_QUEUES = """
-- messages.lease_until, lease_token: lease the first ready rows across several queues.
-- args: lease_until, lease_token, (queue, limit) per queue, limit. Returns the rows.
UPDATE messages SET lease_until = ?, lease_token = ?
WHERE id IN (
    SELECT id FROM ({branches}) ORDER BY priority, id LIMIT ?
)
RETURNING {columns}
"""

_PEEK = """
-- messages.queue, lease_until; scheduled.due: is anything ready on these queues, when is
-- the next delayed message due, when does the next lease lapse. args: the queues
SELECT
    EXISTS(SELECT 1 FROM messages WHERE lease_until = 0 AND queue IN ({marks})),
    (SELECT min(due) FROM scheduled),
    (SELECT min(lease_until) FROM messages WHERE lease_until > 0)
"""

_DELETE_HELD = """
-- messages: delete a row still held under this lease. args: id, lease_token
DELETE FROM messages WHERE id = ? AND lease_token = ?
"""

_REQUEUE_HELD = """
-- messages.lease_until, lease_token, redelivered: a held row becomes ready again, keeping
-- its id and so its place in the queue. args: id, lease_token
UPDATE messages SET lease_until = 0, lease_token = NULL, redelivered = 1
WHERE id = ? AND lease_token = ?
"""

_RENEW_HELD = """
-- messages.lease_until: extend a lease still held. args: lease_until, id, lease_token
UPDATE messages SET lease_until = ? WHERE id = ? AND lease_token = ?
"""

_DEAD_LETTER_HELD = f"""
-- messages -> dead_letters: copy a held row with its reason. args: reason, time, id, lease_token
INSERT INTO dead_letters (reason, time, {_MESSAGE_COLUMNS})
SELECT ?, ?, {_MESSAGE_COLUMNS} FROM messages WHERE id = ? AND lease_token = ?
"""

_LIST_DEAD_LETTERS = """
-- dead_letters: the oldest entries. args: limit
SELECT id, queue, reason, time, headers, properties, body, content_type, content_encoding
FROM dead_letters ORDER BY id LIMIT ?
"""

_REQUEUE_DEAD = f"""
-- dead_letters -> messages: copy entries back as ready and redelivered, oldest first.
-- args: the dead-letter ids (all entries when the filter is empty)
INSERT INTO messages ({_MESSAGE_COLUMNS}, redelivered)
SELECT {_MESSAGE_COLUMNS}, 1 FROM dead_letters {{where}} ORDER BY id
"""

_DELETE_DEAD = """
-- dead_letters: delete the entries _REQUEUE_DEAD copied. args: the dead-letter ids
DELETE FROM dead_letters {where}
"""

_PURGE_READY = """
-- messages: delete the ready rows of a queue (claimed rows stay with their holder).
-- args: queue
DELETE FROM messages WHERE queue = ? AND lease_until = 0
"""

_PURGE_SCHEDULED = """
-- scheduled: delete the delayed rows of a queue. args: queue
DELETE FROM scheduled WHERE queue = ?
"""

# Writes nothing (no row matches) yet fails on a read-only or locked file: a write probe.
_TOUCH = "DELETE FROM messages WHERE 0"

_SIZE = """
-- messages.queue, lease_until; scheduled.queue: ready plus delayed rows of a queue.
-- args: queue, queue
SELECT (SELECT count(*) FROM messages WHERE queue = ? AND lease_until = 0)
     + (SELECT count(*) FROM scheduled WHERE queue = ?)
"""

_TRANSIENT_COLUMNS = "headers, properties, body, content_type, content_encoding"

_INSERT_BROADCAST = f"""
-- broadcasts: one fanout message. args: exchange, routing_key, {_TRANSIENT_COLUMNS}, published_at
INSERT INTO broadcasts (exchange, routing_key, {_TRANSIENT_COLUMNS}, published_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""

_PRUNE_BROADCASTS = """
-- broadcasts: forget rows older than the keep time. args: oldest published_at kept
DELETE FROM broadcasts WHERE published_at < ?
"""

_LAST_BROADCAST = """
-- broadcasts.id: where a new subscriber starts reading (0 when the table is empty)
SELECT coalesce(max(id), 0) FROM broadcasts
"""

_READ_BROADCASTS = f"""
-- broadcasts: the rows of an exchange after the last one read. args: exchange, last id
SELECT id, {_TRANSIENT_COLUMNS} FROM broadcasts WHERE exchange = ? AND id > ? ORDER BY id
"""

_BIND_DIRECT = """
-- direct_bindings: bind (or refresh) a transient queue. args: exchange, routing_key, queue,
-- expires_at
INSERT OR REPLACE INTO direct_bindings (exchange, routing_key, queue, expires_at)
VALUES (?, ?, ?, ?)
"""

_UNBIND_DIRECT = """
-- direct_bindings: unbind a transient queue. args: queue
DELETE FROM direct_bindings WHERE queue = ?
"""

_DROP_DIRECT_MESSAGES = """
-- direct_messages: drop what a closed transient queue still holds. args: queue
DELETE FROM direct_messages WHERE queue = ?
"""

_PRUNE_DIRECT = """
-- direct_bindings: bindings past their expiry. args: now
DELETE FROM direct_bindings WHERE expires_at < ?
"""

_PRUNE_DIRECT_MESSAGES = """
-- direct_messages: messages of unbound queues or older than the keep time.
-- args: oldest published_at kept
DELETE FROM direct_messages
WHERE published_at < ? OR queue NOT IN (SELECT queue FROM direct_bindings)
"""

_ROUTE_DIRECT = f"""
-- direct_bindings -> direct_messages: one row per queue bound with the routing key.
-- args: {_TRANSIENT_COLUMNS}, published_at, exchange, routing_key
INSERT INTO direct_messages (queue, {_TRANSIENT_COLUMNS}, published_at)
SELECT queue, ?, ?, ?, ?, ?, ? FROM direct_bindings WHERE exchange = ? AND routing_key = ?
"""

_HAS_DIRECT = """
-- direct_messages: does a queue hold anything (a read, so idle polls write nothing).
-- args: queue
SELECT EXISTS(SELECT 1 FROM direct_messages WHERE queue = ?)
"""

_TAKE_DIRECT = f"""
-- direct_messages: take (read and delete) the messages of one queue. args: queue
DELETE FROM direct_messages WHERE queue = ? RETURNING id, {_TRANSIENT_COLUMNS}
"""

_Row = tuple[Any, ...]
_CLAIM_ORDER = itemgetter(2, 0)  # (priority, id) in a row of _CLAIMED_COLUMNS


class SQLiteBroker(Broker):
    """The embedded broker: a SQLite file in WAL mode shared by many processes.

    Args:
        url: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``
            (``sqla+sqlite://`` is accepted too). The file is created on first use.
        options: ``visibility_timeout`` sets the lease length in seconds (default 30).
    """

    schemes: ClassVar[tuple[str, ...]] = ("sqlite", "sqla+sqlite")

    def __init__(self, url: str, *, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        self._db = SQLiteFile(path_from_url(url), SCHEMA)
        self._next_lease_sweep = 0.0  # time.monotonic() of this instance's next sweep
        self._claim_sql: dict[int, str] = {}
        self._peek_sql: dict[int, str] = {}

    @property
    def path(self) -> str:
        """The database file's absolute path."""
        return self._db.path

    def close(self) -> None:
        """Close this thread's connection to the file."""
        self._db.close()

    # --- producing -------------------------------------------------------------------------

    def publish_many(self, items: Sequence[Outgoing]) -> None:
        """Insert the batch in one transaction; a future ``eta`` goes to ``scheduled``."""
        if not items:
            return
        now = time.time()
        ready: list[_Row] = []
        delayed: list[_Row] = []
        for item in items:
            row = _message_row(item.queue, item.message, now)
            if item.eta is not None and item.eta > now:
                delayed.append((item.eta, *row))
            else:
                ready.append(row)

        def work(conn: sqlite3.Connection) -> None:
            if ready:
                conn.executemany(_INSERT_READY, ready)
            if delayed:
                conn.executemany(_INSERT_SCHEDULED, delayed)

        self._db.write("publish", work)

    # --- consuming -------------------------------------------------------------------------

    def _claim(self, queues: list[str], limit: int, timeout: float) -> list[Delivery]:
        """Lease up to ``limit`` messages; while none is ready, wait without a transaction."""
        deadline = time.monotonic() + timeout
        while True:
            deliveries = self._claim_now(queues, limit)
            if deliveries or not self._wait_for_work(queues, deadline):
                return deliveries

    def _claim_now(self, queues: Sequence[str], limit: int) -> list[Delivery]:
        """One claim transaction: move due messages, maybe sweep leases, lease ready rows."""
        now = time.time()
        token = secrets.token_hex(8)
        sweep = time.monotonic() >= self._next_lease_sweep
        if sweep:
            self._next_lease_sweep = time.monotonic() + LEASE_SWEEP_INTERVAL
        sql, params = self._claim_statement(queues, limit, now + self.lease_seconds, token)

        def work(conn: sqlite3.Connection) -> list[_Row]:
            due = conn.execute(_EARLIEST_DUE).fetchone()[0]
            if due is not None and due <= now:
                conn.execute(_MOVE_DUE, (now, MOVE_BATCH))
                conn.execute(_DELETE_MOVED, (now, MOVE_BATCH))
            if sweep:
                conn.execute(_RETURN_LAPSED, (now,))
            return conn.execute(sql, params).fetchall()

        rows = self._db.write("claim messages", work)
        if not rows:
            return []
        self._db.mark_active()  # busy: look for the next message without delay
        # RETURNING gives no order guarantee; the contract is (priority, publication order).
        rows.sort(key=_CLAIM_ORDER)
        return [
            Delivery(
                Message(body, json_loads(headers), json_loads(properties), ctype, encoding),
                queue,
                f"{row_id}:{token}",
                bool(redelivered),
            )
            for row_id, queue, _, headers, properties, body, ctype, encoding, redelivered in rows
        ]

    def _claim_statement(
        self, queues: Sequence[str], limit: int, lease_until: float, token: str
    ) -> tuple[str, tuple[Any, ...]]:
        count = len(queues)
        if count == 1:
            return _CLAIM_ONE_QUEUE, (lease_until, token, queues[0], limit)
        sql = self._claim_sql.get(count)
        if sql is None:
            branches = " UNION ALL ".join([_CLAIM_BRANCH] * count)
            sql = _CLAIM_MANY_QUEUES.format(branches=branches, columns=_CLAIMED_COLUMNS)
            self._claim_sql[count] = sql
        per_queue = [value for queue in queues for value in (queue, limit)]
        return sql, (lease_until, token, *per_queue, limit)

    def _wait_for_work(self, queues: Sequence[str], deadline: float) -> bool:
        """Sleep until a claim may find something; False once ``deadline`` has passed."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Read the version before looking, so a commit right after the look still wakes us.
            since = self._db.data_version()
            ready, next_due, next_lapse = self._peek(queues)
            if ready:
                return True
            wake = self._seconds_to_next_event(next_due, next_lapse)
            if wake is not None and wake <= 0:
                return True
            self._sleep_until_change(since, remaining if wake is None else min(wake, remaining))

    def _peek(self, queues: Sequence[str]) -> tuple[int, float | None, float | None]:
        sql = self._peek_sql.get(len(queues))
        if sql is None:
            sql = self._peek_sql[len(queues)] = _PEEK.format(marks=_marks(len(queues)))
        params = tuple(queues)

        def work(conn: sqlite3.Connection) -> tuple[int, float | None, float | None]:
            ready, next_due, next_lapse = conn.execute(sql, params).fetchone()
            return ready, next_due, next_lapse

        return self._db.read("poll for messages", work)

    def _seconds_to_next_event(
        self, next_due: float | None, next_lapse: float | None
    ) -> float | None:
        """Seconds until a claim would move a delayed message or sweep a lapsed lease."""
        now = time.time()
        waits = []
        if next_due is not None:
            waits.append(next_due - now)
        if next_lapse is not None:
            # This instance sweeps at most every LEASE_SWEEP_INTERVAL; waking earlier is useless.
            waits.append(max(next_lapse - now, self._next_lease_sweep - time.monotonic()))
        return min(waits) if waits else None

    def _sleep_until_change(self, since: int, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0 or self._db.wait_for_change(since, min(left, POLL_SLICE)) != since:
                return

    # --- broadcast and direct --------------------------------------------------------------

    def fanout_publish(
        self,
        exchange: str,
        message: Message,
        *,
        routing_key: str = "",
        exchange_type: ExchangeType = "fanout",
    ) -> None:
        """Insert one ``broadcasts`` row (and prune the old ones) in one transaction.

        No exchange routing here: every subscriber gets it, whatever ``exchange_type``.
        """
        now = time.time()
        row = (exchange, routing_key, *_transient_row(message), now)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(_PRUNE_BROADCASTS, (now - BROADCAST_KEEP,))
            conn.execute(_INSERT_BROADCAST, row)

        self._db.write("publish a broadcast", work)

    def fanout_subscribe(
        self,
        exchange: str,
        queue: str,
        *,
        binding_key: str = "",
        exchange_type: ExchangeType = "fanout",
        message_ttl: float | None = None,
        expires: float | None = None,
    ) -> Subscription:
        """Read ``broadcasts`` rows of ``exchange`` published after this call.

        Every message of ``exchange`` comes, whatever ``binding_key``; nothing is kept
        for a subscriber, so ``message_ttl`` and ``expires`` have nothing to bound.
        """
        last = self._db.read(
            "subscribe to a broadcast",
            lambda conn: int(conn.execute(_LAST_BROADCAST).fetchone()[0]),
        )
        return _BroadcastSubscription(self._db, exchange, last)

    def direct_publish(self, exchange: str, routing_key: str, message: Message) -> None:
        """Copy the message to every queue bound with ``routing_key`` (none: dropped)."""
        now = time.time()
        params = (*_transient_row(message), now, exchange, routing_key)
        self._db.write("publish a direct message", lambda conn: conn.execute(_ROUTE_DIRECT, params))

    def direct_subscribe(
        self, exchange: str, routing_key: str, queue: str, *, expires: float | None = None
    ) -> Subscription:
        """Bind ``queue`` (pruning expired bindings) and read it."""
        now = time.time()
        expires_at = now + (expires if expires is not None else DIRECT_KEEP)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(_PRUNE_DIRECT, (now,))
            conn.execute(_PRUNE_DIRECT_MESSAGES, (now - DIRECT_KEEP,))
            conn.execute(_BIND_DIRECT, (exchange, routing_key, queue, expires_at))

        self._db.write("declare a direct queue", work)
        return _DirectSubscription(self._db, queue)

    # --- settling --------------------------------------------------------------------------

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Delete the messages this instance still holds, in one transaction."""
        self._settle("ack messages", _DELETE_HELD, [_held(d.tag) for d in deliveries])

    def reject(self, deliveries: Sequence[Delivery], *, requeue: bool) -> None:
        """Delete the messages, or with ``requeue`` make them ready again in their place."""
        sql = _REQUEUE_HELD if requeue else _DELETE_HELD
        self._settle("reject messages", sql, [_held(d.tag) for d in deliveries])

    def renew(self, deliveries: Sequence[Delivery]) -> None:
        """Extend the leases still held by ``lease_seconds`` from now."""
        lease_until = time.time() + self.lease_seconds
        params = [(lease_until, *_held(d.tag)) for d in deliveries]
        self._settle("renew leases", _RENEW_HELD, params)

    def _settle(self, what: str, sql: str, params: list[_Row]) -> None:
        if params:
            self._db.write(what, lambda conn: conn.executemany(sql, params))

    # --- dead letters ----------------------------------------------------------------------

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move a held message to ``dead_letters`` (nothing happens if its lease lapsed)."""
        held = _held(delivery.tag)

        def work(conn: sqlite3.Connection) -> None:
            if conn.execute(_DEAD_LETTER_HELD, (reason, time.time(), *held)).rowcount:
                conn.execute(_DELETE_HELD, held)

        self._db.write("dead-letter a message", work)

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters first."""
        params = (max(limit, 0),)
        rows = self._db.read(
            "list dead letters", lambda conn: conn.execute(_LIST_DEAD_LETTERS, params).fetchall()
        )
        return [
            DeadLetter(
                str(row_id),
                queue,
                reason,
                when,
                Message(body, json_loads(headers), json_loads(properties), ctype, encoding),
            )
            for row_id, queue, reason, when, headers, properties, body, ctype, encoding in rows
        ]

    def requeue_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Move dead letters back to their queues as ready and redelivered; returns how many."""
        if ids is None:
            chunks: list[list[int]] = [[]]
        else:
            numbers = [int(i) for i in ids if str(i).isdigit()]
            chunks = [numbers[i : i + IN_CHUNK] for i in range(0, len(numbers), IN_CHUNK)]

        def work(conn: sqlite3.Connection) -> int:
            moved = 0
            for chunk in chunks:
                where = f"WHERE id IN ({_marks(len(chunk))})" if ids is not None else ""
                conn.execute(_REQUEUE_DEAD.format(where=where), chunk)
                moved += conn.execute(_DELETE_DEAD.format(where=where), chunk).rowcount
            return moved

        return self._db.write("requeue dead letters", work)

    # --- administration --------------------------------------------------------------------

    def purge(self, queue: str) -> int:
        """Delete the ready and delayed messages of ``queue``; claimed ones stay."""

        def work(conn: sqlite3.Connection) -> int:
            ready = conn.execute(_PURGE_READY, (queue,)).rowcount
            return ready + conn.execute(_PURGE_SCHEDULED, (queue,)).rowcount

        return self._db.write("purge a queue", work)

    def connect(self) -> None:
        """Open the file and try a write: a locked or read-only file fails now, not later."""
        # A statement that writes nothing still needs write access (BEGIN alone does not).
        self._db.write("check write access", lambda conn: conn.execute(_TOUCH))

    def size(self, queue: str) -> int:
        """Ready plus delayed messages of ``queue``."""
        row = self._db.read(
            "count messages", lambda conn: conn.execute(_SIZE, (queue, queue)).fetchone()
        )
        return int(row[0])


# --- subscriptions ---------------------------------------------------------------------------


#: How often a broadcast or direct subscription looks for new rows, in seconds (a cheap
#: ``PRAGMA data_version``; the table is read only when the file changed). It does not wake
#: on every commit: under task traffic the file changes thousands of times a second.
SUBSCRIPTION_POLL = 0.01


class _TableSubscription(Subscription):
    """Reads new rows every :data:`SUBSCRIPTION_POLL` seconds, when the file has changed."""

    def __init__(self, db: SQLiteFile) -> None:
        self._db = db
        self._seen: int | None = None

    def get(self, timeout: float) -> list[Message]:
        deadline = time.monotonic() + timeout
        first = True
        while True:
            version = self._db.data_version()
            # data_version moves on other connections' commits; a row this thread wrote
            # before the call is found by the first read.
            rows = self._read() if first or version != self._seen else []
            self._seen, first = version, False
            remaining = deadline - time.monotonic()
            if rows or remaining <= 0:
                return [_transient_message(row) for row in rows]
            time.sleep(min(remaining, SUBSCRIPTION_POLL))

    @abc.abstractmethod
    def _read(self) -> list[_Row]:
        """The new rows: (id, headers, properties, body, content_type, content_encoding)."""


class _BroadcastSubscription(_TableSubscription):
    def __init__(self, db: SQLiteFile, exchange: str, last: int) -> None:
        super().__init__(db)
        self._exchange = exchange
        self._last = last

    def _read(self) -> list[_Row]:
        params = (self._exchange, self._last)
        rows = self._db.read(
            "read broadcasts", lambda conn: conn.execute(_READ_BROADCASTS, params).fetchall()
        )
        if rows:
            self._last = int(rows[-1][0])
        return rows

    def close(self) -> None:
        """Nothing is stored per subscriber: stop reading."""


class _DirectSubscription(_TableSubscription):
    def __init__(self, db: SQLiteFile, queue: str) -> None:
        super().__init__(db)
        self._queue = queue

    def _read(self) -> list[_Row]:
        params = (self._queue,)
        waiting = self._db.read(
            "poll a direct queue", lambda conn: conn.execute(_HAS_DIRECT, params).fetchone()[0]
        )
        if not waiting:
            return []
        rows = self._db.write(
            "read direct messages", lambda conn: conn.execute(_TAKE_DIRECT, params).fetchall()
        )
        return sorted(rows, key=itemgetter(0))

    def close(self) -> None:
        """Unbind the queue and drop what it still holds."""
        params = (self._queue,)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(_UNBIND_DIRECT, params)
            conn.execute(_DROP_DIRECT_MESSAGES, params)

        self._db.write("delete a direct queue", work)


def _transient_row(message: Message) -> _Row:
    """The values of ``_TRANSIENT_COLUMNS`` for one message."""
    try:
        headers, properties = json_dumps(message.headers), json_dumps(message.properties)
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"Message headers or properties cannot be stored: {exc}") from exc
    return (headers, properties, message.body, message.content_type, message.content_encoding)


def _transient_message(row: _Row) -> Message:
    _, headers, properties, body, content_type, content_encoding = row
    return Message(
        body, json_loads(headers), json_loads(properties), content_type, content_encoding
    )


# --- helpers -------------------------------------------------------------------------------


def _message_row(queue: str, message: Message, now: float) -> _Row:
    """The values of ``_MESSAGE_COLUMNS`` for one message."""
    try:
        headers, properties = json_dumps(message.headers), json_dumps(message.properties)
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"Message headers or properties cannot be stored: {exc}") from exc
    return (
        queue,
        message.priority,
        headers,
        properties,
        message.body,
        message.content_type,
        message.content_encoding,
        now,
    )


def _held(tag: str) -> tuple[int, str]:
    """``"<id>:<token>"`` -> ``(id, token)``."""
    row_id, sep, token = tag.partition(":")
    if not sep or not row_id.isdigit():
        raise ValueError(f"Not a delivery tag of the SQLite broker: {tag!r}")
    return int(row_id), token


def _marks(count: int) -> str:
    return ", ".join("?" * count)
