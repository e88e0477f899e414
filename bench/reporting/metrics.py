"""The metrics the report compares, how to print them, and which way is better."""

from __future__ import annotations

from dataclasses import dataclass

DASH = "\u2013"  # en dash, for ranges
TIMES = "\u00d7"  # multiplication sign, for ratios


@dataclass(frozen=True)
class Metric:
    key: str
    title: str  # for chart panels and the list of rows where celeriac is not ahead
    unit: str
    higher_is_better: bool
    short: str = ""  # for the summary table's header

    def fmt(self, value: float) -> str:
        if self.unit in ("tasks/s", "ops/s", "calls/s"):
            return f"{value:,.0f}"
        if self.unit in ("MiB", "µs/task"):
            return f"{value:,.0f}"
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}" if value >= 1 else f"{value:.3f}"

    def better(self, a: float, b: float) -> bool:
        """Is ``a`` strictly better than ``b``?"""
        return a > b if self.higher_is_better else a < b


W1 = Metric("w1_rate", "W1 enqueue, one by one", "tasks/s", True, "W1 enqueue/s ↑")
W1B = Metric("w1b_rate", "W1 enqueue, bulk API", "tasks/s", True, "W1 bulk/s ↑")
W2 = Metric("w2_rate", "W2 drain, no results", "tasks/s", True, "W2 tasks/s ↑")
W2R = Metric("w2r_rate", "W2r drain, results stored", "tasks/s", True, "W2r tasks/s ↑")
W2_CPU = Metric(
    "w2_cpu_us", "W2 CPU per task (worker + broker)", "µs/task", False, "W2 CPU µs/task ↓"
)
W3_P50 = Metric("w3_p50_ms", "W3 round trip p50", "ms", False, "W3 p50 ms ↓")
W3_P99 = Metric("w3_p99_ms", "W3 round trip p99", "ms", False, "W3 p99 ms ↓")
W4_START = Metric("w4_startup_s", "W4 start-up to first task", "s", False, "W4 start-up s ↓")
W4_RSS = Metric("w4_rss_mib", "W4 idle RSS (worker tree)", "MiB", False, "W4 RSS MiB ↓")
W5 = Metric(
    "w5_rate", "W5 sleep(0.1) tasks, I/O pool (ideal 1,000)", "tasks/s", True, "W5 tasks/s ↑"
)

HEADLINE = [W1, W1B, W2, W2R, W2_CPU, W3_P50, W3_P99, W4_START, W4_RSS, W5]
CHART = [W1, W2, W2R, W2_CPU, W3_P50, W4_START, W4_RSS, W5]
