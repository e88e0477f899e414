"""Tasks defined with ``shared_task``: they do not import the app."""

from celeriac import shared_task


# An explicit name, independent of the module path.
@shared_task(bind=True, name="add")
def add(self, x, y):
    return x + y


@shared_task(name="email:send")
def send_email(address):
    return f"mail sent to {address}"


# No name: it is registered as "task.tasks.my_task".
@shared_task
def my_task():
    return "done"
