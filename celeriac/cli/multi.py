"""``celeriac multi``: start, stop and inspect several detached worker nodes.

As Celery's ``celery multi``::

    celeriac multi start w1 w2 -A proj -l INFO      # two nodes, w1@HOST and w2@HOST
    celeriac multi start 3 -c 3 -c:1 10              # celery1..3; celery1 gets -c 10
    celeriac multi stopwait w1 w2 -A proj            # TERM, then wait until they are gone

Each node is ``celeriac worker --detach -n NAME@HOST --pidfile=%n.pid --logfile=%n%I.log``
plus the options given. An option written ``-opt:SELECTOR value`` applies only to the nodes
the selector names: node names, 1-based positions, or ranges (``-c:1-3 4``, ``-Q:w1,w2 q``).
Nothing is stored between calls: ``stop`` finds a node through its pidfile, so give it the same
``--pidfile`` as ``start`` got.
"""

from __future__ import annotations

import difflib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import click

from celeriac import __version__
from celeriac.cli.worker import worker as worker_command
from celeriac.worker.daemon import READY_TIMEOUT, expand_filename, pid_is_alive, read_pid

__all__ = ["multi"]

#: Celery's defaults: files in the current directory, one log per pool process (``%I``).
DEFAULT_PIDFILE = "%n.pid"
DEFAULT_LOGFILE = "%n%I.log"
#: How long ``stopwait`` and ``restart`` wait for the nodes to exit (``--stop-timeout``).
STOP_TIMEOUT = 60.0

#: Options of the ``celeriac`` group: they go before ``worker`` on the node's command line.
GLOBAL_OPTIONS = {
    "-A": "app",
    "--app": "app",
    "-b": "broker",
    "--broker": "broker",
    "--result-backend": "result_backend",
    "--config": "config",
    "--workdir": "workdir",
}
#: Options of ``multi`` itself, never passed to the workers (True: takes a value).
MULTI_OPTIONS = {
    "--nosplash": False,
    "--quiet": False,
    "-q": False,
    "--verbose": False,
    "--no-color": False,
    "--range-prefix": True,
    "--hostname": True,
    "-n": True,
    "--stop-timeout": True,
}


@dataclass
class Option:
    """One option from the command line, in the form the user wrote it."""

    flag: str  # "-c", "--logfile"
    value: str | None  # None for a flag
    key: str  # what overrides what: the worker parameter's name ("concurrency")
    selector: str | None = None  # "1-3", "w1,w2": only for these nodes


@dataclass
class Parsed:
    names: list[str] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)
    multi: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Node:
    """One worker node: its name, its command line and where its pidfile is."""

    name: str  # w1@host
    argv: list[str]
    pidfile: str
    logfile: str

    @property
    def short(self) -> str:
        return self.name.partition("@")[0]


# --- parsing the command line ----------------------------------------------------------------


def _worker_flags() -> dict[str, tuple[str, bool]]:
    """``-c``/``--concurrency`` → ("concurrency", takes a value), from ``celeriac worker``."""
    table: dict[str, tuple[str, bool]] = {}
    for param in worker_command.params:
        if isinstance(param, click.Option):
            for flag in (*param.opts, *param.secondary_opts):
                table[flag] = (param.name or flag, not param.is_flag)
    for flag, name in GLOBAL_OPTIONS.items():
        table[flag] = (name, True)
    return table


def parse_args(args: Sequence[str]) -> Parsed:
    """Split ``multi``'s arguments into node names, worker options and multi's own options."""
    table = _worker_flags()
    parsed = Parsed()
    tokens = list(args)
    position = 0
    while position < len(tokens):
        token = tokens[position]
        position += 1
        if not token.startswith("-") or token == "-":
            parsed.names.append(token)
            continue
        flag, selector, value = _split_flag(token, table)
        takes_value = MULTI_OPTIONS.get(flag, table.get(flag, (flag, True))[1])
        next_is_value = position < len(tokens) and not tokens[position].startswith("-")
        if takes_value and value is None and next_is_value:
            value = tokens[position]
            position += 1
        if flag in MULTI_OPTIONS:
            parsed.multi[flag.lstrip("-")] = value
            continue
        key = table.get(flag, (flag, True))[0]
        parsed.options.append(Option(flag, value, key, selector))
    return parsed


def _split_flag(
    token: str, table: dict[str, tuple[str, bool]]
) -> tuple[str, str | None, str | None]:
    """``--logfile:w1=x`` → ("--logfile", "w1", "x"); ``-c3`` → ("-c", None, "3")."""
    value: str | None = None
    if token.startswith("--") and "=" in token:
        token, _, value = token.partition("=")
    flag, colon, selector = token.partition(":")
    if colon and "=" in selector:
        selector, _, value = selector.partition("=")
    if not flag.startswith("--") and len(flag) > 2 and not colon:
        # -lINFO, -c3: a short option with its value attached, as click reads it.
        flag, value = flag[:2], flag[2:]
    return flag, (selector if colon else None), value


# --- building the nodes ----------------------------------------------------------------------


def node_names(parsed: Parsed) -> list[str]:
    """Full node names: ``w1`` → ``w1@HOST``; ``3`` → ``celery1@HOST`` … ``celery3@HOST``."""
    host = parsed.multi.get("hostname") or parsed.multi.get("n") or socket.gethostname()
    prefix = parsed.multi.get("range-prefix") or "celery"
    names = parsed.names
    if len(names) == 1 and names[0].isdigit():
        names = [f"{prefix}{number}" for number in range(1, int(names[0]) + 1)]
    return [name if "@" in name else f"{name}@{host}" for name in names]


def _selected(selector: str, node: str, position: int) -> bool:
    short = node.partition("@")[0]
    for item in selector.split(","):
        low, dash, high = item.partition("-")
        if dash and low.isdigit() and high.isdigit():
            if int(low) <= position <= int(high):
                return True
        elif item in (str(position), short, node):
            return True
    return False


def _options_for(parsed: Parsed, node: str, position: int) -> dict[str, list[Option]]:
    """The options for one node, by key: a selector naming the node replaces the general ones."""
    general: dict[str, list[Option]] = {}
    specific: dict[str, list[Option]] = {}
    for option in parsed.options:
        if option.selector is None:
            general.setdefault(option.key, []).append(option)
        elif _selected(option.selector, node, position):
            specific.setdefault(option.key, []).append(option)
    return {**general, **specific}


def _expand_node(value: str, node: str) -> str:
    # %i and %I are the worker's to expand (they differ per pool process): keep them.
    return expand_filename(value.replace("%i", "%%i").replace("%I", "%%I"), node)


def _render(option: Option, node: str) -> list[str]:
    if option.value is None:
        return [option.flag]
    value = _expand_node(option.value, node)
    if option.flag.startswith("--"):
        return [f"{option.flag}={value}"]
    return [option.flag, value]


def build_nodes(parsed: Parsed, defaults: dict[str, str | None]) -> list[Node]:
    """One Node per name, with its full ``celeriac worker --detach`` command line."""
    nodes = []
    for position, name in enumerate(node_names(parsed), start=1):
        options = _options_for(parsed, name, position)
        pidfile = _expand_node(_value(options, "pidfile") or DEFAULT_PIDFILE, name)
        logfile = _expand_node(_value(options, "logfile") or DEFAULT_LOGFILE, name)
        argv = [sys.executable, "-m", "celeriac"]
        for key, flag in (("app", "-A"), ("broker", "-b")):
            value = _value(options, key) or defaults.get(key)
            if value:
                argv += [flag, value]
        for key in ("result_backend", "config", "workdir"):
            value = _value(options, key) or defaults.get(key)
            if value:
                argv.append(f"--{key.replace('_', '-')}={value}")
        argv += ["worker", "--detach", "-n", name]
        argv += [f"--pidfile={pidfile}", f"--logfile={logfile}"]
        for key, given in options.items():
            if key not in (*GLOBAL_OPTIONS.values(), "pidfile", "logfile"):
                argv += [arg for option in given for arg in _render(option, name)]
        workdir = _value(options, "workdir") or defaults.get("workdir") or ""
        nodes.append(Node(name, argv, os.path.join(workdir, pidfile), logfile))
    return nodes


def _value(options: dict[str, list[Option]], key: str) -> str | None:
    """The last value given for ``key`` (as click takes the last of a repeated option)."""
    given = options.get(key)
    return given[-1].value if given else None


# --- the commands ----------------------------------------------------------------------------


class Multi:
    """The sub-commands, sharing the parsed nodes and the output switches."""

    def __init__(self, parsed: Parsed, nodes: list[Node], *, quiet: bool) -> None:
        self.parsed = parsed
        self.nodes = nodes
        self.quiet = quiet or "quiet" in parsed.multi or "q" in parsed.multi
        self.verbose = "verbose" in parsed.multi
        timeout = parsed.multi.get("stop-timeout")
        self.stop_timeout = float(timeout) if timeout else STOP_TIMEOUT

    def say(self, text: str = "", nl: bool = True) -> None:
        if not self.quiet:
            click.echo(text, nl=nl)

    def splash(self) -> None:
        if "nosplash" not in self.parsed.multi:
            self.say(f"celeriac multi v{__version__} (Celery 5 compatible)")

    def start(self) -> int:
        self.splash()
        self.say("> Starting nodes...")
        failed = 0
        for node in self.nodes:
            failed += not self._start_node(node)
        return 1 if failed else 0

    def _start_node(self, node: Node) -> bool:
        if self.verbose:
            self.say(f"\t> {shlex.join(node.argv)}")
        self.say(f"\t> {node.name}: ", nl=False)
        try:
            done = subprocess.run(
                node.argv, capture_output=True, text=True, timeout=READY_TIMEOUT + 10
            )
        except subprocess.TimeoutExpired:
            self.say("FAILED (no answer from the node)")
            return False
        if done.returncode == 0:
            self.say("OK")
            return True
        self.say(f"* Child terminated with exit code {done.returncode}")
        for line in done.stderr.strip().splitlines():
            self.say(f"\t  {line}")
        self.say("FAILED")
        return False

    def _signal_all(self, signum: signal.Signals, label: str) -> list[tuple[Node, int]]:
        """Send ``signum`` to every live node; report DOWN for those without a live pid."""
        sent = []
        for node in self.nodes:
            pid = read_pid(node.pidfile)
            if pid is None or not pid_is_alive(pid):
                self.say(f"\t> {node.name}: DOWN")
                continue
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                self.say(f"\t> {node.name}: DOWN")
                continue
            self.say(f"\t> {node.name}: {label} -> {pid}")
            sent.append((node, pid))
        return sent

    def stop(self) -> int:
        self.splash()
        self.say("> Stopping nodes...")
        self._signal_all(signal.SIGTERM, "TERM")
        return 0

    def stopwait(self) -> int:
        self.splash()
        self.say("> Stopping nodes...")
        sent = self._signal_all(signal.SIGTERM, "TERM")
        return self._wait_for(sent)

    def _wait_for(self, sent: list[tuple[Node, int]]) -> int:
        if not sent:
            return 0
        pids = ", ".join(str(pid) for _, pid in sent)
        self.say(f"> Waiting for {len(sent)} {'node' if len(sent) == 1 else 'nodes'} -> {pids}")
        waiting = list(sent)
        deadline = time.monotonic() + self.stop_timeout
        while waiting and time.monotonic() < deadline:
            for node, pid in list(waiting):
                if not pid_is_alive(pid):
                    self.say(f"\t> {node.name}: OK")
                    waiting.remove((node, pid))
            time.sleep(0.1)
        for node, pid in waiting:
            self.say(f"\t> {node.name}: still running after {self.stop_timeout:g}s (pid {pid})")
        return 1 if waiting else 0

    def restart(self) -> int:
        code = self.stopwait()
        self.say("> Restarting nodes...")
        failed = sum(not self._start_node(node) for node in self.nodes)
        return 1 if code or failed else 0

    def kill(self) -> int:
        self.splash()
        self.say("> Killing nodes...")
        for node, _ in self._signal_all(signal.SIGKILL, "KILL"):
            # A killed worker cannot remove its pidfile; a later start would replace it anyway.
            if os.path.exists(node.pidfile):
                os.remove(node.pidfile)
        return 0

    def show(self) -> int:
        for node in self.nodes:
            click.echo(shlex.join(node.argv))
        return 0

    def names(self) -> int:
        for node in self.nodes:
            click.echo(node.name)
        return 0


def _expand(parsed: Parsed, defaults: dict[str, str | None]) -> int:
    """``expand TEMPLATE NAMES``: the template expanded for each node."""
    template, parsed.names = parsed.names[0], parsed.names[1:]
    for name in node_names(parsed):
        click.echo(expand_filename(template, name))
    return 0


def _get(parsed: Parsed, defaults: dict[str, str | None]) -> int:
    """``get NODE NAMES``: the command line of one node."""
    wanted, parsed.names = parsed.names[0], parsed.names[1:]
    for node in build_nodes(parsed, defaults):
        if wanted in (node.name, node.short):
            click.echo(shlex.join(node.argv))
            return 0
    raise click.ClickException(f"No node named {wanted!r} among: {' '.join(parsed.names)}")


NODE_COMMANDS: dict[str, Callable[[Multi], int]] = {
    "start": Multi.start,
    "stop": Multi.stop,
    "stopwait": Multi.stopwait,
    "restart": Multi.restart,
    "kill": Multi.kill,
    "show": Multi.show,
    "names": Multi.names,
}
#: Commands whose first name is an argument, not a node.
TEMPLATE_COMMANDS: dict[str, Callable[[Parsed, dict[str, str | None]], int]] = {
    "expand": _expand,
    "get": _get,
}
COMMANDS = [*NODE_COMMANDS, *TEMPLATE_COMMANDS, "help"]

USAGE = f"""\
Usage: celeriac multi COMMAND NAMES [-A APP] [worker options] [--pidfile=...] [--logfile=...]

Commands: {", ".join(COMMANDS)}

  celeriac multi start w1 w2 -A proj -l INFO
  celeriac multi start 3 -c 3 -c:1 10         (celery1..celery3; celery1 gets -c 10)
  celeriac multi stopwait w1 w2 -A proj
  celeriac multi show 2 -Q:1 images -Q default
  celeriac multi expand %n.pid w1 w2
  celeriac multi get w1@HOST w1 w2

Defaults: --pidfile={DEFAULT_PIDFILE} --logfile={DEFAULT_LOGFILE}; %n is the node name.
Multi's own options: --nosplash --quiet --verbose --range-prefix=PREFIX --hostname=HOST
  --stop-timeout=SECONDS (how long stopwait/restart wait; default {STOP_TIMEOUT:g})."""


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def multi(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Start, stop and inspect several worker nodes (as ``celery multi``)."""
    if not args or args[0] in ("help", "-h", "--help"):
        click.echo(USAGE)
        return
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise click.UsageError(
            f"Unknown multi command {command!r}.{hint} Valid commands: {', '.join(COMMANDS)}."
        )
    parsed = parse_args(rest)
    defaults = _group_defaults(ctx)
    if command in TEMPLATE_COMMANDS:
        if len(parsed.names) < 2:
            raise click.UsageError(f"multi {command} needs an argument and node names.")
        ctx.exit(TEMPLATE_COMMANDS[command](parsed, defaults))
    if not parsed.names:
        raise click.UsageError(
            f"multi {command} needs node names: e.g. 'w1 w2', or a number ('3')."
        )
    quiet = bool(getattr(ctx.obj, "quiet", False))
    runner = Multi(parsed, build_nodes(parsed, defaults), quiet=quiet)
    ctx.exit(NODE_COMMANDS[command](runner))


def _group_defaults(ctx: click.Context) -> dict[str, str | None]:
    """``celeriac -A proj multi ...``: the group's options, for each node's command line."""
    params = ctx.parent.params if ctx.parent is not None else {}
    return {
        "app": params.get("app_name"),
        "broker": params.get("broker"),
        "result_backend": params.get("result_backend"),
        "config": params.get("config"),
    }
