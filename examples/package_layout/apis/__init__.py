"""The web project's package: it creates the app (named ``celery``) from a config module."""

from celeriac import Celery

celery = Celery(__name__)
celery.config_from_object("tasks.celery_config")
