"""What ``inspect``, ``control`` and ``status`` share: options and the reply printout.

The printout is Celery's, line for line, so scripts that read ``celery inspect`` output keep
working: ``->  NODE: OK`` then the reply indented, and ``N nodes online.`` at the end. When no
node answers, ``Error: No nodes replied within time constraint`` and exit status 69
(``EX_UNAVAILABLE``), as Celery's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = [
    "EX_UNAVAILABLE",
    "ask_workers",
    "no_replies",
    "nodes_online",
    "pretty",
    "print_commands",
    "remote_options",
    "say_reply",
]

#: Celery's exit status when no node replied (``os.EX_UNAVAILABLE``).
EX_UNAVAILABLE = 69

F = TypeVar("F", bound=Callable[..., Any])


def remote_options(fun: F) -> F:
    """``-t/--timeout``, ``-d/--destination`` and ``-j/--json``, as Celery's."""
    fun = click.option("-j", "--json", "as_json", is_flag=True, help="Use json as output format.")(
        fun
    )
    fun = click.option(
        "-d",
        "--destination",
        help="Comma separated list of destination node names.",
    )(fun)
    return click.option(
        "-t", "--timeout", type=float, default=1.0, help="Timeout in seconds waiting for reply."
    )(fun)


def destinations(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def indent(text: str, spaces: int = 4) -> str:
    return "\n".join(" " * spaces + line for line in text.split("\n"))


def pretty(reply: Any) -> tuple[str, str]:
    """(``OK`` or ``ERROR``, the body) for one node's reply."""
    if isinstance(reply, list):
        if not reply:
            return "OK", "- empty -"
        return "OK", "\n".join(f"* {item}" for item in reply)
    if isinstance(reply, dict):
        if "ok" in reply:
            return "OK", indent(pretty(reply["ok"])[1])
        if "error" in reply:
            return "ERROR", indent(pretty(reply["error"])[1])
        return "OK", json.dumps(reply, sort_keys=True, indent=4, default=repr) + "\n"
    if isinstance(reply, str):
        return "OK", reply
    return "OK", repr(reply)


def say_reply(node: str, reply: Any, *, body: bool = True) -> None:
    status, text = pretty(reply)
    click.echo(f"->  {node}: {status}")
    if body and text:
        click.echo(indent(text))


def nodes_online(count: int) -> None:
    click.echo(f"\n{count} {'node' if count == 1 else 'nodes'} online.")


def no_replies() -> None:
    click.echo("Error: No nodes replied within time constraint", err=True)
    sys.exit(EX_UNAVAILABLE)


def ask_workers(
    app: Any,
    kind: str,
    commands: dict[str, str],
    command: str,
    arguments: Callable[[], dict[str, Any]],
    timeout: float,
    destination: str | None,
) -> list[dict[str, Any]]:
    """Check ``command`` against the ``kind`` (inspect/control) table, broadcast it and
    return the replies; no reply at all exits as Celery does (status 69)."""
    if command not in commands:
        raise click.UsageError(
            f"Command {command!r} not recognized. Available {kind} commands: " + ", ".join(commands)
        )
    replies: list[dict[str, Any]] = app.control.broadcast(
        command, arguments(), destinations(destination), reply=True, timeout=timeout
    )
    if not replies:
        no_replies()
    return replies


def print_commands(commands: dict[str, str]) -> None:
    """``--list``: every command with its one-line help, as Celery prints them."""
    for name, text in commands.items():
        click.echo(f"|- {name}: {text}")
