"""``celeriac shell``: an interactive Python with the app, its tasks and the canvas loaded."""

from __future__ import annotations

import code
from typing import Any

import click

__all__ = ["shell", "shell_namespace"]


def shell_namespace(app: Any, with_tasks: bool = True) -> dict[str, Any]:
    """What the shell starts with: ``app`` (also as ``celery``), the canvas, and each task
    of the app under the last part of its name (``add`` for ``tasks.add``)."""
    from celeriac import (
        Task,
        chain,
        chord,
        chunks,
        group,
        maybe_signature,
        signature,
        subtask,
        xmap,
        xstarmap,
    )

    namespace: dict[str, Any] = {
        "app": app,
        "celery": app,
        "Task": Task,
        "chain": chain,
        "chord": chord,
        "chunks": chunks,
        "group": group,
        "maybe_signature": maybe_signature,
        "signature": signature,
        "subtask": subtask,
        "xmap": xmap,
        "xstarmap": xstarmap,
    }
    if with_tasks:
        for name, task in app.tasks.regular().items():
            if not name.startswith("celery."):
                namespace[name.rsplit(".", 1)[-1]] = task
    return namespace


@click.command()
@click.option("-I", "--ipython", is_flag=True, help="Use IPython (if installed).")
@click.option("-B", "--bpython", is_flag=True, help="Use bpython (if installed).")
@click.option("--python", "plain", is_flag=True, help="Use the plain Python shell.")
@click.option("-T", "--without-tasks", is_flag=True, help="Do not add the tasks by name.")
@click.pass_obj
def shell(obj: Any, ipython: bool, bpython: bool, plain: bool, without_tasks: bool) -> None:
    """Start a Python shell with the app, its tasks and the canvas primitives loaded."""
    namespace = shell_namespace(obj.app, with_tasks=not without_tasks)
    if not plain and (ipython or not bpython) and _run_ipython(namespace, required=ipython):
        return
    if bpython and _run_bpython(namespace):
        return
    names = ", ".join(sorted(key for key in namespace if not key[0].isupper()))
    code.interact(banner=f"celeriac shell. Loaded: {names}", local=namespace, exitmsg="")


def _run_ipython(namespace: dict[str, Any], *, required: bool) -> bool:
    try:
        import IPython  # type: ignore[import-not-found]
    except ImportError:
        if required:
            raise click.ClickException("IPython is not installed (pip install ipython)") from None
        return False
    IPython.start_ipython(argv=[], user_ns=namespace)
    return True


def _run_bpython(namespace: dict[str, Any]) -> bool:
    try:
        import bpython  # type: ignore[import-not-found]
    except ImportError:
        raise click.ClickException("bpython is not installed (pip install bpython)") from None
    bpython.embed(namespace)
    return True
