"""Collect per-run outputs into tidy tables (no TensorFlow)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from regbench.config import RunKey
from regbench.stats import compare_to_baseline, describe_cells, rank_regularizers

__all__ = [
    "COMPARED_METRICS",
    "RUN_COLUMNS",
    "SUMMARY_METRICS",
    "RunFiles",
    "collect_runs",
    "compare",
    "rank",
    "summarize",
]

KEY_COLUMNS = ["dataset", "model", "regularizer", "seed"]

#: Metric columns of ``runs.csv``, in order, after the key and status columns.
RUN_COLUMNS = [
    "test_accuracy",
    "test_loss",
    "test_f1_macro",
    "test_roc_auc",
    "train_eval_accuracy",
    "train_eval_loss",
    "gap_accuracy",
    "gap_loss",
    "train_accuracy",
    "train_loss",
    "val_accuracy",
    "val_loss",
    "best_val_accuracy",
    "best_val_loss",
    "best_epoch",
    "epochs_run",
    "diverged_epoch",
    "weight_l1",
    "weight_l2",
    "weight_sparsity",
    "n_params",
    "train_seconds",
    "device",
]

#: Columns from Snakemake's benchmark of each training job: wall seconds and peak memory.
JOB_COLUMNS = ["job_seconds", "max_rss_mb"]

#: The metrics ``summary.csv`` describes per cell.
SUMMARY_METRICS = [
    "test_accuracy",
    "test_loss",
    "test_f1_macro",
    "test_roc_auc",
    "gap_accuracy",
    "gap_loss",
    "best_val_loss",
    "epochs_run",
    "weight_sparsity",
    "train_seconds",
]


#: The metrics compared with the baseline and ranked across datasets.
COMPARED_METRICS = ["test_accuracy", "test_loss", "test_f1_macro", "gap_accuracy"]


@dataclass(frozen=True)
class RunFiles:
    """Where one run's outputs are: its metrics and Snakemake's benchmark of its job."""

    key: RunKey
    metrics: Path
    benchmark: Path | None = None


def collect_runs(runs: Iterable[RunFiles]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per run from its ``metrics.json``.

    A run without one is ``failed`` (with its ``error``) where its job left an
    ``error.txt``, and ``missing`` otherwise.

    Also returns each dataset/model/regularizer's architecture, taken from its
    first successful run (the architecture does not depend on the seed).
    """
    rows = []
    architectures: dict[str, Any] = {}
    for run in runs:
        key = run.key
        row: dict[str, Any] = {
            "dataset": key.dataset,
            "model": key.model,
            "regularizer": key.regularizer,
            "seed": key.seed,
        }
        if run.metrics.exists():
            metrics = json.loads(run.metrics.read_text(encoding="utf-8"))
            row["status"] = metrics["status"]
            row.update({column: metrics.get(column) for column in RUN_COLUMNS})
            cell = f"{key.dataset}/{key.model}/{key.regularizer}"
            architectures.setdefault(cell, metrics.get("architecture"))
        elif (error := run.metrics.with_name("error.txt")).exists():
            row["status"] = "failed"
            row["error"] = error.read_text(encoding="utf-8").strip()
        else:
            row["status"] = "missing"
        if run.benchmark is not None and run.benchmark.exists():
            job = pd.read_csv(run.benchmark, sep="\t")
            row["job_seconds"] = float(job["s"].iloc[0])
            row["max_rss_mb"] = float(job["max_rss"].iloc[0])
        rows.append(row)
    columns = [*KEY_COLUMNS, "status", *RUN_COLUMNS, *JOB_COLUMNS, "error"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(KEY_COLUMNS, ignore_index=True), architectures


def summarize(runs: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Per dataset x model x regularizer and metric: n, mean, std, median and 95% CI."""
    return describe_cells(runs, metrics or SUMMARY_METRICS)


def compare(runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Paired comparisons of every regularizer with the baseline (``comparisons.csv``)."""
    return compare_to_baseline(runs, baseline, COMPARED_METRICS)


def rank(runs: pd.DataFrame) -> pd.DataFrame:
    """Average ranks across datasets and the Friedman test per model and metric (rankings.csv)."""
    frames = []
    for model in sorted(runs["model"].unique()):
        for metric in COMPARED_METRICS:
            result = rank_regularizers(runs, metric, model)
            frames.append(
                result.ranks.assign(
                    model=model,
                    metric=metric,
                    n_datasets=result.n_datasets,
                    friedman_statistic=result.statistic,
                    friedman_p=result.p_value,
                    critical_difference=result.critical_difference,
                    note=result.note or "",
                )
            )
    columns = [
        "model",
        "metric",
        "regularizer",
        "average_rank",
        "n_datasets",
        "friedman_statistic",
        "friedman_p",
        "critical_difference",
        "note",
    ]
    return (
        pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    )
