"""Fabricated run outputs, written exactly where and how the pipeline writes them.

Used to test and benchmark aggregation and reporting without training
anything: the numbers are drawn from a seeded generator, and one
regularizer can be given a real effect.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regbench.config import Study, load_study

__all__ = ["aggregate_fabricated", "fabricate_study", "render_fabricated", "table_paths"]


def study_config(
    datasets: int,
    regularizers: int,
    seeds: int,
    title: str = "Fabricated study",
    models: int = 1,
) -> dict[str, Any]:
    """A valid raw config of synthetic ``datasets``, ``models`` MLPs and ``regularizers``."""
    return {
        "study": {"name": "fabricated", "title": title, "description": "Fabricated results."},
        "datasets": {
            f"data{i}": {"source": "synthetic", "synthetic": {"random_state": i}}
            for i in range(datasets)
        },
        "models": {
            "mlp" if i == 0 else f"mlp{i}": {"type": "mlp", "units": [8]} for i in range(models)
        },
        "regularizers": {
            "none": {},
            **{f"l2_{i}": {"kernel": {"l2": 10.0 ** -(i + 2)}} for i in range(regularizers - 1)},
        },
        "seeds": list(range(seeds)),
        "training": {"epochs": 20},
        "baseline": "none",
    }


def fabricate_study(
    root: Path,
    raw: dict[str, Any],
    *,
    effect: float = 0.05,
    diverged: int = 0,
    unconverged: Collection[tuple[str, str]] = (),
) -> Study:
    """Write metrics.json, history.csv, weights.npz, benchmarks and cards for every run.

    The first non-baseline regularizer gets ``effect`` more test accuracy than
    the baseline on every seed; the others differ by noise alone. The last
    ``diverged`` runs of the grid are marked diverged. Runs converge (their
    losses level off, their best epoch halfway), except those of the
    ``unconverged`` (dataset, regularizer) cells, whose losses still fall at the
    last epoch, their best.
    """
    study = load_study(raw)
    rng = np.random.default_rng(0)
    epochs = raw["training"]["epochs"]
    regularizers = list(study.config["regularizers"])
    for name in study.datasets:
        card_dir = root / "results" / "data" / name
        card_dir.mkdir(parents=True, exist_ok=True)
        card = {
            "name": name,
            "description": raw["datasets"][name].get("description", ""),
            "source": "scikit-learn make_classification()",
            "kind": "tabular",
            "rows": 1000,
            "features": 20,
            "input_shape": [20],
            "classes": 2,
            "class_names": ["0", "1"],
            "class_balance": {"0": 0.5, "1": 0.5},
            "split_sizes": {"train": 640, "validation": 160, "test": 200},
            "split": {"test": 0.2, "validation": 0.2},
            "scaling": "standard",
        }
        (card_dir / "card.json").write_text(json.dumps(card), encoding="utf-8")
    for index, key in enumerate(study.runs):
        run_dir = root / "results" / "runs" / key.path
        run_dir.mkdir(parents=True, exist_ok=True)
        shift = effect if regularizers.index(key.regularizer) == 1 else 0.0
        seed_noise = np.random.default_rng(key.seed).normal(0, 0.01)  # Shared by a seed's runs.
        accuracy = float(np.clip(0.8 + shift + seed_noise + rng.normal(0, 0.01), 0, 1))
        status = "diverged" if index >= len(study.runs) - diverged else "ok"
        still_falling = (key.dataset, key.regularizer) in unconverged
        if still_falling:
            level = np.linspace(0.0, 1.0, epochs)
        else:
            level = 1.0 - np.exp(-np.arange(epochs) / 2.0)  # Flat long before the end.
        curve = 0.6 + (accuracy - 0.6) * level
        history = pd.DataFrame(
            {
                "epoch": np.arange(1, epochs + 1),
                "loss": 0.7 - 0.4 * level,
                "accuracy": curve + 0.02,
                "val_loss": 0.7 - 0.35 * level,
                "val_accuracy": curve,
            }
        )
        history.to_csv(run_dir / "history.csv", index=False)
        np.savez_compressed(run_dir / "weights.npz", hidden0_dense=rng.normal(0, 0.3, (20, 8)))
        metrics: dict[str, Any] = {
            "status": status,
            "diverged_epoch": 3 if status == "diverged" else None,
            "device": "CPU",
            "epochs_run": epochs,
            "best_epoch": epochs if still_falling else epochs // 2,
            "train_seconds": 1.0,
            "n_params": 177,
            "architecture": [
                {"name": "features", "type": "InputLayer", "output_shape": [None, 20], "params": 0},
                {
                    "name": "hidden0_dense",
                    "type": "Dense",
                    "output_shape": [None, 8],
                    "params": 168,
                },
                {"name": "output", "type": "Dense", "output_shape": [None, 1], "params": 9},
            ],
        }
        if status == "ok":
            metrics.update(
                test_accuracy=accuracy,
                test_loss=1 - accuracy,
                test_f1_macro=accuracy - 0.01,
                test_roc_auc=min(1.0, accuracy + 0.05),
                train_eval_accuracy=accuracy + 0.03,
                train_eval_loss=0.25,
                gap_accuracy=0.03,
                gap_loss=0.1,
                train_accuracy=accuracy + 0.02,
                train_loss=0.3,
                val_accuracy=accuracy,
                val_loss=0.35,
                best_val_accuracy=accuracy,
                best_val_loss=0.35,
                weight_l1=40.0,
                weight_l2=3.0,
                weight_sparsity=0.01,
            )
        (run_dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
        bench = root / key.benchmark
        bench.parent.mkdir(parents=True, exist_ok=True)
        bench.write_text("s\th:m:s\tmax_rss\n4.2\t0:00:04\t512.0\n", encoding="utf-8")
    return study


def aggregate_fabricated(root: Path, study: Study) -> Path:
    """Run the real aggregation step on fabricated outputs; return the tables' folder."""
    from regbench.config import canonical_json
    from regbench.jobs import AGGREGATE_OUTPUTS, aggregate_runs

    tables = root / "results" / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    aggregate_runs(
        [key.path for key in study.runs],
        canonical_json(study.aggregation_settings()),
        [str(root / "results" / "data" / name / "card.json") for name in study.datasets],
        {
            name: str(tables / (f"{name}.json" if name == "architectures" else f"{name}.csv"))
            for name in AGGREGATE_OUTPUTS
        },
        root=str(root),
    )
    return tables


def table_paths(tables: Path) -> dict[str, str]:
    """Where the aggregation step wrote each table the report reads."""
    from regbench.report import REPORT_TABLES

    return {
        name: str(tables / (f"{name}.json" if name == "architectures" else f"{name}.csv"))
        for name in REPORT_TABLES
    }


def render_fabricated(root: Path, study: Study, template_dir: Path) -> tuple[Path, Path]:
    """Run the real aggregate, figure and report steps on fabricated outputs."""
    from regbench.config import canonical_json
    from regbench.jobs import figure_settings, plot_figures, render_report

    tables = aggregate_fabricated(root, study)
    plot_figures(
        str(tables / "runs.csv"),
        str(tables / "comparisons.csv"),
        str(tables / "rankings.csv"),
        figure_settings(study.config),
        str(root / "results" / "figures"),
        root=str(root),
        dose_response_csv=str(tables / "dose_response.csv"),
    )
    reports = root / "reports"
    reports.mkdir(exist_ok=True)
    html, pdf = reports / "report.html", reports / "report.pdf"
    render_report(
        canonical_json(study.config),
        canonical_json([dataclasses.asdict(item) for item in study.skipped]),
        table_paths(tables),
        [f"{root}/results/data/{name}/card.json" for name in study.datasets],
        str(root / "results" / "figures"),
        str(template_dir),
        str(html),
        str(pdf),
    )
    return html, pdf
