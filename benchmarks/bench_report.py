"""Rendering cost at scale: aggregate + figures + HTML + PDF for 100, 1,000 and 5,000 runs.

Runs are fabricated (no training) and written where the pipeline writes them;
the real aggregation, figure and report functions then run on them. Each
size grows the number of datasets (10 regularizers x 10 seeds each), so the
report grows with it. Prints seconds per stage and the cost per run, whose
flatness across sizes shows the growth is linear.

    python benchmarks/bench_report.py [--sizes 100 1000 5000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fabricate import aggregate_fabricated, fabricate_study, study_config, table_paths  # noqa: E402

from regbench.config import canonical_json  # noqa: E402
from regbench.jobs import plot_figures, render_report  # noqa: E402


def measure(runs: int) -> dict[str, float]:
    """Seconds per stage for a study of ``runs`` fabricated runs."""
    datasets = max(1, runs // 100)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        study = fabricate_study(root, study_config(datasets=datasets, regularizers=10, seeds=10))
        figures = root / "results/figures"
        (root / "reports").mkdir()
        t = {"start": time.perf_counter()}
        tables = aggregate_fabricated(root, study)
        t["aggregate"] = time.perf_counter()
        plot_figures(
            str(tables / "runs.csv"),
            str(tables / "summary.csv"),
            str(tables / "rankings.csv"),
            str(root / "results/runs"),
            study.baseline,
            str(figures),
        )
        t["figures"] = time.perf_counter()
        render_report(
            canonical_json(study.config),
            "[]",
            table_paths(tables),
            [f"{root}/results/data/{d}/card.json" for d in study.datasets],
            str(figures),
            str(REPO / "templates"),
            str(root / "reports/report.html"),
            str(root / "reports/report.pdf"),
        )
        t["report"] = time.perf_counter()
        size_mb = (root / "reports/report.pdf").stat().st_size / 1e6
    return {
        "aggregate": t["aggregate"] - t["start"],
        "figures": t["figures"] - t["aggregate"],
        "html+pdf": t["report"] - t["figures"],
        "total": t["report"] - t["start"],
        "pdf_mb": size_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    sizes = parser.parse_args().sizes
    print(
        f"{'runs':>6} {'aggregate':>10} {'figures':>9} {'html+pdf':>9} {'total':>8} "
        f"{'ms/run':>7} {'pdf MB':>7}"
    )
    first = None
    for runs in sizes:
        m = measure(runs)
        per_run = 1000 * m["total"] / runs
        first = first or per_run
        print(
            f"{runs:>6} {m['aggregate']:>10.1f} {m['figures']:>9.1f} {m['html+pdf']:>9.1f} "
            f"{m['total']:>8.1f} {per_run:>7.1f} {m['pdf_mb']:>7.2f}   "
            f"(cost per run {per_run / first:.2f}x the smallest size's)",
            flush=True,
        )


if __name__ == "__main__":
    main()
