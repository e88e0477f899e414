"""``celeriac events``: watch the cluster's events (``--dump``: print each one)."""

from __future__ import annotations

import time
from typing import Any

import click

from celeriac.events.dump import Dumper

__all__ = ["events"]

#: Seconds between attempts when the broker cannot be reached.
RECONNECT_DELAY = 2.0


@click.command()
@click.option("-d", "--dump", is_flag=True, help="Print every event as it arrives.")
@click.option(
    "-F",
    "--frequency",
    "--freq",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between redraws of the live table (without --dump).",
)
@click.pass_obj
def events(obj: Any, dump: bool, frequency: float) -> None:
    """Watch events: a live table of workers and tasks, or with --dump every event as it comes.

    Workers send task events with -E (or after `celeriac control enable_events`).
    """
    app = obj.app
    if dump:
        _dump(app)
    else:
        _table(app, frequency)


def _dump(app: Any) -> None:
    dumper = Dumper()
    dumper.say("-> evdump: starting capture...")
    _capture(app, {"*": dumper.on_event}, dumper.say)


def _table(app: Any, frequency: float) -> None:
    from celeriac.events.table import render

    state = app.events.State()
    drawn = [0.0]

    def on_event(event: dict[str, Any]) -> None:
        state.event(event)
        now = time.monotonic()
        if now - drawn[0] >= frequency:
            drawn[0] = now
            click.echo(f"\n{render(state)}")

    _capture(app, {"*": on_event}, click.echo)


def _capture(app: Any, handlers: dict[str, Any], say: Any) -> None:
    """Capture until interrupted, subscribing again after a broker error."""
    try:
        while True:
            try:
                app.events.Receiver(handlers=handlers).capture()
            except (OSError, ConnectionError) as exc:
                say(f"-> Connection lost ({exc}), attempting reconnect")
                time.sleep(RECONNECT_DELAY)
            except Exception as exc:
                if not _is_operational(exc):
                    raise
                say(f"-> Cannot reach {app.broker.describe()}: {exc}; trying again")
                time.sleep(RECONNECT_DELAY)
    except KeyboardInterrupt:
        return


def _is_operational(exc: Exception) -> bool:
    from celeriac.exceptions import OperationalError

    return isinstance(exc, OperationalError)
