"""Collect per-run outputs into tidy tables (no TensorFlow)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from regbench import sweeps
from regbench.config import ERROR_FILE, RunKey
from regbench.stats import (
    CONVERGED,
    compare_to_baseline,
    compare_to_references,
    describe_cells,
    rank_regularizers,
    training_adequacy,
)

__all__ = [
    "COMPARED_METRICS",
    "HISTORY_COLUMNS",
    "RANKING_TEST_COLUMNS",
    "RUN_COLUMNS",
    "SUMMARY_METRICS",
    "TUNED_METRICS",
    "RunFiles",
    "adequacy",
    "check_references",
    "collect_histories",
    "collect_runs",
    "compare",
    "compared_metrics",
    "rank",
    "summarize",
    "sweep_tables",
    "test_set_sizes",
]

KEY_COLUMNS = ["dataset", "model", "regularizer", "seed"]

#: Metric columns of ``runs.csv``, in order, after the key and status columns.
RUN_COLUMNS = [
    "test_accuracy",
    "test_loss",
    # Data loss + penalties, what Keras's model.evaluate prints; NaN for runs made before it.
    "test_objective",
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
    "tested_epoch",
    "epochs_run",
    # The rule that ended the run before its budget ("plateau", "early_stopping"), if any.
    "stopped_by",
    "diverged_epoch",
    "weight_l1",
    "weight_l2",
    "weight_sparsity",
    "n_params",
    "train_seconds",
    "device",
    "host",
    "peak_rss_mb",
]

#: Columns from Snakemake's benchmark of each training job: wall seconds and peak memory.
JOB_COLUMNS = ["job_seconds", "max_rss_mb"]

#: The metrics ``summary.csv`` describes per cell.
SUMMARY_METRICS = [
    "test_accuracy",
    "test_loss",
    "test_objective",
    "test_f1_macro",
    "test_roc_auc",
    "gap_accuracy",
    "gap_loss",
    "best_val_loss",
    "epochs_run",
    "best_epoch",
    "weight_sparsity",
    "train_seconds",
]


#: The metrics always compared with the baseline and ranked across datasets; a study's
#: ``report.metrics`` adds to them (:func:`compared_metrics`). Losses are the data loss.
COMPARED_METRICS = ["test_accuracy", "test_loss", "test_f1_macro", "gap_accuracy"]

#: The test results ``tuned.csv`` carries for each chosen variant, before the compared metrics.
TUNED_METRICS = [
    "test_accuracy",
    "test_loss",
    "test_objective",
    "test_f1_macro",
    "test_roc_auc",
    "gap_accuracy",
    "gap_loss",
]

#: The columns of a run's ``history.csv`` that training adequacy reads: the data losses.
HISTORY_COLUMNS = ["loss", "val_loss"]

#: The columns of ``ranking_tests.csv``: one row per model and metric.
RANKING_TEST_COLUMNS = [
    "model",
    "metric",
    "n_datasets",
    "n_regularizers",
    "alpha",
    "friedman_statistic",
    "friedman_p",
    "iman_davenport_f",
    "iman_davenport_df1",
    "iman_davenport_df2",
    "iman_davenport_p",
    "critical_difference",
    "max_rank_difference",
    "cd_reachable",
    "datasets_needed",
    "ranked",
    "note",
]


# The test columns rankings.csv repeats on each regularizer's row, as it always has.
_REPEATED = (
    "model",
    "metric",
    "n_datasets",
    "friedman_statistic",
    "friedman_p",
    "critical_difference",
    "note",
)


@dataclass(frozen=True)
class RunFiles:
    """Where one run's outputs are: metrics, history and Snakemake's benchmark of its job."""

    key: RunKey
    metrics: Path
    benchmark: Path | None = None
    history: Path | None = None


def collect_runs(runs: Iterable[RunFiles]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per run from its ``metrics.json``.

    A run without one is ``failed`` (with its ``error``) where its job left an
    ``error.txt``, and ``missing`` otherwise. A metric the run's file lacks (a
    run made before the metric existed) is NaN.

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
            architectures.setdefault(key.cell.path, metrics.get("architecture"))
        elif (error := run.metrics.with_name(ERROR_FILE)).exists():
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


def collect_histories(
    runs: Iterable[RunFiles],
) -> dict[tuple[str, str, str, int], pd.DataFrame]:
    """Each run's data-loss history (:data:`HISTORY_COLUMNS`), for runs that left one."""
    histories = {}
    for run in runs:
        if run.history is not None and run.history.exists():
            key = (run.key.dataset, run.key.model, run.key.regularizer, run.key.seed)
            histories[key] = pd.read_csv(run.history, usecols=HISTORY_COLUMNS)
    return histories


def test_set_sizes(cards: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Each dataset's number of test examples, from its data card (``split_sizes.test``)."""
    return {str(card["name"]): int(card["split_sizes"]["test"]) for card in cards}


def compared_metrics(report_metrics: Sequence[str] = ()) -> list[str]:
    """The metrics compared and ranked: :data:`COMPARED_METRICS`, then the report's others."""
    return list(dict.fromkeys([*COMPARED_METRICS, *report_metrics]))


def summarize(
    runs: pd.DataFrame, metrics: Sequence[str] = (), epochs: int | None = None
) -> pd.DataFrame:
    """Per cell and metric: n, mean, std, median, CI of the mean, prediction interval of a run.

    Describes :data:`SUMMARY_METRICS` and then ``metrics``; intervals of
    epoch counts are bounded by ``epochs`` (``training.epochs``).
    """
    described = list(dict.fromkeys([*SUMMARY_METRICS, *metrics]))
    return describe_cells(runs, described, epochs=epochs)


def compare(
    runs: pd.DataFrame,
    baseline: str,
    metrics: Sequence[str] = COMPARED_METRICS,
    test_sizes: Mapping[str, int] | None = None,
    smallest_effects: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Paired comparisons of every regularizer with the baseline (``comparisons.csv``).

    ``smallest_effects`` is the study's ``report.smallest_effect`` (metric -> value).
    """
    return compare_to_baseline(
        runs, baseline, metrics, test_sizes=test_sizes, smallest_effects=smallest_effects
    )


def sweep_tables(
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    settings: Mapping[str, Any],
    metrics: Sequence[str],
    test_sizes: Mapping[str, int],
) -> dict[str, pd.DataFrame]:
    """The sweep families' tables: ``dose_response``, ``tuned`` and ``tuned_comparisons``.

    ``settings`` is ``Study.aggregation_settings()``: its families, baseline
    and tuning criterion; ``metrics`` are the compared metrics. Each table
    has its columns and no rows in a study without sweeps.
    """
    families, baseline = settings["families"], settings["baseline"]
    selections = sweeps.select_variants(runs, families, settings["tuning"]["criterion"])
    carried = [*TUNED_METRICS, *metrics, *([CONVERGED] if CONVERGED in runs.columns else [])]
    tuned = sweeps.tuned_runs(runs, selections, list(dict.fromkeys(carried)))
    return {
        "dose_response": sweeps.dose_response(runs, summary, families, baseline, metrics),
        "tuned": tuned,
        "tuned_comparisons": sweeps.compare_tuned(
            runs, tuned, baseline, metrics, test_sizes, settings["report"].get("smallest_effect")
        ),
    }


def rank(
    runs: pd.DataFrame, metrics: Sequence[str] = COMPARED_METRICS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Average ranks across datasets (``rankings.csv``) and their tests (``ranking_tests.csv``).

    ``rankings.csv`` has one row per model, metric and regularizer, only
    where a ranking exists (at least 2 datasets); it repeats its model and
    metric's test columns on each row. ``ranking_tests.csv`` has one row per
    model and metric always, with ``ranked`` and, when there is no ranking,
    the reason in ``note``.
    """
    rankings, tests = [], []
    for model in sorted(runs["model"].unique()):
        for metric in metrics:
            result = rank_regularizers(runs, metric, model)
            k, n = result.n_regularizers, result.n_datasets
            # Degrees of freedom only where the F test was computed: 1 dataset would give 0.
            tested = not math.isnan(result.iman_davenport_f)
            tests.append(
                {
                    "model": model,
                    "metric": metric,
                    "n_datasets": n,
                    "n_regularizers": k,
                    "alpha": result.alpha,
                    "friedman_statistic": result.statistic,
                    "friedman_p": result.p_value,
                    "iman_davenport_f": result.iman_davenport_f,
                    "iman_davenport_df1": k - 1 if tested else math.nan,
                    "iman_davenport_df2": (k - 1) * (n - 1) if tested else math.nan,
                    "iman_davenport_p": result.iman_davenport_p,
                    "critical_difference": result.critical_difference,
                    "max_rank_difference": result.max_rank_difference,
                    "cd_reachable": result.cd_reachable,
                    "datasets_needed": result.datasets_needed,
                    "ranked": not result.ranks.empty,
                    "note": result.note or "",
                }
            )
            if not result.ranks.empty:
                rankings.append(result.ranks.assign(**{c: tests[-1][c] for c in _REPEATED}))
    columns = ["model", "metric", "regularizer", "average_rank", *_REPEATED[2:]]
    table = pd.concat(rankings, ignore_index=True)[columns] if rankings else None
    return (
        pd.DataFrame(columns=columns) if table is None else table,
        pd.DataFrame(tests, columns=RANKING_TEST_COLUMNS),
    )


def adequacy(
    runs: pd.DataFrame,
    histories: Mapping[tuple[str, str, str, int], pd.DataFrame],
    epochs: int,
    protocol: str,
) -> pd.DataFrame:
    """Per cell: how many of its runs converged by the training protocol (``adequacy.csv``)."""
    return training_adequacy(runs, histories, epochs, protocol)


def check_references(
    summary: pd.DataFrame, references: Sequence[Mapping[str, Any]]
) -> pd.DataFrame:
    """Each published value against its cell's prediction interval (``references.csv``)."""
    return compare_to_references(summary, references)
