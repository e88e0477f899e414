"""``celeriac inspect COMMAND``: ask the workers a question and print their answers."""

from __future__ import annotations

import json
from typing import Any

import click

from celeriac.cli._remote import (
    ask_workers,
    nodes_online,
    print_commands,
    remote_options,
    say_reply,
)

__all__ = ["inspect"]

#: Inspect commands and what they take on the command line.
COMMANDS = {
    "ping": "Ping worker(s).",
    "active": "List of tasks currently being executed.",
    "reserved": "List of currently reserved tasks, not including scheduled/active.",
    "scheduled": "List of currently scheduled ETA/countdown tasks.",
    "registered": "List of registered tasks.",
    "revoked": "List of revoked task-ids.",
    "stats": "Request worker statistics/information.",
    "active_queues": "List the task queues a worker is currently consuming from.",
    "query_task": "Query for task information by id ([id1 [id2 [... [idN]]]]).",
    "conf": "List configuration.",
}


def _arguments(command: str, args: tuple[str, ...]) -> dict[str, Any]:
    if command == "query_task":
        return {"ids": list(args)}
    if command == "registered":
        return {"taskinfoitems": list(args)}
    return {}


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("command", metavar="COMMAND")
@click.argument("args", nargs=-1)
@remote_options
@click.option("--list", "list_commands", is_flag=True, help="List available inspect commands.")
@click.pass_obj
def inspect(
    obj: Any,
    command: str,
    args: tuple[str, ...],
    timeout: float,
    destination: str | None,
    as_json: bool,
    list_commands: bool,
) -> None:
    """Inspect the workers by sending them the COMMAND inspect command."""
    if list_commands:
        print_commands(COMMANDS)
        return
    replies = ask_workers(
        obj.app,
        "inspect",
        COMMANDS,
        command,
        lambda: _arguments(command, args),
        timeout,
        destination,
    )
    by_node: dict[str, Any] = {}
    for reply in replies:
        by_node.update(reply)
    if as_json:
        click.echo(json.dumps(by_node, default=repr))
        return
    for node, answer in by_node.items():
        say_reply(node, answer)
    nodes_online(len(by_node))
