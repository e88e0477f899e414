"""Optional extras users import by name (``celeriac.contrib.abortable``, ...)."""
