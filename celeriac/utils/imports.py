"""Turn a dotted import path into the object it names.

This is the one place where celeriac looks an object up by a string: the ``-A`` option, a
config source given as a string (``'proj.celeryconfig'``, ``'django.conf:settings'``) and
settings that name a class (``beat_scheduler``). Everything else is imported explicitly.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

__all__ = ["import_module", "symbol_by_name"]


def import_module(name: str, package: str | None = None) -> ModuleType:
    """Import a module by its dotted name.

    Args:
        name: The module's dotted name; a leading ``.`` makes it relative to ``package``.
        package: The package a relative name is resolved against.

    Raises:
        ModuleNotFoundError: The module (or one of its parents) does not exist. An import
            error raised *inside* an existing module is passed on unchanged, so the real
            cause stays visible.
    """
    absolute = importlib.util.resolve_name(name, package) if name.startswith(".") else name
    try:
        return importlib.import_module(absolute)
    except ModuleNotFoundError as exc:
        if not _is_missing(absolute, exc):
            raise
        raise ModuleNotFoundError(
            f"Cannot import module {absolute!r}: {exc}. Check the spelling and that its "
            "directory is on sys.path (run from the project root or set PYTHONPATH).",
            name=exc.name,
        ) from exc


def symbol_by_name(path: str) -> Any:
    """Load the object that an import path names.

    Three spellings are accepted: ``'pkg.mod'`` (the module itself), ``'pkg.mod:attr'``
    (an attribute; it may be dotted, ``'pkg.mod:obj.attr'``) and ``'pkg.mod.attr'`` (tried as
    a module first, then as an attribute of ``pkg.mod``).

    Raises:
        ImportError: The path is malformed, the module does not exist or the attribute is
            missing. The message names the path.
    """
    module_name, sep, attr_path = path.strip().partition(":")
    if not module_name or (sep and not attr_path) or ":" in attr_path or " " in module_name:
        raise ImportError(
            f"Invalid import path {path!r}: expected 'module', 'module:attribute' "
            "or 'module.attribute'."
        )
    if sep:
        return _get_attribute(import_module(module_name), attr_path, path)
    return _module_or_attribute(module_name, path)


def _module_or_attribute(dotted: str, path: str) -> Any:
    """Import ``dotted`` as a module, or failing that as ``module.attribute``."""
    try:
        return import_module(dotted)
    except ModuleNotFoundError as exc:
        # Only fall back when the missing module is the full path itself: a missing parent
        # package, or a missing import inside the module, is the real error to report.
        if exc.name != dotted or "." not in dotted:
            raise
    module_name, _, attr = dotted.rpartition(".")
    return _get_attribute(import_module(module_name), attr, path)


def _get_attribute(module: ModuleType, attr_path: str, path: str) -> Any:
    """Follow a dotted attribute path from ``module``."""
    obj: Any = module
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError as exc:
            raise ImportError(
                f"Cannot import {path!r}: {module.__name__!r} has no attribute {attr_path!r}."
            ) from exc
    return obj


def _is_missing(name: str, exc: ModuleNotFoundError) -> bool:
    """Whether ``exc`` says that ``name`` itself, or a parent package of it, is missing."""
    missing = exc.name or ""
    return bool(missing) and (name == missing or name.startswith(missing + "."))
