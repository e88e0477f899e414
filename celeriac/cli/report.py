"""``celeriac report``: what to paste into a bug report (versions, platform, settings)."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from typing import Any

import click

from celeriac import __version__
from celeriac.brokers.base import mask_url

__all__ = ["report", "report_text"]

#: Libraries whose versions matter to a report, when installed.
_LIBRARIES = ("redis", "hiredis", "amqp", "orjson", "msgpack", "gevent", "eventlet", "click")


def report_text(app: Any) -> str:
    """The report: software, platform, where messages and results go, changed settings."""
    versions = [f"celeriac:{__version__}", f"py:{platform.python_version()}"]
    for name in _LIBRARIES:
        try:
            versions.append(f"{name}:{importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    conf = app.conf
    broker = app.broker_url
    backend = app.result_backend_url
    lines = [
        "software -> " + " ".join(versions),
        f"platform -> system:{platform.system()} arch:{platform.machine()} "
        f"kernel version:{platform.release()} imp:{sys.implementation.name}",
        f"app      -> {app.main or '__main__'}",
        f"settings -> transport:{_scheme(broker)} results:{_results(backend)}",
        "",
        conf.humanize(censored=True),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _scheme(url: str | None) -> str:
    if not url:
        return "sqlite"
    scheme, sep, _ = url.partition("://")
    return scheme if sep else url


def _results(url: str | None) -> str:
    return mask_url(url) if url else "disabled"


@click.command()
@click.pass_obj
def report(obj: Any) -> None:
    """Print versions, platform and the app's changed settings (secrets hidden)."""
    click.echo(report_text(obj.app))
