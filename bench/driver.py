"""Run one workload of one system once, inside that system's virtual environment.

Usage (run.py calls it; you rarely need to):
    .venv-peers/bin/python bench/driver.py celery-redis-prefork drain --tasks 10000
    .venv-peers/bin/python bench/driver.py ceilings w6

Prints one JSON object on its last line of output: the metrics, the library version and the
disturbance (cores used by other processes during the measured windows).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from importlib import metadata
from typing import Any

from harness.ceilings import ceilings
from harness.session import session
from harness.workloads import WORKLOADS, Sizes
from systems import ADAPTERS, load


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=[*sorted(ADAPTERS), "ceilings"])
    parser.add_argument("workload", choices=[*sorted(WORKLOADS), "w6"])
    defaults = Sizes()
    parser.add_argument("--tasks", type=int, default=defaults.tasks)
    parser.add_argument("--io-tasks", type=int, default=defaults.io_tasks)
    parser.add_argument("--round-trips", type=int, default=defaults.round_trips)
    parser.add_argument("--enqueue-cap", type=float, default=defaults.enqueue_cap)
    parser.add_argument("--cap", type=float, default=defaults.cap)
    parser.add_argument("--idle", type=float, default=defaults.idle)
    return parser.parse_args(argv)


def run(options: argparse.Namespace) -> dict[str, Any]:
    if options.system == "ceilings":
        return {"ok": True, "metrics": ceilings(requests=options.tasks * 2, count=options.tasks)}
    system_cls = load(options.system)
    sizes = Sizes(
        tasks=options.tasks,
        io_tasks=options.io_tasks,
        round_trips=options.round_trips,
        enqueue_cap=options.enqueue_cap,
        cap=options.cap,
        idle=options.idle,
    )
    results = options.workload == "drain_results"
    with session(system_cls, results=results) as s:
        metrics = WORKLOADS[options.workload](s, sizes)
    return {
        "ok": True,
        "version": metadata.version(system_cls.library),
        "metrics": metrics,
        "disturbance": metrics.pop("disturbance", 0.0),
        "windows": metrics.pop("windows", []),
    }


def _stop(signum: int, frame: object) -> None:
    # Turn SIGTERM into SystemExit so that every worker is stopped by its ``with`` block.
    sys.exit(128 + signum)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _stop)
    options = parse(argv)
    try:
        outcome = run(options)
    except Exception as exc:
        traceback.print_exc()
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    outcome.update(system=options.system, workload=options.workload)
    print(json.dumps(outcome))
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
