"""``celeriac events --dump``: every event printed as it arrives, in Celery's dump format.

One line per event: ``<hostname> [<UTC time>] <what>: <fields>``; worker events read
``started``/``heartbeat``/``shutdown``, task events ``task received``, ``task succeeded``...
followed by ``name(id) args=... kwargs=...`` (the name remembered from the task's
``task-received``/``task-sent``) and the other fields sorted by name.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import OrderedDict
from typing import Any, TextIO

__all__ = ["Dumper", "humanize_type"]

#: How worker event types read in the dump.
HUMAN_TYPES = {
    "worker-offline": "shutdown",
    "worker-online": "started",
    "worker-heartbeat": "heartbeat",
}
#: Task names remembered by id (for events after ``task-received``).
NAMES_KEPT = 4096


def humanize_type(type_: str) -> str:
    return HUMAN_TYPES.get(type_.lower(), type_.lower().replace("-", " "))


class Dumper:
    """Prints events to ``out`` (a handler for ``Receiver(handlers={"*": dumper.on_event})``)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._names: OrderedDict[str, str] = OrderedDict()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)  # flushed: the dump is often piped

    def on_event(self, event: dict[str, Any]) -> None:
        self.say(self.format(dict(event)))

    def format(self, event: dict[str, Any]) -> str:
        """The dump line of one event (``event`` is consumed)."""
        when = dt.datetime.fromtimestamp(float(event.pop("timestamp", 0.0)), dt.timezone.utc)
        type_ = str(event.pop("type", "")).lower()
        hostname = event.pop("hostname", None)
        task = ""
        if type_.startswith("task-"):
            task = self._task_text(type_, event)
        fields = ", ".join(f"{key}={event[key]}" for key in sorted(event))
        sep = ":" if fields else ""
        head = f"{hostname} [{when}] {humanize_type(type_)}{sep}"
        return f"{head} {task} {fields}" if type_.startswith("task-") else f"{head} {fields}"

    def _task_text(self, type_: str, event: dict[str, Any]) -> str:
        task_id = str(event.pop("uuid", ""))
        if type_ not in ("task-received", "task-sent"):
            return self._names.get(task_id, "")
        name, args, kwargs = (
            event.pop("name", None),
            event.pop("args", None),
            event.pop("kwargs", None),
        )
        text = f"{name}({task_id}) args={args} kwargs={kwargs}"
        self._names[task_id] = text
        while len(self._names) > NAMES_KEPT:
            self._names.popitem(last=False)
        return text
