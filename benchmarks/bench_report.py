"""Rendering cost at scale: aggregate + figures + HTML + PDF for 100, 1,000 and 5,000 runs.

Runs are fabricated (no training) and written where the pipeline writes them;
the real aggregation, figure and report functions then run on them. Each
size grows the number of datasets (10 regularizers x 10 seeds each), so the
report grows with it. Prints seconds per stage and the cost per run, whose
flatness across sizes shows the growth is linear.

    python benchmarks/bench_report.py [--sizes 100 1000 5000] [--against main]

``--against REF`` measures the same sizes with the code of git revision
``REF`` too, each side with its own copy of this script, the two taking turns
``--repeat`` times per size, and prints each side's least CPU time per stage
and this checkout's over REF's (below 1 = faster). CPU seconds of the
benchmark's own process, not wall time: every stage runs in that one process,
and on a shared machine wall time mostly measures the other work.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fabricate import (  # noqa: E402 (tests/ joins sys.path first)
    aggregate_fabricated,
    fabricate_study,
    study_config,
    table_paths,
)

from regbench.config import canonical_json  # noqa: E402 (after fabricate, as isort places it)
from regbench.jobs import figure_settings, plot_figures, render_report  # noqa: E402 (likewise)


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
            str(tables / "comparisons.csv"),
            str(tables / "rankings.csv"),
            figure_settings(study.config),
            str(figures),
            root=str(root),
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


COLUMNS = ("aggregate", "figures", "html+pdf", "total")


def row(runs: int, m: dict[str, float], first: float | None) -> str:
    """One line of the table: seconds per stage, cost per run and PDF size."""
    per_run = 1000 * m["total"] / runs
    growth = f"   (cost per run {per_run / first:.2f}x the smallest size's)" if first else ""
    return (
        f"{runs:>6} {m['aggregate']:>10.1f} {m['figures']:>9.1f} {m['html+pdf']:>9.1f} "
        f"{m['total']:>8.1f} {per_run:>7.1f} {m['pdf_mb']:>7.2f}{growth}"
    )


def measure_checkout(checkout: Path, runs: int) -> dict[str, float]:
    """One size measured by ``checkout``'s own benchmark and code, in a fresh process.

    Its clock is swapped for the process's CPU time, so the stages it
    prints are CPU seconds.
    """
    path = os.pathsep.join(str(checkout / part) for part in ("src", "tests"))
    script = checkout / "benchmarks/bench_report.py"
    on_cpu_time = (
        "import runpy, time; time.perf_counter = time.process_time; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", on_cpu_time, "--sizes", str(runs)],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(
        ln for ln in result.stdout.splitlines() if ln.split() and ln.split()[0] == str(runs)
    )
    values = [float(v) for v in line.split()[1:7]]
    return dict(zip([*COLUMNS, "ms/run", "pdf_mb"], values, strict=True))


def compare(sizes: list[int], ref: str, repeat: int) -> None:
    """Each size with this checkout and with revision ``ref``, taking turns ``repeat`` times."""
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(other)], input=archive, check=True)
        print(f"CPU seconds, least of {repeat} turns per side")
        print(f"{'runs':>6} {'side':>8} " + " ".join(f"{c:>9}" for c in COLUMNS) + "   pdf MB")
        for runs in sizes:
            sides = [("this", REPO), (ref, other)]
            measured: dict[str, dict[str, float]] = {}
            for turn in range(repeat):
                for name, checkout in sides if turn % 2 == 0 else sides[::-1]:
                    m = measure_checkout(checkout, runs)
                    fastest = measured.setdefault(name, m)
                    measured[name] = {k: min(v, fastest[k]) for k, v in m.items()}
            for name, m in measured.items():
                cells = " ".join(f"{m[c]:>9.1f}" for c in COLUMNS)
                print(f"{runs:>6} {name[:8]:>8} {cells}   {m['pdf_mb']:.2f}")
            ratios = " ".join(f"{measured['this'][c] / measured[ref][c]:>8.2f}x" for c in COLUMNS)
            print(f"{runs:>6} {'ratio':>8} {ratios}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--against", metavar="REF", help="git revision to compare with")
    parser.add_argument("--repeat", type=int, default=3, help="turns per side with --against")
    args = parser.parse_args()
    if args.against:
        compare(args.sizes, args.against, args.repeat)
        return
    print(
        f"{'runs':>6} {'aggregate':>10} {'figures':>9} {'html+pdf':>9} {'total':>8} "
        f"{'ms/run':>7} {'pdf MB':>7}"
    )
    first = None
    for runs in args.sizes:
        m = measure(runs)
        first = first or 1000 * m["total"] / runs
        print(row(runs, m, first), flush=True)


if __name__ == "__main__":
    main()
