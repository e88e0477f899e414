"""Tasks every app has because Celery clients and schedules send them by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celeriac.app import Celery

__all__ = ["register_builtins"]


def register_builtins(app: Celery) -> None:
    """Register celeriac's built-in tasks (under Celery's names) in ``app``."""

    @app.task(name="celery.backend_cleanup", shared=False, ignore_result=True)
    def backend_cleanup() -> int:
        """Delete expired results (beat sends this daily when results expire)."""
        return int(app.backend.cleanup())
