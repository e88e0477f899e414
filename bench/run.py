"""The benchmark suite's one command: celeriac and its peers, the same workloads, one report.

    python bench/run.py                 # full run (~15 min): 3 runs of everything
    python bench/run.py --quick         # development run (< 3 min): small N, 1 run
    python bench/run.py --only celeriac,celery-redis --workloads W2,W3

Creates bench/.venv-peers and bench/.venv-arq when missing (pinned by the requirements-*.txt
files), runs each system's workloads in its own driver process, writes the raw results to
bench/results/<timestamp>.json and renders docs/benchmarks.md with its chart. See README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import envs, plan, services
from runner.execute import Runner

RESULTS = envs.BENCH / "results"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark celeriac against its peers.")
    parser.add_argument("--quick", action="store_true", help="small N, one run (< 3 minutes)")
    parser.add_argument("--only", help="systems or prefixes, comma-separated (celeriac,celery)")
    parser.add_argument("--workloads", help="W1,W2,W2r,W3,W4,W5,W6 (default: all)")
    parser.add_argument("--runs", type=int, help="repetitions (default: 3, or 1 with --quick)")
    parser.add_argument("--no-report", action="store_true", help="write the JSON only")
    parser.add_argument(
        "--docs",
        type=Path,
        default=envs.REPO / "docs" / "benchmarks.md",
        help="where the report goes (its chart is written beside it)",
    )
    return parser.parse_args(argv)


def setup(systems: list[str]) -> None:
    """Install what is missing; compile bytecode so that start-up times are a user's."""
    needed = {plan.venv_of(s) for s in systems} | {"peers"}
    for name in sorted(needed):
        envs.ensure(envs.ENVS[name])
        envs.warm_bytecode(envs.ENVS[name])


def check_servers(systems: list[str]) -> list[str]:
    """Drop the systems whose server is not running, saying so."""
    kept = []
    for system in systems:
        port = 5672 if "rabbitmq" in system else 6379 if "redis" in system else None
        if port and not services.port_open(port):
            print(f"[bench] skipping {system}: nothing listens on 127.0.0.1:{port}", flush=True)
            continue
        kept.append(system)
    return kept


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": services.redis_version(),
        "rabbitmq": services.rabbitmq_version(),
    }


def repo_state() -> dict[str, Any]:
    """The working tree's commit and whether it has changes (read-only git commands)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(envs.REPO), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--short"))}


def execute(options: argparse.Namespace, systems: list[str], jobs: list[str]) -> dict[str, Any]:
    sizes = plan.QUICK if options.quick else plan.FULL
    if options.runs:
        sizes = plan.Sizes(**{**sizes.__dict__, "runs": options.runs})
    uses_rabbit = any("rabbitmq" in s for s in systems)
    vhost = services.open_vhost() if uses_rabbit else "/"
    runner = Runner(sizes, {"BENCH_AMQP_VHOST": vhost})
    started = dt.datetime.now(dt.timezone.utc)
    try:
        for rep in range(1, sizes.runs + 1):
            if "w6" in jobs:
                runner.measure("ceilings", "w6", rep)
            for system in systems:
                for job in jobs:
                    if job == "w6" or (job == "bulk" and system in plan.NO_BULK):
                        continue
                    runner.measure(system, job, rep)
    finally:
        services.close_vhost(vhost)
    return {
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - runner.started, 1),
        "mode": "quick" if options.quick else "full",
        "sizes": sizes.__dict__,
        "systems": systems,
        "jobs": jobs,
        "rabbitmq_vhost": vhost,
        "records": runner.records,
    }


def _terminate(signum: int, frame: object) -> None:
    sys.exit(128 + signum)  # unwinds: the running driver is stopped, the vhost deleted


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    options = parse(argv)
    systems = plan.systems(options.only, options.quick)
    jobs = plan.jobs(options.workloads)
    t0 = time.monotonic()
    setup(systems)
    install_s = time.monotonic() - t0
    systems = check_servers(systems)
    result = execute(options, systems, jobs)
    result["install_s"] = round(install_s, 1)
    result["machine"] = machine()
    result["repo"] = repo_state()
    # Only the environments this run created (bench/.venv-arq exists only when arq ran).
    result["freeze"] = {
        name: envs.freeze(env) for name, env in envs.ENVS.items() if env.python.exists()
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{result['started'].replace(':', '').replace('+0000', 'Z')}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"[bench] results: {path} ({result['duration_s']:.0f}s measuring)", flush=True)
    if not options.no_report:
        report = [str(envs.ENVS["peers"].python), str(envs.BENCH / "report.py"), str(path)]
        subprocess.run([*report, "--docs", str(options.docs)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
