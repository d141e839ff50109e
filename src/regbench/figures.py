"""Matplotlib figures drawn from the tidy tables and per-run histories (SVG, no TensorFlow).

Every figure tells its series apart by marker and line style as well as by
colour, so it survives grayscale print.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.figure
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

__all__ = ["plot_all"]

plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "svg.hashsalt": "regbench",  # Stable ids: identical input gives identical files.
        "font.size": 8,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.dpi": 100,
    }
)

# A4 text width is about 17 cm.
FULL_WIDTH = 6.7


def plot_all(
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    rankings: pd.DataFrame,
    history_of: Callable[[str, str, str, int], pd.DataFrame | None],
    weights_of: Callable[[str, str, str, int], np.ndarray | None],
    baseline: str,
    out_dir: Path,
) -> list[dict[str, Any]]:
    """Draw every figure into ``out_dir`` and return the manifest (also written as figures.json).

    ``history_of`` and ``weights_of`` give one run's per-epoch history and its
    final kernel weights (flattened), or None where the run left none.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: list[dict[str, Any]] = []
    for (model, metric), ranks in rankings.groupby(["model", "metric"], sort=True):
        if metric != "test_accuracy" or not np.isfinite(ranks["critical_difference"].iloc[0]):
            continue
        figure = _critical_difference(ranks)
        path = out_dir / f"ranking__{model}__{metric}.svg"
        _save(figure, path)
        first = ranks.iloc[0]
        manifest.append(
            {
                "dataset": None,
                "model": model,
                "kind": "critical_difference",
                "file": path.name,
                "caption": (
                    f"Average rank of each regularizer by test accuracy of {model} across "
                    f"{int(first['n_datasets'])} datasets (1 = best). Regularizers joined by a "
                    "thick bar are not significantly different (Nemenyi test at the 5% level); "
                    f"the bar above the axis is the critical difference, "
                    f"{first['critical_difference']:.2f}."
                ),
            }
        )
    for (dataset, model), cell_runs in runs.groupby(["dataset", "model"], sort=True):
        regularizers = _ordered(cell_runs["regularizer"].unique(), baseline)
        cell_summary = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
        figures = {
            "learning_curves": (
                _learning_curves(cell_runs, regularizers, history_of),
                f"Learning curves of {model} on {dataset}: training (solid) and validation "
                "(dashed) accuracy per epoch, mean over seeds with a band of one standard "
                "deviation.",
            ),
            "test_accuracy": (
                _interval_plot(
                    cell_summary, regularizers, "test_accuracy", "test accuracy", baseline
                ),
                f"Test accuracy of {model} on {dataset} per regularizer: mean over seeds with "
                f"its 95% confidence interval; the dotted line is the {baseline} baseline's mean.",
            ),
            "generalization_gap": (
                _interval_plot(
                    cell_summary, regularizers, "gap_accuracy", "train - test accuracy", baseline
                ),
                f"Generalization gap of {model} on {dataset}: training minus test accuracy "
                "with the final weights, mean and 95% confidence interval. Smaller means "
                "less overfitting.",
            ),
            "weights": (
                _weight_histograms(cell_runs, regularizers, weights_of),
                f"Distribution of the final kernel weights of {model} on {dataset}, pooled over "
                "seeds (logarithmic count axis). The share of near-zero weights (|w| < 0.001) is "
                "printed in each panel: L1 penalties drive weights to exactly zero.",
            ),
        }
        for kind, (figure, caption) in figures.items():
            path = out_dir / f"{dataset}__{model}__{kind}.svg"
            _save(figure, path)
            manifest.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "kind": kind,
                    "file": path.name,
                    "caption": caption,
                }
            )
    (out_dir / "figures.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _save(figure: matplotlib.figure.Figure, path: Path) -> None:
    """Write an SVG and free the figure.

    Margins are set by hand when each figure is built: automatic layout
    (``tight_layout``, ``bbox_inches="tight"``) draws the figure once more and
    was most of the cost of a report with many runs.
    """
    figure.savefig(path, format="svg", metadata={"Date": None})
    plt.close(figure)


def _grid_margins(figure: matplotlib.figure.Figure, rows: int) -> None:
    """Fixed margins for small-multiple grids, in place of a costly tight layout."""
    height = figure.get_figheight()
    figure.subplots_adjust(
        left=0.08,
        right=0.99,
        bottom=0.45 / height,
        top=1 - 0.25 / height,
        wspace=0.12,
        hspace=0.45 if rows > 1 else 0.2,
    )


def _ordered(names: Any, baseline: str) -> list[str]:
    """The baseline first, then the others in their declared order."""
    names = list(names)
    return [baseline, *[n for n in names if n != baseline]] if baseline in names else names


def _learning_curves(
    runs: pd.DataFrame,
    regularizers: list[str],
    history_of: Callable[[str, str, str, int], pd.DataFrame | None],
) -> matplotlib.figure.Figure:
    columns = min(4, len(regularizers))
    rows = -(-len(regularizers) // columns)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(FULL_WIDTH, 1.7 * rows + 0.4),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for axis, regularizer in zip(axes.flat, regularizers, strict=False):
        ok = runs[(runs["regularizer"] == regularizer) & (runs["status"] == "ok")]
        histories = [
            h
            for h in (
                history_of(row.dataset, row.model, row.regularizer, int(row.seed))
                for row in ok.itertuples()
            )
            if h is not None
        ]
        axis.set_title(regularizer, fontsize=8)
        if not histories:
            axis.text(
                0.5, 0.5, "no successful run", ha="center", va="center", transform=axis.transAxes
            )
            continue
        for column, style, marker, label in (
            ("accuracy", "-", "o", "train"),
            ("val_accuracy", "--", "s", "validation"),
        ):
            frame = pd.concat([h.set_index("epoch")[column] for h in histories], axis=1)
            mean, std = frame.mean(axis=1), frame.std(axis=1).fillna(0.0)
            epochs = frame.index.to_numpy()
            every = max(1, len(epochs) // 6)
            axis.plot(
                epochs,
                mean,
                linestyle=style,
                marker=marker,
                markevery=every,
                markersize=3,
                color="black" if column == "accuracy" else "tab:blue",
                label=label,
                linewidth=1,
            )
            axis.fill_between(
                epochs,
                mean - std,
                mean + std,
                alpha=0.2,
                color="gray" if column == "accuracy" else "tab:blue",
                linewidth=0,
            )
    for axis in axes.flat[len(regularizers) :]:
        axis.set_visible(False)
    for axis in axes[-1]:
        axis.set_xlabel("epoch")
    for axis in axes[:, 0]:
        axis.set_ylabel("accuracy")
    axes.flat[0].legend(loc="lower right", fontsize=7, frameon=False)
    _grid_margins(figure, rows)
    return figure


def _weight_histograms(
    runs: pd.DataFrame,
    regularizers: list[str],
    weights_of: Callable[[str, str, str, int], np.ndarray | None],
) -> matplotlib.figure.Figure:
    pooled: dict[str, np.ndarray] = {}
    for regularizer in regularizers:
        ok = runs[(runs["regularizer"] == regularizer) & (runs["status"] == "ok")]
        arrays = [
            w
            for w in (
                weights_of(r.dataset, r.model, r.regularizer, int(r.seed)) for r in ok.itertuples()
            )
            if w is not None
        ]
        pooled[regularizer] = np.concatenate(arrays) if arrays else np.zeros(0)
    everything = np.concatenate([w for w in pooled.values() if w.size] or [np.zeros(1)])
    limit = float(np.quantile(np.abs(everything), 0.995)) or 1.0
    bins = np.linspace(-limit, limit, 41)
    columns = min(4, len(regularizers))
    rows = -(-len(regularizers) // columns)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(FULL_WIDTH, 1.5 * rows + 0.4),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for axis, regularizer in zip(axes.flat, regularizers, strict=False):
        weights = pooled[regularizer]
        axis.set_title(regularizer, fontsize=8)
        if not weights.size:
            axis.text(
                0.5, 0.5, "no successful run", ha="center", va="center", transform=axis.transAxes
            )
            continue
        axis.hist(
            np.clip(weights, -limit, limit),
            bins=bins,
            color="0.35",
            edgecolor="black",
            linewidth=0.3,
        )
        axis.set_yscale("log")
        # Minor log ticks cost more to lay out than the rest of the figure.
        axis.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        sparsity = float((np.abs(weights) < 1e-3).mean())
        axis.text(
            0.03,
            0.95,
            f"{sparsity:.1%} near zero",
            transform=axis.transAxes,
            ha="left",
            va="top",
            fontsize=7,
        )
    for axis in axes.flat[len(regularizers) :]:
        axis.set_visible(False)
    for axis in axes[-1]:
        axis.set_xlabel("weight")
    for axis in axes[:, 0]:
        axis.set_ylabel("count")
    _grid_margins(figure, rows)
    return figure


def _interval_plot(
    summary: pd.DataFrame, regularizers: list[str], metric: str, label: str, baseline: str
) -> matplotlib.figure.Figure:
    rows = summary[summary["metric"] == metric].set_index("regularizer").reindex(regularizers)
    figure, axis = plt.subplots(figsize=(FULL_WIDTH * 0.75, 0.28 * len(regularizers) + 0.8))
    positions = np.arange(len(regularizers))[::-1]
    means = rows["mean"].to_numpy(dtype=float)
    low = means - rows["ci_low"].to_numpy(dtype=float)
    high = rows["ci_high"].to_numpy(dtype=float) - means
    errors = np.nan_to_num(np.vstack([low, high]), nan=0.0)
    axis.errorbar(
        means,
        positions,
        xerr=errors,
        fmt="o",
        color="black",
        ecolor="black",
        capsize=3,
        markersize=4,
        linewidth=1,
    )
    if baseline in rows.index and np.isfinite(rows.loc[baseline, "mean"]):
        axis.axvline(rows.loc[baseline, "mean"], linestyle=":", color="gray", linewidth=1)
    axis.set_yticks(positions, regularizers)
    axis.set_xlabel(label)
    axis.grid(axis="x", linewidth=0.3)
    width, height = figure.get_size_inches()
    longest = max(len(name) for name in regularizers)
    figure.subplots_adjust(
        left=min(0.6, (0.25 + 0.06 * longest) / width),
        right=0.97,
        bottom=0.45 / height,
        top=1 - 0.1 / height,
    )
    return figure


def _critical_difference(ranks: pd.DataFrame) -> matplotlib.figure.Figure:
    """A Demšar-style critical-difference diagram from average ranks."""
    ranks = ranks.sort_values("average_rank")
    names = ranks["regularizer"].tolist()
    values = ranks["average_rank"].to_numpy(dtype=float)
    cd = float(ranks["critical_difference"].iloc[0])
    k = len(names)
    half = -(-k // 2)
    figure, axis = plt.subplots(figsize=(FULL_WIDTH, 0.9 + 0.22 * half))
    axis.set_xlim(k + 0.5, 0.5)  # Best rank on the right, as Demšar draws it.
    axis.set_ylim(-half - 0.5, 1.6)
    axis.axis("off")
    figure.subplots_adjust(left=0.2, right=0.8, bottom=0.02, top=0.98)
    axis.hlines(0, 1, k, color="black", linewidth=1)
    for tick in range(1, k + 1):
        axis.vlines(tick, 0, 0.12, color="black", linewidth=1)
        axis.text(tick, 0.2, str(tick), ha="center", va="bottom", fontsize=7)
    axis.hlines(1.25, 1, 1 + cd, color="black", linewidth=1.5)
    axis.text(1 + cd / 2, 1.35, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=7)
    for index, (name, value) in enumerate(zip(names, values, strict=True)):
        right = index < half
        row = -(index if right else k - 1 - index) - 0.6
        end = 0.5 if right else k + 0.5
        axis.plot([value, value, end], [0, row, row], color="black", linewidth=0.7)
        axis.text(
            end,
            row,
            f" {name} ({value:.2f}) " if right else f" ({value:.2f}) {name} ",
            ha="left" if right else "right",
            va="center",
            fontsize=7,
        )
    # Thick bars join groups whose rank range is within the critical difference.
    groups: list[tuple[int, int]] = []
    for start in range(k):
        stop = max(j for j in range(start, k) if values[j] - values[start] <= cd)
        if stop > start and not any(a <= start and stop <= b for a, b in groups):
            groups.append((start, stop))
    for level, (start, stop) in enumerate(groups):
        y = -0.25 - 0.12 * level
        axis.hlines(y, values[start] - 0.05, values[stop] + 0.05, color="black", linewidth=3)
    return figure


def load_history(path: Path) -> pd.DataFrame | None:
    """A run's history, or None when the run left none."""
    return pd.read_csv(path) if path.exists() else None


def load_weights(path: Path) -> np.ndarray | None:
    """A run's kernel weights, flattened into one array, or None when the run left none."""
    if not path.exists():
        return None
    with np.load(path) as arrays:
        return (
            np.concatenate([arrays[name].ravel() for name in arrays.files])
            if arrays.files
            else None
        )
