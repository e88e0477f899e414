"""``celeriac dead``: list and requeue messages that could not be run (the dead-letter store).

A message lands there when no worker could run it: its task was not registered, its content
type was refused, or it could not be decoded. Once the cause is fixed (the task deployed),
``celeriac dead requeue`` puts it back on its queue.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

__all__ = ["dead"]


@click.group()
def dead() -> None:
    """Messages that could not be run: list them, requeue them."""


@dead.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.pass_obj
def list_dead(obj: Any, limit: int) -> None:
    """List dead letters, oldest first."""
    letters = obj.app.broker.dead_letters(limit=limit)
    if not letters:
        click.echo("No dead letters.")
        return
    rows = [("ID", "QUEUE", "TASK", "TASK ID", "WHEN", "REASON")]
    for letter in letters:
        when = dt.datetime.fromtimestamp(letter.time, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        headers = letter.message.headers
        rows.append(
            (
                letter.id,
                letter.queue,
                str(headers.get("task") or "?"),
                str(letter.message.id or "?"),
                when,
                letter.reason,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))


#: The most dead letters looked through to match task ids.
_SCAN_LIMIT = 100_000


def _entry_ids(broker: Any, wanted: tuple[str, ...]) -> list[str]:
    """Entry ids for the given entry or task ids; an id that matches nothing is an error."""
    letters = broker.dead_letters(limit=_SCAN_LIMIT)
    found = [letter for letter in letters if letter.id in wanted or letter.message.id in wanted]
    known = {letter.id for letter in found} | {letter.message.id for letter in found}
    missing = [name for name in wanted if name not in known]
    if missing:
        raise click.ClickException(f"No dead letter with id {', '.join(missing)}")
    return [letter.id for letter in found]


@dead.command("requeue")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Requeue every dead letter.")
@click.pass_obj
def requeue(obj: Any, ids: tuple[str, ...], all_: bool) -> None:
    """Put dead letters back on their queues: by entry ID or task id, or --all."""
    if not ids and not all_:
        raise click.UsageError(
            "Name the dead letters to requeue (entry IDs or task ids from `celeriac dead list`) "
            "or pass --all."
        )
    broker = obj.app.broker
    count = broker.requeue_dead_letters(None if all_ else _entry_ids(broker, ids))
    click.echo(f"Requeued {count} message{'s' if count != 1 else ''}.")
