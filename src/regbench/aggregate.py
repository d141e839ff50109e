"""Collect per-run outputs into tidy tables (no TensorFlow)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from regbench.config import RunKey
from regbench.stats import describe_cells

__all__ = ["RUN_COLUMNS", "SUMMARY_METRICS", "collect_runs", "summarize"]

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


def collect_runs(runs: Iterable[tuple[RunKey, Path]]) -> pd.DataFrame:
    """One row per run from each run's ``metrics.json``; a missing file gives status ``missing``."""
    rows = []
    for key, metrics_path in runs:
        row: dict[str, Any] = {
            "dataset": key.dataset,
            "model": key.model,
            "regularizer": key.regularizer,
            "seed": key.seed,
        }
        if metrics_path.exists():
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
            row["status"] = metrics["status"]
            row.update({column: metrics.get(column) for column in RUN_COLUMNS})
        else:
            row["status"] = "missing"
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*KEY_COLUMNS, "status", *RUN_COLUMNS])
    return table.sort_values(KEY_COLUMNS, ignore_index=True)


def summarize(runs: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Per dataset x model x regularizer and metric: n, mean, std, median and 95% CI."""
    return describe_cells(runs, metrics or SUMMARY_METRICS)


def read_json(path: Path) -> Mapping[str, Any]:
    """Read a JSON file written by an earlier stage."""
    return json.loads(Path(path).read_text(encoding="utf-8"))  # type: ignore[no-any-return]
