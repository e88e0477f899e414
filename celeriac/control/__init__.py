"""Remote control: Celery's ``app.control`` and ``inspect``, and the worker's mailbox."""
