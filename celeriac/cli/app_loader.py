"""Find the app that ``-A`` names: ``proj``, ``proj.module``, ``proj.module:app``, ``proj.app``."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import click

from celeriac.utils.imports import symbol_by_name

__all__ = ["find_app"]

#: Attribute names looked for in a module that -A names, in order (Celery's).
_APP_ATTRIBUTES = ("app", "celery")


def find_app(name: str) -> Any:
    """The Celery app ``name`` points at.

    Raises:
        click.BadParameter: nothing loadable, or no app in what was loaded.
    """
    from celeriac.app import Celery

    try:
        found = symbol_by_name(name)
    except ImportError as exc:
        raise click.BadParameter(
            f"\nUnable to load celeriac application.\n{exc}", param_hint="'-A' / '--app'"
        ) from exc
    if isinstance(found, Celery):
        return found
    if isinstance(found, ModuleType):
        app = _app_in_module(found)
        if app is not None:
            return app
    raise click.BadParameter(
        f"\nUnable to load celeriac application.\n{name!r} is not a celeriac app and holds "
        "none (looked for 'app', 'celery', any Celery instance, and a 'celery' submodule).",
        param_hint="'-A' / '--app'",
    )


def _app_in_module(module: ModuleType) -> Any:
    from celeriac.app import Celery

    for attribute in _APP_ATTRIBUTES:
        candidate = getattr(module, attribute, None)
        if isinstance(candidate, Celery):
            return candidate
    for candidate in vars(module).values():
        if isinstance(candidate, Celery):
            return candidate
    try:
        submodule = importlib.import_module(f"{module.__name__}.celery")
    except ModuleNotFoundError:
        return None
    return _app_in_module(submodule) if submodule is not module else None
