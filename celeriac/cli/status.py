"""``celeriac status``: which workers answer a ping."""

from __future__ import annotations

import json
from typing import Any

import click

from celeriac.cli._remote import destinations, no_replies, nodes_online, remote_options, say_reply

__all__ = ["status"]


@click.command()
@remote_options
@click.pass_obj
def status(obj: Any, timeout: float, destination: str | None, as_json: bool) -> None:
    """Show the list of workers that are online."""
    replies = obj.app.control.ping(destination=destinations(destination), timeout=timeout)
    if not replies:
        no_replies()
    by_node: dict[str, Any] = {}
    for reply in replies:
        by_node.update(reply)
    if as_json:
        click.echo(json.dumps(by_node, default=repr))
    else:
        for node, answer in by_node.items():
            say_reply(node, answer, body=False)
    nodes_online(len(by_node))
