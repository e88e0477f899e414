"""``celeriac purge``: delete every waiting message of the app's queues."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["purge"]


def _names(values: tuple[str, ...]) -> list[str]:
    return [name.strip() for item in values for name in item.split(",") if name.strip()]


def _known_queues(app: Any) -> list[str]:
    return list(app.router.queues) or [app.conf.task_default_queue]


@click.command()
@click.option("-f", "--force", is_flag=True, help="Don't ask for confirmation.")
@click.option("-Q", "--queues", multiple=True, help="Only these queues (comma-separated).")
@click.option("-X", "--exclude-queues", multiple=True, help="Not these queues (comma-separated).")
@click.pass_obj
def purge(obj: Any, force: bool, queues: tuple[str, ...], exclude_queues: tuple[str, ...]) -> None:
    """Erase all messages from the known task queues. There is no undo."""
    app = obj.app
    names = _names(queues) or _known_queues(app)
    excluded = set(_names(exclude_queues))
    names = [name for name in names if name not in excluded]
    if not names:
        click.echo("No queues to purge.")
        return
    if not force:
        listing = ", ".join(names)
        noun = "queues" if len(names) > 1 else "queue"
        click.echo(f"WARNING: This will remove all tasks from {noun}: {listing}.")
        click.echo("         There is no undo for this operation!\n")
        click.echo("(to skip this prompt use the -f option)")
        if not click.confirm("Are you sure you want to delete all tasks", default=False):
            return
    count = sum(app.broker.purge(name) for name in names)
    plural = "s" if len(names) > 1 else ""
    if count:
        messages = "message" if count == 1 else "messages"
        click.echo(f"Purged {count} {messages} from {len(names)} known task queue{plural}.")
    else:
        click.echo(f"No messages purged from {len(names)} queue{plural}.")
