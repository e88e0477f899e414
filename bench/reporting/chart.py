"""The chart a reader looks at first: one small panel per workload, celeriac highlighted."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from reporting.aggregate import Figures, Stat
from reporting.metrics import CHART, Metric

CELERIAC = "celeriac-sqlite"
HIGHLIGHT = "#d95f02"
VARIANT = "#f4a261"  # celeriac's other configurations
PEER = "#7f8c9a"
#: Ceilings drawn as dashed lines: (panel metric, W6 metric, label).
CEILINGS = [
    ("w1_rate", "w6_redis_py_lpush", "redis-py LPUSH loop"),
    ("w2_rate", "w6_redis_py_rpop", "redis-py RPOP loop"),
]


def draw(figures: Figures, title: str, path: Path) -> None:
    panels = [m for m in CHART if any(m.key in s for s in figures.stats.values())]
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    systems = len(figures.stats)
    fig, axes = plt.subplots(rows, cols, figsize=(13, 0.27 * systems * rows + 1.6 * rows))
    flat = list(axes.flat) if hasattr(axes, "flat") else [axes]
    for ax, metric in zip(flat, panels, strict=False):
        _panel(ax, metric, figures)
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _panel(ax: Axes, metric: Metric, figures: Figures) -> None:
    rows = [(s, st[metric.key]) for s, st in figures.stats.items() if metric.key in st]
    rows.sort(key=lambda r: r[1].median, reverse=not metric.higher_is_better)
    names = [name for name, _ in rows]
    medians = [st.median for _, st in rows]
    errors = [[st.median - st.lo for _, st in rows], [st.hi - st.median for _, st in rows]]
    colors = [_color(name) for name in names]
    ax.barh(names, medians, xerr=errors, color=colors, ecolor="#333333", capsize=2, height=0.7)
    arrow = "higher is better →" if metric.higher_is_better else "← lower is better"
    ax.set_title(f"{metric.title}\n{metric.unit}, {arrow}", fontsize=9.5, loc="left")
    ax.tick_params(axis="y", labelsize=8.5)
    ax.tick_params(axis="x", labelsize=8)
    for label in ax.get_yticklabels():
        if label.get_text().startswith("celeriac"):
            label.set_fontweight("bold")
    if _spread(rows) > 50:
        ax.set_xscale("log")
    _labels(ax, rows, metric)
    _ceilings(ax, metric, figures)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)


def _color(name: str) -> str:
    if name == CELERIAC:
        return HIGHLIGHT
    return VARIANT if name.startswith("celeriac") else PEER


def _spread(rows: list[tuple[str, Stat]]) -> float:
    values = [st.median for _, st in rows if st.median > 0]
    return max(values) / min(values) if values else 1.0


def _labels(ax: Axes, rows: list[tuple[str, Stat]], metric: Metric) -> None:
    for y, (_, st) in enumerate(rows):
        ax.annotate(
            f" {metric.fmt(st.median)}",
            (st.hi, y),
            va="center",
            fontsize=7.5,
            xytext=(2, 0),
            textcoords="offset points",
        )
    left, right = ax.get_xlim()
    ax.set_xlim(left, right * (3.0 if ax.get_xscale() == "log" else 1.18))


def _ceilings(ax: Axes, metric: Metric, figures: Figures) -> None:
    w6 = figures.stats.get("ceilings", {})
    for panel, key, label in CEILINGS:
        if panel == metric.key and key in w6:
            value = w6[key].median
            ax.axvline(value, color="#1b9e77", linestyle="--", linewidth=1)
            ax.annotate(
                f"ceiling: {label}, {value:,.0f}/s",
                (value, 0.0),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                color="#1b9e77",
                va="bottom",
                ha="right",
                xytext=(-3, 3),
                textcoords="offset points",
            )
