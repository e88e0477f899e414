"""docs/benchmarks.md: the chart, where celeriac is not ahead, the tables, how it was measured."""

from __future__ import annotations

from typing import Any

from reporting.aggregate import Figures, Stat
from reporting.metrics import (
    DASH,
    HEADLINE,
    TIMES,
    W1,
    W1B,
    W2,
    W2R,
    W3_P50,
    W3_P99,
    W4_RSS,
    W4_START,
    W5,
)
from reporting.metrics import Metric as M

CELERIAC = "celeriac-sqlite"
DETECTION = (
    "Every task ends by writing one byte to a Unix stream socket that the benchmark driver "
    "listens on (one connection per worker process, opened on its first task). The driver "
    "timestamps the bytes as they arrive: the first completion, the last, and each round trip "
    "are read from them. This is the same code for every system, costs a task one `send()` "
    "system call, never touches the broker or result backend under test, and cannot lose a "
    "completion. With results stored (W2r) the driver afterwards checks that the backend holds "
    "every result."
)


def render(result: dict[str, Any], figures: Figures, chart_name: str) -> str:
    systems = [s for s in result["systems"] if s in figures.stats]
    parts = [
        _header(result, chart_name),
        _not_ahead(figures, systems),
        _summary(figures, systems),
        _method(result, figures),
        _w1(figures, systems),
        _drain(figures, systems, "w2", W2, "W2: drain N queued no-op tasks, no results"),
        _drain(figures, systems, "w2r", W2R, "W2r: the same with results stored"),
        _w3(figures, systems),
        _w4(figures, systems),
        _w5(figures, systems),
        _w6(figures),
        _versions(result, figures, systems),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


# --- cells ------------------------------------------------------------------------------------


def _cell(stat: Stat | None, metric: M, base: Stat | None = None) -> str:
    if stat is None:
        return f"{DASH}"
    text = metric.fmt(stat.median)
    if base is not None and base.median:
        ratio = stat.median / base.median
        text += f" ({ratio:.2f}{TIMES})" if ratio < 10 else f" ({ratio:.0f}{TIMES})"
        if metric.better(stat.median, base.median):
            text = f"**{text}**"
    return text + ("†" if stat.disturbed else "")


def _range(stat: Stat | None, metric: M) -> str:
    if stat is None:
        return f"{DASH}"
    return f"{metric.fmt(stat.lo)}{DASH}{metric.fmt(stat.hi)}"


def _get(figures: Figures, system: str, key: str) -> Stat | None:
    return figures.stats.get(system, {}).get(key)


def _text(figures: Figures, system: str, key: str) -> str:
    value = figures.texts.get(system, {}).get(key)
    return f"`{value}`" if value else f"{DASH}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _ratio_of(figures: Figures, system: str, metric: M) -> str:
    stat, base = _get(figures, system, metric.key), _get(figures, CELERIAC, metric.key)
    if stat is None or base is None or not base.median:
        return f"{DASH}"
    return f"{stat.median / base.median:.2f}{TIMES}"


# --- sections -----------------------------------------------------------------------------------


def _header(result: dict[str, Any], chart_name: str) -> str:
    date = result["started"][:10]
    sizes = result["sizes"]
    return (
        "# Benchmarks: celeriac and its peers\n\n"
        f"_Measured on {date} with `python bench/run.py"
        f"{' --quick' if result['mode'] == 'quick' else ''}` "
        f"({result['mode']} mode: {sizes['runs']} run(s) of every row, "
        f"{result['duration_s'] / 60:.0f} min). Generated from "
        "`bench/results/*.json` by `bench/report.py`: do not edit by hand. How to run it and "
        "read it: [bench/README.md](../bench/README.md)._\n\n"
        f"![celeriac and its peers, median of {sizes['runs']} run(s); bars show min{DASH}max]"
        f"({chart_name})"
    )


def _not_ahead(figures: Figures, systems: list[str]) -> str:
    if CELERIAC not in figures.stats:
        return "## Where celeriac is not ahead\n\nceleriac was not part of this run."
    lines = []
    for metric in HEADLINE:
        base = _get(figures, CELERIAC, metric.key)
        if base is None:
            peers = [s for s in systems if _get(figures, s, metric.key)]
            if peers and metric is W1B:
                lines.append(
                    f"- **{metric.title}**: celeriac has no bulk API yet (canvas `group` is "
                    f"planned); {', '.join(peers)} have one."
                )
            continue
        for system in systems:
            stat = _get(figures, system, metric.key)
            if _is_celeriac(system) or stat is None or metric.better(base.median, stat.median):
                continue
            overlap = f" (min{DASH}max ranges overlap)" if _overlap(stat, base) else ""
            lines.append(
                f"- **{metric.title}**: {system} {metric.fmt(stat.median)} vs celeriac "
                f"{metric.fmt(base.median)} {metric.unit}{overlap}"
            )
    body = "\n".join(lines) if lines else "None: celeriac leads every row."
    return (
        "## Where celeriac is not ahead\n\nEvery (workload, peer) pair whose median is as good "
        f"as or better than celeriac's (`{CELERIAC}`, `-P threads -c 2`; celeriac's other "
        "configurations are not peers and are left out here):\n\n" + body
    )


def _is_celeriac(system: str) -> bool:
    """celeriac's own rows (the primary one and its other configurations) are not peers."""
    return system.startswith("celeriac")


def _overlap(a: Stat, b: Stat) -> bool:
    return a.lo <= b.hi and b.lo <= a.hi


def _summary(figures: Figures, systems: list[str]) -> str:
    head = ["system"] + [m.short or m.title for m in HEADLINE]
    rows = []
    for system in systems:
        row = [f"**{system}**" if _is_celeriac(system) else system]
        for metric in HEADLINE:
            base = None if system == CELERIAC else _get(figures, CELERIAC, metric.key)
            row.append(_cell(_get(figures, system, metric.key), metric, base))
        rows.append(row)
    return (
        "## Summary\n\nMedians; in brackets the ratio to celeriac's primary row "
        f"(row ÷ `{CELERIAC}`), **bold** where the row is better. celeriac's rows have bold "
        "names. Throughputs: higher is better; times, memory and CPU: lower is better. "
        "† marks a figure that kept a run the machine disturbed (see below). "
        f"Min{DASH}max and commands are in the per-workload tables.\n\n" + _table(head, rows)
    )


def _method(result: dict[str, Any], figures: Figures) -> str:
    sizes, machine = result["sizes"], result.get("machine", {})
    kept = figures.kept_disturbed
    return "\n".join(
        [
            "## How it was measured",
            "",
            f"- Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, Linux "
            f"{machine.get('kernel', '?')}, Python {machine.get('python', '?')}, Redis "
            f"{machine.get('redis_server', '?')}, RabbitMQ {machine.get('rabbitmq', '?')}, all "
            "on 127.0.0.1. The machine is shared with other work.",
            f"- Sizes: W1/W2 N = {sizes['tasks']:,}, W2r N = {sizes['results_tasks']:,}, W1 bulk "
            f"N = {sizes.get('bulk_tasks', sizes['tasks']):,}, W3 {sizes['round_trips']} round "
            f"trips, W5 {sizes['io_tasks']:,} tasks at concurrency 100. A one-by-one enqueue "
            f"stops after {sizes.get('enqueue_cap', sizes['cap']):.0f} s, a drain or round-trip "
            f"phase after {sizes['cap']:.0f} s: the rate is then over the tasks that completed "
            "(the tables say how many). Each row is the median of "
            f"{sizes['runs']} run(s), each in a fresh worker, broker namespace and directory.",
            f"- Completion detection (the same for all): {DETECTION}",
            "- Drain rate (W2, W2r, W5) is timed from the first task's completion to the last's, "
            "so worker start-up is excluded (it is W4). CPU per task is the worker process tree's "
            "user+system CPU (and the broker server's: redis-server or RabbitMQ's beam.smp; "
            "SQLite runs inside the worker) over that window, divided by the tasks completed.",
            f"- Disturbance: during every measured window the driver also measures the CPU used "
            "by all other processes (and stolen by the hypervisor); a run where that exceeds "
            f"0.2 core is repeated (up to {sizes.get('attempts', 3)} attempts; before each the "
            f"runner waits for a quiet machine). {figures.attempts} attempts were made, "
            f"{figures.repeated} of them repeats; {kept} run(s) were kept although disturbed "
            "(no undisturbed attempt within the limits): their figures are marked †.",
            "- Every worker logs at WARNING (no per-task log line), as a production worker would.",
        ]
    )


def _w1(figures: Figures, systems: list[str]) -> str:
    rows = []
    for system in systems:
        rows.append(
            [
                system,
                _cell(_get(figures, system, W1.key), W1),
                _range(_get(figures, system, W1.key), W1),
                _ratio_of(figures, system, W1),
                _us(figures, system, "w1_client_cpu_us"),
                _us(figures, system, "w1_broker_cpu_us"),
                _text(figures, system, "w1_api"),
                _cell(_get(figures, system, W1B.key), W1B),
                _range(_get(figures, system, W1B.key), W1B),
                _text(figures, system, "w1b_api"),
            ]
        )
    head = [
        "system",
        "tasks/s",
        f"min{DASH}max",
        f"{TIMES} celeriac",
        "client µs/task",
        "broker µs/task",
    ]
    head += ["call", "bulk tasks/s", f"bulk min{DASH}max", "bulk API"]
    return (
        "## W1: enqueue N no-op tasks\n\nOne client thread sends N tasks one by one (after one "
        "warm-up call), and separately with the library's bulk API where it has one. Broker "
        "CPU: the server's CPU per task (0 for SQLite, which runs in the client).\n\n"
        + _table(head, rows)
    )


def _us(figures: Figures, system: str, key: str) -> str:
    stat = _get(figures, system, key)
    return f"{DASH}" if stat is None else f"{stat.median:,.0f}"


def _drain(figures: Figures, systems: list[str], prefix: str, metric: M, title: str) -> str:
    rows = []
    for system in systems:
        rows.append(
            [
                system,
                _cell(_get(figures, system, metric.key), metric),
                _range(_get(figures, system, metric.key), metric),
                _ratio_of(figures, system, metric),
                _us(figures, system, f"{prefix}_worker_cpu_us"),
                _us(figures, system, f"{prefix}_broker_cpu_us"),
                _secs(figures, system, f"{prefix}_startup_s"),
                _us(figures, system, f"{prefix}_tasks"),
                _text(figures, system, f"{prefix}_command"),
            ]
        )
    head = [
        "system",
        "tasks/s",
        f"min{DASH}max",
        f"{TIMES} celeriac",
        "worker µs/task",
        "broker µs/task",
    ]
    head += ["start-up with backlog (s)", "tasks timed", "worker command"]
    intro = (
        "N tasks are queued first; then one worker using both cores starts and drains them."
        if prefix == "w2"
        else "As W2, with each system's result backend on (Redis for the Redis and RabbitMQ "
        "rows, the SQLite file for the SQLite rows); every result was checked to be stored."
    )
    return f"## {title}\n\n{intro}\n\n" + _table(head, rows)


def _secs(figures: Figures, system: str, key: str) -> str:
    stat = _get(figures, system, key)
    return f"{DASH}" if stat is None else f"{stat.median:.2f}"


def _w3(figures: Figures, systems: list[str]) -> str:
    rows = []
    for system in systems:
        rows.append(
            [
                system,
                _cell(_get(figures, system, W3_P50.key), W3_P50),
                _range(_get(figures, system, W3_P50.key), W3_P50),
                _ratio_of(figures, system, W3_P50),
                _cell(_get(figures, system, W3_P99.key), W3_P99),
                _range(_get(figures, system, W3_P99.key), W3_P99),
                _us(figures, system, "w3_round_trips"),
            ]
        )
    head = [
        "system",
        "p50 ms",
        f"min{DASH}max",
        f"{TIMES} celeriac",
        "p99 ms",
        f"p99 min{DASH}max",
        "round trips",
    ]
    return (
        "## W3: sequential round trips\n\nOne task at a time on an idle, warm worker (the W4 "
        "one): the time from the call that sends it to its completion signal.\n\n"
        + _table(head, rows)
    )


def _w4(figures: Figures, systems: list[str]) -> str:
    rows = []
    for system in systems:
        rows.append(
            [
                system,
                _cell(_get(figures, system, W4_START.key), W4_START),
                _range(_get(figures, system, W4_START.key), W4_START),
                _ratio_of(figures, system, W4_START),
                _cell(_get(figures, system, W4_RSS.key), W4_RSS),
                _us(figures, system, "w4_pss_mib"),
                _us(figures, system, "w4_processes"),
                _text(figures, system, "w4_command"),
            ]
        )
    head = [
        "system",
        "start-up s",
        f"min{DASH}max",
        f"{TIMES} celeriac",
        "idle RSS MiB",
        "idle PSS MiB",
    ]
    head += ["processes", "worker command"]
    return (
        "## W4: worker start-up and idle memory\n\nOne task is queued, the worker is started: "
        "start-up is the time from spawning the command to that task's completion. One second "
        "later the worker's process tree is measured: RSS summed over its processes, and PSS, "
        "which shares the pages forked processes have in common fairly.\n\n" + _table(head, rows)
    )


def _w5(figures: Figures, systems: list[str]) -> str:
    rows = []
    for system in systems:
        rows.append(
            [
                system,
                _cell(_get(figures, system, W5.key), W5),
                _range(_get(figures, system, W5.key), W5),
                _ratio_of(figures, system, W5),
                _secs(figures, system, "w5_seconds"),
                _us(figures, system, "w5_worker_cpu_us"),
                _text(figures, system, "w5_pool"),
                _text(figures, system, "w5_command"),
            ]
        )
    head = [
        "system",
        "tasks/s",
        f"min{DASH}max",
        f"{TIMES} celeriac",
        "seconds",
        "worker µs/task",
        "pool",
    ]
    head += ["worker command"]
    return (
        "## W5: I/O-bound tasks\n\nN tasks that each `sleep(0.1)` (asyncio.sleep for the async "
        "libraries), drained with each system's recommended I/O pool at concurrency 100: the "
        "ideal is 1,000 tasks/s. Timed from the first task's start (its completion - 0.1 s) to "
        "the last completion.\n\n" + _table(head, rows)
    )


W6_ROWS = [
    ("redis-benchmark LPUSH, 1 connection", "w6_redis_benchmark_c1_lpush", "ops/s"),
    ("redis-benchmark RPOP, 1 connection", "w6_redis_benchmark_c1_rpop", "ops/s"),
    ("redis-benchmark LPUSH, 50 connections", "w6_redis_benchmark_c50_lpush", "ops/s"),
    ("redis-benchmark RPOP, 50 connections", "w6_redis_benchmark_c50_rpop", "ops/s"),
    ("redis-py LPUSH loop, one by one", "w6_redis_py_lpush", "ops/s"),
    ("redis-py RPOP loop, one by one", "w6_redis_py_rpop", "ops/s"),
    ("Python no-op function call loop", "w6_function_calls", "calls/s"),
]


def _w6(figures: Figures) -> str:
    w6 = figures.stats.get("ceilings")
    if not w6:
        return ""
    rows = []
    for label, key, unit in W6_ROWS:
        metric = M(key, label, unit, True)
        rows.append([label, _cell(w6.get(key), metric), _range(w6.get(key), metric), unit])
    size = w6.get("w6_payload_bytes")
    payload = f"{size.median:.0f} bytes" if size else "?"
    return (
        "## W6: ceilings\n\nWhat no Redis-based queue can pass on this machine, with the payload "
        f"size of one Celery-protocol task message ({payload}); and the cost of a bare Python "
        "call, the floor of any per-task work.\n\n"
        + _table(["ceiling", "median", f"min{DASH}max", "unit"], rows)
    )


def _versions(result: dict[str, Any], figures: Figures, systems: list[str]) -> str:
    rows = [[s, _text(figures, s, "version")] for s in systems]
    repo = result.get("repo", {})
    dirty = " (with uncommitted changes)" if repo.get("dirty") else ""
    freeze = []
    for name, lines in result.get("freeze", {}).items():
        shown = [_without_local_path(line) for line in lines]
        freeze.append(f"`bench/.venv-{name}`:\n\n```\n" + "\n".join(shown) + "\n```")
    failures = [
        f"- {f['system']} {f['job']} run {f['rep']}: {f.get('error', '?')}"
        for f in figures.failures
    ]
    return "\n\n".join(
        [
            "## Versions",
            f"celeriac: this repository at `{repo.get('commit', '?')}`{dirty}, installed "
            "editable into the peers' environment. Failures (if any) follow the table.",
            _table(["system", "version"], rows),
            "\n".join(failures) if failures else "No run failed.",
            "<details><summary>pip freeze of both environments</summary>\n\n"
            + "\n\n".join(freeze)
            + "\n\n</details>",
        ]
    )


def _without_local_path(line: str) -> str:
    """An editable install's line names a directory of the machine: show it as the repo."""
    return "-e <this repository>" if line.startswith("-e ") else line
