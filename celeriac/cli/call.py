"""``celeriac call NAME``: send a task by name and print its id."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

__all__ = ["call"]


def _json(kind: str, text: str | None, expected: type) -> Any:
    if text is None:
        return expected()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{kind} must be JSON: {exc}") from exc
    if not isinstance(value, expected):
        raise click.BadParameter(
            f"{kind} must be a JSON {'list' if expected is list else 'object'}"
        )
    return value


@click.command()
@click.argument("name")
@click.option(
    "-a", "--args", "args_json", help="Positional arguments as a JSON list, e.g. '[2, 2]'."
)
@click.option("-k", "--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option("--eta", help="ISO-8601 time to run at.")
@click.option("--countdown", type=float, help="Seconds to wait before running.")
@click.option("--expires", help="Seconds (or ISO-8601 time) after which the task is discarded.")
@click.option("--serializer", default="json", show_default=True, help="Serializer of the message.")
@click.option("--queue", help="Queue to send to.")
@click.option("--exchange", help="Exchange (AMQP routing; ignored by other brokers).")
@click.option("--routing-key", help="Routing key (AMQP routing; ignored by other brokers).")
@click.pass_obj
def call(
    obj: Any,
    name: str,
    args_json: str | None,
    kwargs_json: str | None,
    eta: str | None,
    countdown: float | None,
    expires: str | None,
    serializer: str,
    queue: str | None,
    exchange: str | None,
    routing_key: str | None,
) -> None:
    """Send the task NAME (no need to import its code) and print its id."""
    options: dict[str, Any] = {"serializer": serializer}
    if queue:
        options["queue"] = queue
    result = obj.app.send_task(
        name,
        _json("--args", args_json, list),
        _json("--kwargs", kwargs_json, dict),
        countdown=countdown,
        eta=dt.datetime.fromisoformat(eta) if eta else None,
        expires=_expires(expires),
        **options,
    )
    click.echo(result.id)


def _expires(value: str | None) -> float | dt.datetime | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return dt.datetime.fromisoformat(value)
