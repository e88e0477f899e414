"""What the worker is started on: ``celeriac -A celery_worker.celery worker``.

In the tutorial this module also creates the web app and pushes its context.
"""

from apis import celery

__all__ = ["celery"]
