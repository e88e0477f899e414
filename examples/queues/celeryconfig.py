"""Named queues: a default queue called ``default`` and one queue per kind of work."""

from celeriac import Exchange, Queue

# The default queue name (Celery's is "celery").
task_default_queue = "default"
# Only the queues listed below exist.
task_create_missing_queues = False
task_queues = (
    Queue("default", Exchange("default"), routing_key="task.#"),
    Queue("email", routing_key="email.#"),
    Queue("sms", routing_key="sms.#"),
    Queue("high_priority"),
    Queue("low_priority"),
)
task_routes = {
    "tasks.send_sms": {"queue": "sms"},
    "tasks.cleanup": {"queue": "low_priority"},
}
