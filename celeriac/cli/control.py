"""``celeriac control COMMAND``: tell the workers to change something."""

from __future__ import annotations

import json
from typing import Any

import click

from celeriac.cli._remote import ask_workers, print_commands, remote_options, say_reply

__all__ = ["control"]


def _number(value: str) -> float | None:
    return None if value.lower() in ("none", "null") else float(value)


def _arguments(command: str, args: tuple[str, ...]) -> dict[str, Any]:
    """The command's arguments from the words after it (Celery's order).

    Raises:
        click.UsageError: a required word is missing.
    """
    needed = {"rate_limit": 2, "time_limit": 1, "add_consumer": 1, "cancel_consumer": 1}
    if len(args) < needed.get(command, 0) or (command == "revoke" and not args):
        raise click.UsageError(f"Missing arguments for {command}: see `celeriac control --help`.")
    if command == "rate_limit":
        return {"task_name": args[0], "rate_limit": args[1]}
    if command == "time_limit":
        soft = _number(args[1]) if len(args) > 1 else None
        hard = _number(args[2]) if len(args) > 2 else None
        return {"task_name": args[0], "soft": soft, "hard": hard}
    if command in ("pool_grow", "pool_shrink"):
        return {"n": int(args[0]) if args else 1}
    if command == "add_consumer":
        names = ("queue", "exchange", "exchange_type", "routing_key")
        return {"exchange_type": "direct", **dict(zip(names, args, strict=False))}
    if command == "cancel_consumer":
        return {"queue": args[0]}
    if command == "revoke":
        return {"task_id": list(args)}
    return {}


#: Control commands and the words they take.
COMMANDS = {
    "shutdown": "Shutdown worker(s).",
    "rate_limit": "Change a task's rate limit (<task_name> <rate_limit>).",
    "time_limit": "Change a task's time limits (<task_name> <soft> <hard>).",
    "pool_grow": "Grow pool by n processes/threads ([N=1]).",
    "pool_shrink": "Shrink pool by n processes/threads ([N=1]).",
    "add_consumer": "Start consuming from a queue (<queue> [exchange [type [routing_key]]]).",
    "cancel_consumer": "Stop consuming from a queue (<queue>).",
    "revoke": "Revoke task by task id (or list of ids) ([id1 [id2 [... [idN]]]]).",
}


@click.command()
@click.argument("command", metavar="COMMAND")
@click.argument("args", nargs=-1)
@remote_options
@click.option("--list", "list_commands", is_flag=True, help="List available control commands.")
@click.pass_obj
def control(
    obj: Any,
    command: str,
    args: tuple[str, ...],
    timeout: float,
    destination: str | None,
    as_json: bool,
    list_commands: bool,
) -> None:
    """Send the COMMAND control command to the workers."""
    if list_commands:
        print_commands(COMMANDS)
        return
    replies = ask_workers(
        obj.app,
        "control",
        COMMANDS,
        command,
        lambda: _arguments(command, args),
        timeout,
        destination,
    )
    if as_json:
        click.echo(json.dumps(replies, default=repr))
        return
    for reply in replies:
        for node, answer in reply.items():
            say_reply(node, answer)
