"""Events: what workers and clients tell monitors, laid out as Celery lays them out.

``app.events`` is an :class:`Events`: its ``Dispatcher``, ``Receiver`` and ``State`` are
Celery's ``app.events.Dispatcher``/``Receiver``/``State``, bound to the app. The rooms:
:mod:`~celeriac.events.event` (one event and its message), :mod:`~celeriac.events.dispatcher`
(sending), :mod:`~celeriac.events.receiver` (capturing), :mod:`~celeriac.events.state`
(cluster state), :mod:`~celeriac.events.worker_events` (a worker's own events) and
:mod:`~celeriac.events.dump` (``celeriac events --dump``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from celeriac.events.dispatcher import Dispatcher
from celeriac.events.dispatcher import Dispatcher as _Dispatcher
from celeriac.events.event import Event, group_from
from celeriac.events.receiver import Receiver
from celeriac.events.receiver import Receiver as _Receiver
from celeriac.events.state import State
from celeriac.events.state import State as _State

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.message import Message

__all__ = ["Dispatcher", "Event", "Events", "Receiver", "State", "group_from"]


class Events:
    """``app.events``: the event classes bound to one app, and the app's own dispatcher.

    Its methods are named like the classes (Celery's API); inside, the classes go by their
    underscored aliases.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._dispatchers: dict[str | None, _Dispatcher] = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def Dispatcher(
        self, connection: Any = None, hostname: str | None = None, **kwargs: Any
    ) -> _Dispatcher:
        """A :class:`~celeriac.events.dispatcher.Dispatcher` of this app."""
        return _Dispatcher(connection, hostname, app=self.app, **kwargs)

    def Receiver(self, channel: Any = None, handlers: Any = None, **kwargs: Any) -> _Receiver:
        """A :class:`~celeriac.events.receiver.Receiver` of this app."""
        return _Receiver(channel, handlers, app=self.app, **kwargs)

    def State(self, **kwargs: Any) -> _State:
        """A new, empty :class:`~celeriac.events.state.State`."""
        return _State(**kwargs)

    @contextmanager
    def default_dispatcher(
        self, hostname: str | None = None, enabled: bool = True, buffer_while_offline: bool = False
    ) -> Iterator[_Dispatcher]:
        """The app's shared dispatcher for ``hostname`` (one per process and name), used by
        ``task.send_event`` and ``task-sent``; what it sends is published at once."""
        dispatcher = self._shared(hostname)
        dispatcher.enabled = enabled
        yield dispatcher

    def _shared(self, hostname: str | None = None) -> _Dispatcher:
        with self._lock:
            if self._pid != os.getpid():  # a forked child gets its own
                self._dispatchers.clear()
                self._pid = os.getpid()
            dispatcher = self._dispatchers.get(hostname)
            if dispatcher is None:
                dispatcher = _Dispatcher(app=self.app, hostname=hostname)
                self._dispatchers[hostname] = dispatcher
            return dispatcher

    def task_sent(
        self, queue: str, message: Message, exchange: str | None, routing_key: str | None
    ) -> None:
        """Send ``task-sent`` for a task message just published (``task_send_sent_event``)."""
        headers = message.headers
        self._shared().send(
            "task-sent",
            uuid=headers.get("id"),
            root_id=headers.get("root_id"),
            parent_id=headers.get("parent_id"),
            name=headers.get("task"),
            args=headers.get("argsrepr"),
            kwargs=headers.get("kwargsrepr"),
            retries=headers.get("retries", 0),
            eta=headers.get("eta"),
            expires=headers.get("expires"),
            queue=queue,
            exchange=exchange or "",
            routing_key=routing_key or queue,
        )
