"""The canvas: signatures and the workflows built from them (chain, group, chord, chunks, map).

A :class:`Signature` is a task call written down: the task's name, partial arguments and
calling options. It is a ``dict`` with Celery's keys (``task``, ``args``, ``kwargs``,
``options``, ``subtask_type``, ``immutable``), so it crosses the wire to and from Celery
unchanged: callbacks, chain steps and chord bodies travel inside task messages in this form.

How the workflows run (nothing polls):

- **chain**: the first task is sent with the remaining steps, reversed, in its message; the
  worker that finishes a step sends the next one with the return value as its first argument.
- **group**: every member is frozen (ids, ``group_id``, ``group_index``) and the messages are
  published in one batch, a single broker round trip.
- **chord**: the header is a group whose messages carry the body; each finishing header task
  adds itself to an atomic counter in the result backend, and the one that completes it sends
  the body with the header's results in order (or fails the body with a ``ChordError``).

A group followed by a task in a chain becomes a chord, as in Celery.

One module per kind: :mod:`~celeriac.canvas.signature`, :mod:`~celeriac.canvas.chain`,
:mod:`~celeriac.canvas.group`, :mod:`~celeriac.canvas.chord`, :mod:`~celeriac.canvas.maps`
(map, starmap, chunks) and :mod:`~celeriac.canvas.replace` (``Task.replace``).
"""

from __future__ import annotations

from celeriac.canvas.chain import chain
from celeriac.canvas.chord import chord
from celeriac.canvas.group import group
from celeriac.canvas.maps import chunks, xmap, xstarmap
from celeriac.canvas.signature import Signature, maybe_signature, signature, subtask

__all__ = [
    "Signature",
    "chain",
    "chord",
    "chunks",
    "group",
    "maybe_signature",
    "signature",
    "subtask",
    "xmap",
    "xstarmap",
]
