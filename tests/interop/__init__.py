"""Celery and celeriac on one broker: each runs the other's tasks and reads its results."""
