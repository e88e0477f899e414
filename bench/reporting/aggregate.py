"""From raw attempts to one figure per (system, metric): median, min and max of accepted runs."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

#: Derived metrics: total CPU per task is the worker's plus the broker server's.
SUMS = {
    "w1_cpu_us": ("w1_client_cpu_us", "w1_broker_cpu_us"),
    "w2_cpu_us": ("w2_worker_cpu_us", "w2_broker_cpu_us"),
    "w2r_cpu_us": ("w2r_worker_cpu_us", "w2r_broker_cpu_us"),
}


@dataclass(frozen=True)
class Stat:
    median: float
    lo: float
    hi: float
    runs: int
    disturbed: int  # how many of the runs were kept although disturbed


@dataclass
class Figures:
    """Everything the report needs, per system."""

    stats: dict[str, dict[str, Stat]]
    texts: dict[str, dict[str, str]]
    failures: list[dict[str, Any]]
    attempts: int
    repeated: int
    kept_disturbed: int


def aggregate(records: list[dict[str, Any]]) -> Figures:
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    disturbed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    texts: dict[str, dict[str, str]] = defaultdict(dict)
    failures = []
    for record in records:
        if not record.get("accepted"):
            continue
        system = record["system"]
        if not record.get("ok"):
            failures.append(record)
            continue
        if record.get("version"):
            texts[system]["version"] = record["version"]
        for key, value in _with_sums(record.get("metrics", {})).items():
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, (int, float)):
                values[system][key].append(float(value))
                disturbed[system][key] += bool(record.get("disturbed"))
            else:
                texts[system][key] = str(value)
    stats = {
        system: {key: _stat(vals, disturbed[system][key]) for key, vals in metrics.items()}
        for system, metrics in values.items()
    }
    repeated = sum(1 for r in records if r.get("attempt", 1) > 1)
    kept = sum(1 for r in records if r.get("accepted") and r.get("disturbed"))
    return Figures(stats, dict(texts), failures, len(records), repeated, kept)


def _with_sums(metrics: dict[str, Any]) -> dict[str, Any]:
    out = dict(metrics)
    for name, parts in SUMS.items():
        if all(isinstance(metrics.get(p), (int, float)) for p in parts):
            out[name] = sum(metrics[p] for p in parts)
    return out


def _stat(values: list[float], disturbed: int) -> Stat:
    return Stat(statistics.median(values), min(values), max(values), len(values), disturbed)
