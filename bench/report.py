"""Render docs/benchmarks.md and its chart from one results file.

    bench/.venv-peers/bin/python bench/report.py bench/results/<timestamp>.json

run.py calls this at the end of a run; call it yourself to re-render an older result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reporting.aggregate import aggregate
from reporting.chart import draw
from reporting.markdown import render
from reporting.metrics import DASH

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "benchmarks.md")
    options = parser.parse_args(argv)
    result = json.loads(options.results.read_text())
    figures = aggregate(result["records"])
    options.docs.parent.mkdir(parents=True, exist_ok=True)
    chart = options.docs.with_suffix(".png")
    runs = result["sizes"]["runs"]
    title = (
        f"celeriac vs peers, {result['started'][:10]}, {result['machine'].get('cores', 2)} cores: "
        f"median of {runs} run(s), whiskers min{DASH}max"
    )
    draw(figures, title, chart)
    options.docs.write_text(render(result, figures, chart.name))
    print(f"[bench] wrote {options.docs} and {chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
