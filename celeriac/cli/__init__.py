"""The ``celeriac`` command line: ``celeriac -A MODULE[:ATTR] COMMAND [options]``.

Global options load the app and override its broker and backend; each command lives in a
module of its own beside this one.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from celeriac import __version__
from celeriac.cli.app_loader import find_app
from celeriac.exceptions import CeleriacError

__all__ = ["CLIContext", "celeriac", "main"]


class CLIContext:
    """What every command receives: the loaded app and the output switches."""

    def __init__(
        self,
        app_name: str | None,
        broker: str | None,
        backend: str | None,
        config: str | None,
        quiet: bool,
        no_color: bool,
    ) -> None:
        self.app_name = app_name
        self._overrides = (broker, backend, config)
        self.quiet = quiet
        self.no_color = no_color
        self._app: Any = None

    @property
    def app(self) -> Any:
        """The app named by ``-A`` (the default app when none is named), loaded once."""
        if self._app is None:
            self._app = self._load()
        return self._app

    def _load(self) -> Any:
        if self.app_name:
            app = find_app(self.app_name)
        else:
            from celeriac._context import get_current_app

            app = get_current_app()
        broker, backend, config = self._overrides
        if config:
            app.config_from_object(config)
        if broker:
            app.conf.broker_url = broker
        if backend:
            app.conf.result_backend = backend
        return app

    def echo(self, text: str = "") -> None:
        if not self.quiet:
            click.echo(text)

    def error(self, text: str) -> None:
        click.secho(text, fg=None if self.no_color else "red", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-A", "--app", "app_name", metavar="MODULE", help="The app: module, module:attr or module.attr."
)
@click.option("-b", "--broker", help="Broker URL (overrides broker_url).")
@click.option("--result-backend", help="Result backend URL (overrides result_backend).")
@click.option("--config", help="Module to load settings from (config_from_object).")
@click.option("--workdir", type=click.Path(file_okay=False), help="Change to this directory first.")
@click.option("-C", "--no-color", is_flag=True, help="No colours in output.")
@click.option("-q", "--quiet", is_flag=True, help="Print less.")
@click.version_option(__version__, "--version", prog_name="celeriac")
@click.pass_context
def celeriac(
    ctx: click.Context,
    app_name: str | None,
    broker: str | None,
    result_backend: str | None,
    config: str | None,
    workdir: str | None,
    no_color: bool,
    quiet: bool,
) -> None:
    """celeriac: a task queue with Celery's API and wire."""
    if workdir:
        os.chdir(workdir)
    # Like Celery, modules next to where the command runs can be found by -A.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    app_name = app_name or os.environ.get("CELERIAC_APP") or os.environ.get("CELERY_APP")
    ctx.obj = CLIContext(app_name, broker, result_backend, config, quiet, no_color)


def _register_commands() -> None:
    from celeriac.cli.call import call
    from celeriac.cli.control import control
    from celeriac.cli.dead import dead
    from celeriac.cli.events import events
    from celeriac.cli.inspect import inspect
    from celeriac.cli.multi import multi
    from celeriac.cli.purge import purge
    from celeriac.cli.report import report
    from celeriac.cli.result import result
    from celeriac.cli.shell import shell
    from celeriac.cli.status import status
    from celeriac.cli.worker import worker

    commands = (worker, call, result, purge, dead, multi, inspect, control, status, events)
    for command in (*commands, report, shell):
        celeriac.add_command(command)


_register_commands()


def _green_pool(argv: list[str]) -> str | None:
    """``gevent`` or ``eventlet`` when ``celeriac worker`` is asked for that pool (``-P``).

    Only for ``worker``: ``celeriac multi start ... -P gevent`` passes the option on to the
    workers it starts and must not patch itself.
    """
    if "worker" not in argv or "multi" in argv[: argv.index("worker")]:
        return None
    for index, arg in enumerate(argv):
        if arg in ("-P", "--pool"):
            value = argv[index + 1] if index + 1 < len(argv) else ""
        elif arg.startswith("--pool="):
            value = arg.partition("=")[2]
        elif arg.startswith("-P") and not arg.startswith("--"):
            value = arg[2:]
        else:
            continue
        if value in ("gevent", "eventlet"):
            return value
    return None


def _patch_for_green_pool(argv: list[str]) -> None:
    """Monkey-patch for ``-P gevent``/``-P eventlet`` before the app (and its imports) load.

    As in Celery, only the command line can ask for this: ``worker_pool`` is read from the
    app's settings, by which time sockets and threads may already be in use.
    """
    pool = _green_pool(argv)
    if pool == "gevent":
        from celeriac.worker.pools.gevent import patch

        patch()
    elif pool == "eventlet":
        from celeriac.worker.pools.eventlet import patch as patch_eventlet

        patch_eventlet()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``celeriac`` script and ``python -m celeriac``."""
    try:
        _patch_for_green_pool(sys.argv[1:] if argv is None else argv)
        celeriac.main(args=argv, prog_name="celeriac", standalone_mode=True)
    except CeleriacError as exc:
        click.secho(f"Error: {exc}", fg="red", err=True)
        sys.exit(1)
