"""Verdict stability: does a study's answer change when every run may train longer?

Runs a study twice, each in its own temporary folder, up to its tables
(``snakemake --until aggregate_runs``): as declared, and with its epoch budget
(``training.epochs``) multiplied by ``--factor`` (2: doubled), same seeds, same
splits; ``--scale patience`` multiplies the plateau protocol's patience instead,
which asks whether the verdicts depend on how long a plateau must last. It
then compares the two ``comparisons.csv`` verdict by verdict on the metrics the
report judges (``report.primary`` and ``report.metrics``) and prints:

- how many verdicts changed in all, and the share (the issue's measure);
- how many flipped among comparisons judged both times (better, worse,
  indistinguishable), and how many changed from or to "undertrained";
- the share of cells whose runs all converged by the protocol (``adequacy.csv``)
  in each run;
- each run's wall time.

A verdict that changes when the same runs train longer is a statement about
training length, not about regularization. ``--training key=value`` overrides
a training setting in both runs, so the old protocol can be measured side by
side (``--training protocol=fixed --training epochs=40 --training
learning_rate=0.001``).

Run from the repository root (about ten minutes on two cores for the default
study)::

    .venv/bin/python benchmarks/bench_stability.py
    .venv/bin/python benchmarks/bench_stability.py --study studies/d_breast_cancer_dropout.yaml
    .venv/bin/python benchmarks/bench_stability.py --datasets iris,wine --factor 5
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from regbench.config import load_study

REPO = Path(__file__).resolve().parents[1]

#: What identifies one comparison in ``comparisons.csv``.
COMPARISON_KEY = ["dataset", "model", "regularizer", "metric"]


def study_config(
    study: Path,
    factor: float,
    overrides: dict[str, Any],
    datasets: list[str] | None,
    scaled: str = "epochs",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The study as declared (with ``overrides``), and with its training setting ``scaled``
    (the epoch budget, or the plateau protocol's patience) times ``factor``."""
    config = yaml.safe_load(study.read_text(encoding="utf-8"))
    config["training"].update(overrides)
    if datasets:
        config["datasets"] = {name: config["datasets"][name] for name in datasets}
    longer = yaml.safe_load(yaml.safe_dump(config))
    declared = load_study(config).config["training"]  # Its defaults filled in.
    longer["training"][scaled] = round(declared[scaled] * factor)
    return config, longer


def run_tables(folder: Path, config: dict[str, Any], cores: int) -> float:
    """Run the study up to its tables in ``folder``; return the wall seconds."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    command = [
        *(sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")),
        *("--directory", str(folder), "--configfile", str(folder / "config.yaml")),
        *("--cores", str(cores), "--until", "aggregate_runs", "--quiet", "all"),
    ]
    env = {k: v for k, v in os.environ.items() if k != "REGBENCH_POOL_SOCKET"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"snakemake failed in {folder}:\n{done.stderr[-5000:]}")
    return time.perf_counter() - started


def judged_metrics(config: dict[str, Any]) -> list[str]:
    """The metrics the report judges, primary first (the study's resolved ``report:``)."""
    report = load_study(config).config["report"]
    return list(dict.fromkeys([report["primary"], *report["metrics"]]))


def compare_verdicts(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, Any]:
    """Verdict changes between two comparisons tables of the same grid."""
    joined = before.merge(after, on=COMPARISON_KEY, suffixes=("_before", "_after"))
    changed = joined[joined["verdict_before"] != joined["verdict_after"]]
    undertrained = "undertrained"
    judged_both = joined[
        (joined["verdict_before"] != undertrained) & (joined["verdict_after"] != undertrained)
    ]
    flipped = judged_both[judged_both["verdict_before"] != judged_both["verdict_after"]]
    return {
        "n": len(joined),
        "changed": changed,
        "judged_both": len(judged_both),
        "flipped": flipped,
        "to_or_from_undertrained": len(changed) - len(flipped),
    }


def converged_share(folder: Path) -> tuple[int, int]:
    """Cells whose runs all converged by the protocol, and all cells."""
    adequacy = pd.read_csv(folder / "results" / "tables" / "adequacy.csv")
    return int(adequacy["converged"].sum()), len(adequacy)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--factor", type=float, default=2.0, help="multiplier of --scale")
    parser.add_argument(
        "--scale",
        choices=("epochs", "patience"),
        default="epochs",
        help="the training setting to multiply: the epoch budget, or the plateau's patience",
    )
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--datasets", help="comma-separated datasets to keep (default: all)")
    parser.add_argument(
        "--training",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a training setting in both runs (YAML value)",
    )
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = parser.parse_args()
    overrides = {
        key: yaml.safe_load(value) for key, value in (o.split("=", 1) for o in args.training)
    }
    datasets = args.datasets.split(",") if args.datasets else None
    config, longer = study_config(args.study, args.factor, overrides, datasets, args.scale)
    metrics = judged_metrics(config)
    with tempfile.TemporaryDirectory(prefix="regbench-stability-") as scratch:
        root = args.keep or Path(scratch)
        walls, tables, cells = [], [], []
        for name, chosen in (("declared", config), ("longer", longer)):
            walls.append(run_tables(root / name, chosen, args.cores))
            table = pd.read_csv(root / name / "results" / "tables" / "comparisons.csv")
            tables.append(table[table["metric"].isin(metrics)])
            cells.append(converged_share(root / name))
    result = compare_verdicts(*tables)
    training = load_study(config).config["training"]
    print(
        f"study {args.study.name}: protocol {training['protocol']}, {args.scale} "
        f"{training[args.scale]} -> {longer['training'][args.scale]}, "
        f"metrics {', '.join(metrics)}"
    )
    for name, wall, (converged, total) in zip(("declared", "longer"), walls, cells, strict=True):
        print(
            f"{name}: {wall:.0f} s wall; {converged} of {total} cells converged "
            f"({converged / total:.0%})"
        )
    changed, flipped = result["changed"], result["flipped"]
    print(f"verdicts changed: {len(changed)} of {result['n']} ({len(changed) / result['n']:.1%})")
    print(
        f"  flipped among the {result['judged_both']} judged both times: {len(flipped)}; "
        f"to or from undertrained: {result['to_or_from_undertrained']}"
    )
    for metric, group in changed.groupby("metric"):
        print(f"  {metric}: {len(group)}")
        for row in group.itertuples(index=False):
            print(
                f"    {row.dataset} · {row.model} {row.regularizer}: {row.verdict_before} "
                f"({row.mean_diff_before:+.4g}) -> {row.verdict_after} ({row.mean_diff_after:+.4g})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
