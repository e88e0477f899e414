"""Task states: the names stored in result backends, the sets that group them, and precedence.

The names are Celery's, byte for byte, because they travel on the wire (result records).
"""

from __future__ import annotations

__all__ = [
    "ALL_STATES",
    "EXCEPTION_STATES",
    "FAILURE",
    "IGNORED",
    "PENDING",
    "PRECEDENCE",
    "PROPAGATE_STATES",
    "READY_STATES",
    "RECEIVED",
    "REJECTED",
    "RETRY",
    "REVOKED",
    "STARTED",
    "SUCCESS",
    "UNREADY_STATES",
    "precedence",
    "state",
]

#: Unknown to the backend: waiting, or never sent (or forgotten, or expired).
PENDING = "PENDING"
#: Received by a worker (events only).
RECEIVED = "RECEIVED"
#: Started by a worker (with ``track_started``).
STARTED = "STARTED"
#: Finished and returned a value.
SUCCESS = "SUCCESS"
#: Finished by raising.
FAILURE = "FAILURE"
#: Revoked, or expired before it ran.
REVOKED = "REVOKED"
#: Rejected by the task (``Reject``).
REJECTED = "REJECTED"
#: Waiting to be retried.
RETRY = "RETRY"
#: The task raised ``Ignore``.
IGNORED = "IGNORED"

READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, REJECTED, RETRY})
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})
ALL_STATES = frozenset({PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED})

#: Later in the list means further along; unknown (custom) states rank with ``None``.
PRECEDENCE = [SUCCESS, FAILURE, None, REVOKED, STARTED, RECEIVED, REJECTED, RETRY, PENDING]
_PRECEDENCE_LOOKUP = {name: index for index, name in enumerate(PRECEDENCE)}
_NONE_PRECEDENCE = _PRECEDENCE_LOOKUP[None]


def precedence(name: str | None) -> int:
    """Rank of a state: lower is more final (SUCCESS is 0; custom states rank with None)."""
    return _PRECEDENCE_LOOKUP.get(name, _NONE_PRECEDENCE)


class state(str):
    """A state name that compares by precedence: ``state(SUCCESS) > state(PENDING)``."""

    def __gt__(self, other: object) -> bool:
        return precedence(self) < precedence(str(other))

    def __ge__(self, other: object) -> bool:
        return precedence(self) <= precedence(str(other))

    def __lt__(self, other: object) -> bool:
        return precedence(self) > precedence(str(other))

    def __le__(self, other: object) -> bool:
        return precedence(self) >= precedence(str(other))

    __hash__ = str.__hash__
