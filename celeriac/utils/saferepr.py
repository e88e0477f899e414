"""A bounded ``repr`` that never raises, shaped like the one Celery puts in message headers.

``argsrepr``/``kwargsrepr`` headers, logs and events show arguments without decoding bodies,
and monitoring tools compare them across Celery and celeriac workers, so the output follows
Celery's conventions: containers nest at most ``maxlevels`` deep (deeper ones print as
``[...]``), dicts keep insertion order, strings are single-quoted with ``'`` escaped, and once
about ``maxsize`` characters are out the rest becomes ``, ...`` with the open brackets closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from numbers import Number
from typing import Any

__all__ = ["saferepr", "truncate"]


def truncate(text: str, maxlen: int | None, suffix: str = "...") -> str:
    """Cut ``text`` to ``maxlen`` characters at a word boundary, marking the cut."""
    if maxlen and len(text) >= maxlen:
        return text[:maxlen].rsplit(" ", 1)[0] + suffix
    return text


def saferepr(value: Any, maxsize: int | None = 1024, maxlevels: int = 3) -> str:
    """The repr of ``value``, bounded by ``maxsize`` (roughly) and ``maxlevels`` of nesting."""
    if maxlevels:
        flat = _flat_repr(value, maxsize)
        if flat is not None:
            return flat
    writer = _Writer(maxsize, maxlevels)
    try:
        writer.value(value, depth=0)
    except _Full:
        writer.finish_truncated()
    return "".join(writer.parts)


def _scalar_repr(value: Any) -> str | None:
    """The text the writer emits for a number, string or None; None for anything else."""
    kind = type(value)
    if kind is str:
        text: str = value
        return "'" + text.replace("'", "\\'") + "'"
    if kind is int or kind is float or kind is bool:
        return str(value)
    if value is None:
        return "None"
    return None


def _flat_repr(value: Any, maxsize: int | None) -> str | None:
    """The common case fast: a flat tuple, list or dict of scalars that fits ``maxsize``.

    Task arguments are mostly like this, and every message carries their repr. The text is
    exactly what the writer would produce: with the whole text under ``maxsize`` no piece
    is ever cut. None means "not this case", and the writer takes over.
    """
    kind = type(value)
    try:
        if kind is tuple or kind is list:
            parts = [_scalar_repr(item) for item in value]
            if None in parts:
                return None
            inner = ", ".join(parts)  # type: ignore[arg-type]
            if kind is list:
                text = f"[{inner}]"
            else:
                text = f"({inner},)" if len(parts) == 1 else f"({inner})"
        elif kind is dict:
            pairs = []
            for key, item in value.items():
                key_text, item_text = _scalar_repr(key), _scalar_repr(item)
                if key_text is None or item_text is None:
                    return None
                pairs.append(f"{key_text}: {item_text}")
            text = "{" + ", ".join(pairs) + "}"
        else:
            return None
    except ValueError:  # an int too long for str(): the writer reports it its own way
        return None
    if maxsize is not None and len(text) >= maxsize:
        return None
    return text


class _Full(Exception):
    """The budget ran out before the next piece."""


class _Writer:
    def __init__(self, budget: int | None, maxlevels: int) -> None:
        self.budget = budget
        self.maxlevels = maxlevels
        self.parts: list[str] = []
        self.closers: list[str] = []
        self.active: set[int] = set()

    def emit(self, text: str) -> None:
        if self.budget is not None:
            if self.budget <= 0:
                raise _Full
            self.budget -= len(text)
        self.parts.append(text)

    def finish_truncated(self) -> None:
        self.parts.append(", ...")
        self.parts.extend(reversed(self.closers))

    def value(self, value: Any, depth: int) -> None:
        if isinstance(value, Decimal):
            self.emit(truncate(_plain_repr(value), self.budget))
        elif isinstance(value, Number):
            self.emit(truncate(str(value), self.budget))
        elif isinstance(value, str):
            self.emit("'" + truncate(value, self.budget).replace("'", "\\'") + "'")
        elif isinstance(value, bytes):
            self.emit(_bytes_repr(value, self.budget))
        elif isinstance(value, (list, tuple, dict, set, frozenset)):
            self.container(value, depth)
        else:
            self.emit(truncate(_plain_repr(value), self.budget))

    def container(self, value: Any, depth: int) -> None:
        opener, closer = _brackets(value)
        if opener is None:
            self.emit(f"{type(value).__name__}()")  # an empty set
            return
        if self.maxlevels and depth >= self.maxlevels:
            self.emit(f"{opener}...{closer}")
            return
        if id(value) in self.active:
            self.emit(f"<Recursion on {type(value).__name__} with id={id(value)}>")
            return
        self.emit(opener)
        self.closers.append(closer)
        self.active.add(id(value))
        for index, item in enumerate(_items(value)):
            if index:
                self.emit(", ")
            self.item(value, item, depth + 1)
        self.active.discard(id(value))
        self.closers.pop()
        self.emit(closer)

    def item(self, container: Any, item: Any, depth: int) -> None:
        if isinstance(container, dict):
            key, val = item
            self.emit(saferepr(key, self.budget, self.maxlevels))
            self.emit(": ")
            self.value(val, depth)
        else:
            self.value(item, depth)


def _brackets(value: Any) -> tuple[str | None, str]:
    if isinstance(value, (set, frozenset)):
        if not value:
            return None, ""
        if type(value) is set:
            return "{", "}"
        return f"{type(value).__name__}({{", "})"
    if isinstance(value, tuple):
        return "(", ",)" if len(value) == 1 else ")"
    if isinstance(value, dict):
        return "{", "}"
    return "[", "]"


def _items(value: Any) -> Iterator[Any]:
    return iter(value.items()) if isinstance(value, dict) else iter(value)


def _bytes_repr(value: bytes, budget: int | None) -> str:
    cut = budget is not None and budget > 0 and len(value) > budget
    chunk = value[:budget] if cut else value
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        text = chunk.hex()
    return f"b'{text}{'...' if cut else ''}'"


def _plain_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a user's __repr__ may raise; a log line must still be written
        return f"<Unrepresentable {type(value)!r}{id(value):#x}: {exc!r}>"
