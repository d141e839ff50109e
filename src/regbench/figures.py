"""Matplotlib figures drawn from the tidy tables and per-run histories (SVG, no TensorFlow).

Every figure tells its series apart by marker and line style as well as by
colour, so it survives grayscale print. Figures are all :data:`FULL_WIDTH`
wide, the report's text width, so they print at their own size with text of
at least 8 pt; their heights grow with what they show.

Files are keyed by folder, ``cells/<dataset>/<model>/<kind>.svg`` and
``rankings/<model>/<kind>.svg``, so no two cells (whatever their
names) and no cell and ranking can share a file. ``figures.json`` lists them
with their captions; every number a caption states comes from the tables or
the constants the code uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.axes
import matplotlib.figure
import matplotlib.lines
import matplotlib.ticker
import numpy as np
import pandas as pd

from regbench.config import RunKey
from regbench.metrics import NEAR_ZERO
from regbench.wording import (
    VERDICT_STYLES,
    VerdictStyle,
    join_names,
    metric_style,
    verdict_legend,
)

__all__ = [
    "CURVE_LABELS",
    "FIGURE_KINDS",
    "FULL_WIDTH",
    "HISTOGRAM_RANGE",
    "MANIFEST",
    "FigureSettings",
    "StudyTables",
    "critical_difference",
    "dose_response",
    "figure_file",
    "learning_curves",
    "load_history",
    "load_weights",
    "mean_curve",
    "near_zero_label",
    "paired_differences",
    "plot_all",
    "weight_histograms",
]

matplotlib.rcParams.update(
    {
        "svg.fonttype": "none",
        "svg.hashsalt": "regbench",  # Stable ids: identical input gives identical files.
        "font.size": 8,  # Printed at their own size, so no text is smaller than 8 pt.
        "axes.titlesize": 8,
        "legend.fontsize": 8,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.dpi": 100,
    }
)

#: Width of every figure in inches: the report's A4 text width (178 mm) less a margin.
FULL_WIDTH = 6.7

#: The manifest the report reads, in the figure folder.
MANIFEST = "figures.json"

#: Each kind of figure, in the order a cell's figures are listed.
FIGURE_KINDS = (
    "paired_differences",
    "dose_response",
    "learning_curves",
    "weights",
    "critical_difference",
)


@dataclass(frozen=True)
class FigureSettings:
    """What the study's report judges (baseline, primary metric, metrics); its sweeps' keys."""

    baseline: str
    primary: str
    metrics: tuple[str, ...]
    #: Each sweep family's swept keys (``piece.key``), by family name.
    swept: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> FigureSettings:
        """The settings :func:`regbench.jobs.figure_settings` wrote for the rule."""
        settings = json.loads(text)
        return cls(
            settings["baseline"],
            settings["primary"],
            tuple(settings["metrics"]),
            settings.get("swept", {}),
        )

    @property
    def judged(self) -> tuple[str, ...]:
        """The metrics the paired figure shows, primary first."""
        return (self.primary, *[m for m in self.metrics if m != self.primary])


@dataclass(frozen=True)
class StudyTables:
    """The tables figures are drawn from (``runs.csv``, ``comparisons.csv``, ``rankings.csv``).

    ``dose_response`` is ``dose_response.csv``, empty in a study without sweeps.
    """

    runs: pd.DataFrame
    comparisons: pd.DataFrame
    rankings: pd.DataFrame
    dose_response: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["dataset", "model"])
    )


#: One run's file, read by key, or None where the run left none.
HistoryOf = Callable[[RunKey], pd.DataFrame | None]
WeightsOf = Callable[[RunKey], np.ndarray | None]

Drawn = tuple[matplotlib.figure.Figure, str]


def figure_file(dataset: str | None, model: str, kind: str) -> str:
    """Where a figure goes, relative to the figure folder: one folder per cell or ranking.

    Names are single path components (the config's name rule), so folders
    keep distinct cells apart where joining names with a separator did not.
    """
    for name in (dataset, model, kind):
        if name is not None and (name in {"", ".", ".."} or "/" in name or "\\" in name):
            raise ValueError(f"figure names must be single file names, got {name!r}")
    if dataset is None:
        return str(PurePosixPath("rankings", model, f"{kind}.svg"))
    return str(PurePosixPath("cells", dataset, model, f"{kind}.svg"))


def plot_all(
    tables: StudyTables,
    history_of: HistoryOf,
    weights_of: WeightsOf,
    settings: FigureSettings,
    out_dir: Path,
) -> list[dict[str, Any]]:
    """Draw every figure into ``out_dir`` and return the manifest (also written as figures.json).

    Each entry has ``dataset`` (None for a ranking), ``model``, ``kind``,
    ``file`` (relative to ``out_dir``) and ``caption``.
    """
    missing = [m for m in settings.judged if m not in set(tables.comparisons["metric"])]
    if len(tables.comparisons) and missing:
        known = ", ".join(sorted(set(tables.comparisons["metric"])))
        raise ValueError(
            f"the report judges {', '.join(missing)}, which comparisons.csv does not compare "
            f"(it has: {known})"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for dataset, model, kind, (figure, caption) in _every_figure(
        tables, history_of, weights_of, settings
    ):
        file = figure_file(dataset, model, kind)
        _save(figure, out_dir / file)
        manifest.append(
            {"dataset": dataset, "model": model, "kind": kind, "file": file, "caption": caption}
        )
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _every_figure(
    tables: StudyTables, history_of: HistoryOf, weights_of: WeightsOf, settings: FigureSettings
) -> Iterator[tuple[str | None, str, str, Drawn]]:
    """Every figure as (dataset, model, kind, (figure, caption)), drawn one at a time."""
    comparisons = tables.comparisons
    for (dataset, model), cell_runs in tables.runs.groupby(["dataset", "model"], sort=True):
        name = f"{dataset} · {model}"
        ok = cell_runs[cell_runs["status"] == "ok"]
        regularizers = _ordered(cell_runs["regularizer"].unique(), settings.baseline)
        cell = comparisons[(comparisons["dataset"] == dataset) & (comparisons["model"] == model)]
        if len(cell):
            figure = paired_differences(cell, regularizers, settings)
            yield dataset, model, "paired_differences", figure
        doses = tables.dose_response
        sweeps = doses[(doses["dataset"] == dataset) & (doses["model"] == model)]
        if len(sweeps):
            yield dataset, model, "dose_response", dose_response(sweeps, settings)
        keys = {r: _keys(ok[ok["regularizer"] == r]) for r in regularizers}
        histories = {r: [h for h in map(history_of, k) if h is not None] for r, k in keys.items()}
        yield dataset, model, "learning_curves", learning_curves(histories, name)
        weights = {r: [w for w in map(weights_of, k) if w is not None] for r, k in keys.items()}
        yield dataset, model, "weights", weight_histograms(weights, name)
    ranked = tables.rankings[tables.rankings["metric"] == settings.primary]
    for model, ranks in ranked.groupby("model", sort=True):
        if np.isfinite(ranks["critical_difference"].iloc[0]):
            yield None, str(model), "critical_difference", critical_difference(ranks)


def _keys(runs: pd.DataFrame) -> list[RunKey]:
    return [RunKey(r.dataset, r.model, r.regularizer, int(r.seed)) for r in runs.itertuples()]


def _save(figure: matplotlib.figure.Figure, path: Path) -> None:
    """Write an SVG.

    Margins are set by hand when each figure is built: automatic layout
    (``tight_layout``, ``bbox_inches="tight"``) draws the figure once more and
    was most of the cost of a report with many runs.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="svg", metadata={"Date": None})


def _ordered(names: Any, baseline: str) -> list[str]:
    """The baseline first, then the others by name, as the report's tables list them.

    The study's own order is not used: the resolved config reaches the report
    as canonical (key-sorted) JSON, so that reordering the YAML reruns nothing.
    """
    others = sorted({str(n) for n in names} - {baseline})
    return [baseline, *others] if baseline in set(map(str, names)) else others


def _only(values: pd.Series, what: str) -> float:
    """The one value a column holds for a whole table (a setting recorded per row)."""
    distinct = values.dropna().unique()
    if len(distinct) != 1:
        raise ValueError(f"expected one {what} in comparisons.csv, found {list(distinct)}")
    return float(distinct[0])


def _percent(fraction: float) -> str:
    """A probability as the report prints it: 0.95 as 95%, 0.975 as 97.5%."""
    return f"{fraction * 100:g}%"


def _count(values: pd.Series) -> str:
    low, high = int(values.min()), int(values.max())
    return f"{low}" if low == high else f"{low}–{high}"


def paired_differences(
    cell: pd.DataFrame, regularizers: list[str], settings: FigureSettings
) -> Drawn:
    """Per judged metric, each regularizer's mean paired difference with its CI, by verdict."""
    compared = [r for r in regularizers if r in set(cell["regularizer"])]
    metrics = [m for m in settings.judged if m in set(cell["metric"])]
    height = 0.22 * len(compared) + 1.05
    figure = matplotlib.figure.Figure(figsize=(FULL_WIDTH, height))
    axes = figure.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    positions = np.arange(len(compared))[::-1]
    for axis, metric in zip(axes, metrics, strict=True):
        rows = cell[cell["metric"] == metric].set_index("regularizer").reindex(compared)
        _paired_panel(axis, rows, positions, metric)
    axes[0].set_yticks(positions, compared)
    axes[0].set_ylim(-0.7, len(compared) - 0.3)
    longest = max(len(name) for name in compared)
    figure.subplots_adjust(
        left=(0.2 + 0.062 * longest) / FULL_WIDTH,
        right=0.98,
        bottom=0.62 / height,
        top=1 - 0.43 / height,
        wspace=0.12,
    )
    # Only the verdicts this figure shows, so that the legend fits across it.
    shown = [v for v in VERDICT_STYLES if v in set(cell["verdict"])]
    figure.legend(
        handles=[_verdict_handle(verdict) for verdict in shown],
        loc="upper center",
        ncol=max(1, len(shown)),
        frameon=False,
        borderaxespad=0.1,
    )
    confidence, alpha = _only(cell["confidence"], "confidence"), _only(cell["alpha"], "alpha")
    shapes = verdict_legend(shown)
    dataset, model = cell["dataset"].iloc[0], cell["model"].iloc[0]
    caption = (
        f"Paired differences from the {settings.baseline} baseline, {dataset} · {model}: for "
        f"each regularizer and metric, the mean over seeds of regularized minus "
        f"{settings.baseline} on the same seed ({_count(cell['n_pairs'])} pairs), with its "
        f"{_percent(confidence)} confidence interval; proportions in percentage points. Marker "
        f"and colour give the paired test's verdict at the {_percent(alpha)} level after "
        f"correction for the number of regularizers compared and against the smallest effect "
        f"of interest: {shapes}. The interval is not corrected for that number, so one that "
        "barely excludes zero can still be inconclusive."
    )
    return figure, caption


def _paired_panel(
    axis: matplotlib.axes.Axes, rows: pd.DataFrame, positions: np.ndarray, metric: str
) -> None:
    """One metric's differences: a point and interval per regularizer, styled by verdict."""
    scale = 100.0 if metric_style(metric).proportion else 1.0
    mean = rows["mean_diff"].to_numpy(dtype=float) * scale
    low = rows["diff_ci_low"].to_numpy(dtype=float) * scale
    high = rows["diff_ci_high"].to_numpy(dtype=float) * scale
    axis.axvline(0.0, color="black", linewidth=0.8)
    for y, m, lo, hi, verdict in zip(positions, mean, low, high, rows["verdict"], strict=True):
        if not np.isfinite(m):
            axis.text(0.0, y, " no pairs", va="center", ha="left", color="#808080")
            continue
        style = _verdict_style(verdict)
        if np.isfinite(lo) and np.isfinite(hi):
            axis.hlines(y, lo, hi, color=style.color, linewidth=1.2)
        axis.plot([m], [y], linestyle="none", **_marker_kwargs(style))
    span = np.concatenate([[0.0], mean, low, high])
    span = span[np.isfinite(span)]
    lo_x, hi_x = float(span.min()), float(span.max())
    pad = 0.08 * (hi_x - lo_x) or 1.0
    axis.set_xlim(lo_x - pad, hi_x + pad)
    higher = bool(rows["higher_is_better"].dropna().iloc[0])
    unit = "difference, points" if scale != 1.0 else "difference"
    axis.set_xlabel(f"{unit}\n{'better →' if higher else '← better'}")
    axis.set_title(metric_style(metric).label.removeprefix("the "))
    axis.grid(axis="x", linewidth=0.3)
    axis.tick_params(axis="y", length=0)


def _verdict_style(verdict: str) -> VerdictStyle:
    try:
        return VERDICT_STYLES[verdict]
    except KeyError:
        known = ", ".join(VERDICT_STYLES)
        raise ValueError(
            f"comparisons.csv has verdict {verdict!r}; figures draw: {known}"
        ) from None


def _marker_kwargs(style: VerdictStyle) -> dict[str, Any]:
    return {
        "marker": style.marker,
        "markersize": 6,
        "markeredgecolor": style.color,
        "markerfacecolor": style.color if style.filled else "white",
        "markeredgewidth": 1.2,
    }


def _verdict_handle(verdict: str) -> matplotlib.lines.Line2D:
    style = VERDICT_STYLES[verdict]
    return matplotlib.lines.Line2D([], [], linestyle="none", label=verdict, **_marker_kwargs(style))


#: The metrics a dose-response figure shows after the primary one: data loss and the gap.
DOSE_METRICS = ("test_loss", "gap_accuracy")

#: A sweep's strength axis is logarithmic when its largest strength is at least this many
#: times its smallest (two decades), where equal steps on a linear axis would crowd the small.
LOG_AXIS_RATIO = 100.0


def dose_response(rows: pd.DataFrame, settings: FigureSettings) -> Drawn:
    """Per sweep family (rows of panels) and metric (columns): mean and CI against strength.

    ``rows`` is one cell's part of ``dose_response.csv``. Each panel draws the
    baseline's interval as a band and its mean as a dashed line; the
    family's best strength by the mean is filled, the others open.
    """
    metrics = [
        m for m in dict.fromkeys((settings.primary, *DOSE_METRICS)) if (rows["metric"] == m).any()
    ]
    families = list(dict.fromkeys(rows["family"]))
    height = 0.45 + 1.45 * len(families)
    figure = matplotlib.figure.Figure(figsize=(FULL_WIDTH, height))
    axes = figure.subplots(len(families), len(metrics), squeeze=False)
    for axes_row, family in zip(axes, families, strict=True):
        swept = list(settings.swept.get(family, ()))
        for axis, metric in zip(axes_row, metrics, strict=True):
            panel = rows[(rows["family"] == family) & (rows["metric"] == metric)]
            _dose_panel(axis, panel.sort_values("position"), metric, swept)
        axes_row[0].set_ylabel(family, fontweight="bold")
    for axis, metric in zip(axes[0], metrics, strict=True):
        axis.set_title(metric_style(metric).label.removeprefix("the "))
    figure.subplots_adjust(
        left=0.1, right=0.98, bottom=0.45 / height, top=1 - 0.3 / height, hspace=0.75, wspace=0.35
    )
    first = rows.iloc[0]
    caption = (
        f"Response to strength, {first['dataset']} · {first['model']}: for each sweep family "
        f"(a row), {join_names([metric_style(m).label for m in metrics])} (columns) at each "
        "strength, the mean over seeds with its confidence interval (proportions in percent). "
        f"The grey band is the {settings.baseline} baseline's interval and the dashed line its "
        "mean. The filled marker is the family's best strength by its mean (chosen on test "
        "data, so optimistic; the tuned comparison chooses on validation data). Strengths are "
        f"on a logarithmic axis where the largest is at least {LOG_AXIS_RATIO:g} times the "
        "smallest; a family that sweeps several keys lists its settings in order."
    )
    return figure, caption


def _dose_panel(
    axis: matplotlib.axes.Axes, panel: pd.DataFrame, metric: str, swept: list[str]
) -> None:
    """One family's means and intervals on one metric, against strength, the baseline a band."""
    scale = 100.0 if metric_style(metric).proportion else 1.0
    x, labels = _strength_axis(axis, panel, swept)
    mean = panel["mean"].to_numpy(dtype=float) * scale
    low = panel["ci_low"].to_numpy(dtype=float) * scale
    high = panel["ci_high"].to_numpy(dtype=float) * scale
    base = panel.iloc[0]
    if np.isfinite(base["baseline_ci_low"]):
        axis.axhspan(
            base["baseline_ci_low"] * scale,
            base["baseline_ci_high"] * scale,
            color="0.85",
            linewidth=0,
        )
    axis.axhline(base["baseline_mean"] * scale, color="0.35", linestyle="--", linewidth=0.9)
    axis.plot(x, mean, color="black", linewidth=0.9)
    errors = np.vstack([mean - low, high - mean])
    axis.errorbar(
        x,
        mean,
        yerr=np.where(np.isfinite(errors), errors, 0.0),
        fmt="none",
        ecolor="black",
        elinewidth=0.9,
        capsize=2,
    )
    best = panel["best"].astype(bool).to_numpy()
    axis.plot(
        x[~best],
        mean[~best],
        linestyle="none",
        marker="o",
        markersize=4.5,
        markerfacecolor="white",
        markeredgecolor="black",
    )
    axis.plot(x[best], mean[best], linestyle="none", marker="o", markersize=5, color="black")
    if labels is not None:
        axis.set_xticks(x, labels, rotation=20, ha="right")
    axis.grid(axis="y", linewidth=0.3)


def _strength_axis(
    axis: matplotlib.axes.Axes, panel: pd.DataFrame, swept: list[str]
) -> tuple[np.ndarray, list[str] | None]:
    """Where each variant goes: its strength (log where it spans decades), or its rank.

    Returns the x positions and, for a family that sweeps several keys, the
    tick labels (the variants' names less the family's).
    """
    strengths = panel["strength"].to_numpy(dtype=float)
    if len(swept) == 1 and np.isfinite(strengths).all():
        axis.set_xlabel(swept[0])
        positive = strengths[strengths > 0]
        if len(positive) and positive.max() >= LOG_AXIS_RATIO * positive.min():
            if len(positive) < len(strengths):
                # A zero strength: logarithmic beyond the smallest nonzero one, linear below.
                axis.set_xscale("symlog", linthresh=float(positive.min()))
            else:
                axis.set_xscale("log")
        return strengths, None
    prefix = f"{panel['family'].iloc[0]}_"
    return np.arange(len(panel), dtype=float), [
        str(v).removeprefix(prefix) for v in panel["variant"]
    ]


def mean_curve(histories: Sequence[pd.DataFrame], column: str) -> pd.DataFrame:
    """Per epoch, over the runs still training: ``mean``, ``sd`` and how many (``running``).

    A run that stopped early leaves the mean where it stops instead of
    counting as missing, zero or its last value.
    """
    epochs = np.unique(np.concatenate([h["epoch"].to_numpy() for h in histories]))
    table = np.full((len(histories), len(epochs)), np.nan)
    for row, history in zip(table, histories, strict=True):
        row[np.searchsorted(epochs, history["epoch"].to_numpy())] = history[column]
    running = np.isfinite(table).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.nansum(table, axis=0)
        mean = np.where(running > 0, total / np.maximum(running, 1), np.nan)
        squares = np.nansum((table - mean) ** 2, axis=0)
        sd = np.where(running > 1, np.sqrt(squares / np.maximum(running - 1, 1)), np.nan)
    return pd.DataFrame(
        {"mean": mean, "sd": sd, "running": running}, index=pd.Index(epochs, name="epoch")
    )


#: Panels per row of a small-multiple figure: 11 regularizers fill two rows.
COLUMNS = 6


def _grid(
    panels: int, layers: int, panel_height: float, top: float
) -> tuple[matplotlib.figure.Figure, list[list[matplotlib.axes.Axes]]]:
    """Small multiples: per panel, ``layers`` axes stacked under one title; in inches.

    Returns the figure and, per panel, its axes top to bottom. Axes of one
    layer share both scales, so their values compare across panels. Placed by
    hand instead of by a costly tight layout.
    """
    columns = min(COLUMNS, panels)
    groups = -(-panels // columns)
    left, right, gap, title, ticks = 0.55, 0.08, 0.1, 0.34, 0.3
    group_height = title + layers * panel_height + (layers - 1) * gap + ticks
    height = top + groups * group_height + 0.2
    width = (FULL_WIDTH - left - right - (columns - 1) * gap) / columns
    figure = matplotlib.figure.Figure(figsize=(FULL_WIDTH, height))
    firsts: list[matplotlib.axes.Axes] = []
    stacks = []
    for panel in range(panels):
        group, column = divmod(panel, columns)
        y = height - top - group * group_height - title
        stack = []
        for layer in range(layers):
            y -= panel_height + (gap if layer else 0.0)
            rect = ((left + column * (width + gap)) / FULL_WIDTH, y / height)
            share = firsts[layer] if panel else None
            axis = figure.add_axes(
                (*rect, width / FULL_WIDTH, panel_height / height), sharex=share, sharey=share
            )
            # Shared scales: values on the outer edges only (text is what costs most in print).
            below = panel + columns < panels
            axis.tick_params(labelbottom=layer == layers - 1 and not below, labelleft=column == 0)
            stack.append(axis)
        if not panel:
            firsts = stack
        stacks.append(stack)
    return figure, stacks


#: The history columns drawn as learning curves (top to bottom), and their axis labels.
CURVE_LABELS = {"loss": "data loss", "accuracy": "accuracy"}

#: Training and validation: history column prefix, line style, marker, colour, label.
_SERIES: tuple[tuple[str, Any, str, str, str], ...] = (
    ("", "-", "o", "black", "training"),
    ("val_", "--", "s", "#1f5fa8", "validation"),
)
_STOP_COLOR = "#b2182b"


def learning_curves(histories: dict[str, list[pd.DataFrame]], name: str) -> Drawn:
    """Per regularizer: training and validation data loss above accuracy, mean over the seeds.

    ``histories`` holds each regularizer's successful runs' histories.
    """
    figure, stacks = _grid(len(histories), len(CURVE_LABELS), 0.7, 0.3)
    # The study's epoch count: how long the longest run of the cell trained.
    full = max((int(h["epoch"].max()) for runs in histories.values() for h in runs), default=0)
    for stack, (regularizer, runs) in zip(stacks, histories.items(), strict=True):
        if not runs:
            stack[0].set_title(f"{regularizer}\nno successful run")
            continue
        ends = np.array([int(h["epoch"].max()) for h in runs])
        early = ends[ends < full]
        stopped = f"{len(early)}/{len(runs)} stop early" if len(early) else f"{len(runs)} runs"
        stack[0].set_title(f"{regularizer}\n{stopped}")
        for axis, column in zip(stack, CURVE_LABELS, strict=True):
            for prefix, style, marker, color, series in _SERIES:
                curve = mean_curve(runs, prefix + column)
                _draw_curve(axis, curve, len(runs), style, marker, color, series)
            # Where runs stopped: ticks along the epoch axis.
            axis.plot(
                early,
                np.zeros(len(early)),
                linestyle="none",
                marker="|",
                markersize=7,
                color=_STOP_COLOR,
                transform=axis.get_xaxis_transform(),
                clip_on=False,
            )
    for index, stack in enumerate(stacks):
        if index % COLUMNS == 0:
            for axis, label in zip(stack, CURVE_LABELS.values(), strict=True):
                axis.set_ylabel(label)
        if index >= len(stacks) - COLUMNS:
            stack[-1].set_xlabel("epoch")
    handles = [
        matplotlib.lines.Line2D([], [], linestyle=style, marker=marker, color=color)
        for _, style, marker, color, _ in _SERIES
    ]
    stop = matplotlib.lines.Line2D(
        [], [], linestyle="none", marker="|", markersize=7, color=_STOP_COLOR
    )
    figure.legend(
        [*handles, stop],
        [*(series for *_, series in _SERIES), "a run stopped early"],
        loc="upper center",
        ncol=3,
        frameon=False,
        handlelength=2.5,
        borderaxespad=0.1,
    )
    return figure, _curves_caption(name)


def _draw_curve(
    axis: matplotlib.axes.Axes,
    curve: pd.DataFrame,
    total: int,
    style: str,
    marker: str,
    color: str,
    series: str,
) -> None:
    """The mean, thick while every run trains and thin over the runs still training after."""
    epochs = curve.index.to_numpy()
    mean = curve["mean"].to_numpy()
    everyone = curve["running"].to_numpy() == total
    axis.plot(epochs, mean, linestyle=style, color=color, linewidth=0.6)
    axis.plot(
        epochs[everyone],
        mean[everyone],
        linestyle=style,
        marker=marker,
        markevery=max(1, len(epochs) // 5),
        markersize=3,
        color=color,
        label=series,
        linewidth=1.2,
    )
    spread = curve["sd"].to_numpy()
    axis.fill_between(
        epochs,
        mean - spread,
        mean + spread,
        where=curve["running"].to_numpy() >= 2,
        alpha=0.18,
        color=color,
        linewidth=0,
    )


def _curves_caption(name: str) -> str:
    """What the curves show, and why training and validation differ."""
    return (
        f"Learning curves, {name}: data loss (cross-entropy without penalty terms; top) and "
        "accuracy (bottom), training (solid, circles) and validation (dashed, squares), mean "
        "over the successful runs ± one standard deviation. Where runs stopped early (ticks on "
        "the epoch axis, count in the title) the mean goes on, thin, over the runs still "
        "training. Training values are averages over each epoch's batches in training mode "
        "(dropout on; batch normalization on batch statistics while its moving averages warm "
        "up); validation is measured after the epoch with dropout off. So training loss can "
        "sit above, and training accuracy below, validation without any fault."
    )


#: The histograms span this quantile of |w|, so a few outliers do not squeeze the rest.
HISTOGRAM_RANGE = 0.995


def near_zero_label() -> str:
    """The near-zero threshold as figures print it, from :data:`regbench.metrics.NEAR_ZERO`."""
    return f"|w| < {NEAR_ZERO:g}"


def weight_histograms(weights: dict[str, list[np.ndarray]], name: str) -> Drawn:
    """One histogram of the final kernel weights per regularizer, pooled over seeds."""
    pooled = {r: np.concatenate(a) if a else np.zeros(0) for r, a in weights.items()}
    everything = np.concatenate([w for w in pooled.values() if w.size] or [np.zeros(1)])
    limit = float(np.quantile(np.abs(everything), HISTOGRAM_RANGE)) or 1.0
    bins = np.linspace(-limit, limit, 41)
    figure, stacks = _grid(len(pooled), 1, 0.7, 0.25)
    # The shares go in the titles, clear of the spike at zero they describe.
    figure.text(
        0.5,
        1 - 0.05 / figure.get_figheight(),
        f"Under each name: the share of weights with {near_zero_label()}",
        ha="center",
        va="top",
    )
    stacks[0][0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3, symmetric=True))
    for (axis,), (regularizer, values) in zip(stacks, pooled.items(), strict=True):
        if not values.size:
            axis.set_title(f"{regularizer}\nno successful run")
            continue
        share = float((np.abs(values) < NEAR_ZERO).mean())
        axis.set_title(f"{regularizer}\n{share:.1%}")
        counts, _ = np.histogram(np.clip(values, -limit, limit), bins=bins)
        axis.stairs(counts, bins, fill=True, color="0.45", edgecolor="black", linewidth=0.3)
        axis.set_yscale("log")
        # Minor log ticks cost more to lay out than the rest of the figure.
        axis.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        # Plain counts: a power of ten's exponent would print below 8 pt.
        axis.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    for index, (axis,) in enumerate(stacks):
        if index % COLUMNS == 0:
            axis.set_ylabel("count")
        if index >= len(stacks) - COLUMNS:
            axis.set_xlabel("weight")
    caption = (
        f"Final kernel weights, {name}: histogram of every run's weights pooled over seeds, "
        f"on a logarithmic count axis; weights beyond ±{limit:.2g} (the "
        f"{HISTOGRAM_RANGE * 100:g}th percentile of |w| over the panels) are counted in the "
        "outermost bins. Under each regularizer's name: the share of "
        f"weights with {near_zero_label()}, the threshold the study counts as near zero."
    )
    return figure, caption


def critical_difference(ranks: pd.DataFrame) -> Drawn:
    """A Demšar-style critical-difference diagram from average ranks, best on the right.

    Lengths are in inches, so the figure is as tall as its rows of names and
    its text stays 8 pt however many regularizers there are.
    """
    ranks = ranks.sort_values("average_rank")
    values = ranks["average_rank"].to_numpy(dtype=float)
    labels = [
        f"{name} ({value:.2f})" for name, value in zip(ranks["regularizer"], values, strict=True)
    ]
    first = ranks.iloc[0]
    cd, k = float(first["critical_difference"]), len(labels)
    half = -(-k // 2)
    groups = _cd_groups(values, cd)
    above, below = 0.56, 0.12 + 0.08 * len(groups)
    row = 0.19
    height = above + below + row * half + 0.05
    side = (0.25 + 0.062 * max(len(label) for label in labels)) / FULL_WIDTH
    figure = matplotlib.figure.Figure(figsize=(FULL_WIDTH, height))
    axis = figure.add_axes((side, 0.0, 1 - 2 * side, 1.0))
    axis.set_xlim(k + 0.25, 0.75)  # Best rank on the right, as Demšar draws it.
    axis.set_ylim(above - height, above)
    axis.axis("off")
    line: dict[str, Any] = {"color": "black", "clip_on": False}
    axis.hlines(0.0, 1, k, linewidth=1, **line)
    for tick in range(1, k + 1):
        axis.vlines(tick, 0.0, 0.06, linewidth=1, **line)
        axis.text(tick, 0.09, str(tick), ha="center", va="bottom")
    axis.hlines(0.36, 1, 1 + cd, linewidth=1.5, **line)
    axis.text(1 + cd / 2, 0.39, f"CD = {cd:.2f}", ha="center", va="bottom")
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        right = index < half
        y = -(below + row * ((index if right else k - 1 - index) + 0.5))
        end = 0.75 if right else k + 0.25
        axis.plot([value, value, end], [0.0, y, y], linewidth=0.7, **line)
        axis.text(
            end,
            y,
            f" {label}" if right else f"{label} ",
            va="center",
            ha="left" if right else "right",
        )
    for level, (start, stop) in enumerate(groups):
        y = -(0.1 + 0.08 * level)
        axis.hlines(y, values[start] - 0.05, values[stop] + 0.05, linewidth=3, **line)
    alpha = f" at the {_percent(float(first['alpha']))} level" if "alpha" in ranks else ""
    caption = (
        f"Average rank of each regularizer by {metric_style(str(first['metric'])).label} of "
        f"{first['model']} across {int(first['n_datasets'])} datasets (1 = best, on the "
        "right). Regularizers joined by a thick bar have average ranks that differ by no more "
        f"than the critical difference of the Nemenyi test{alpha}, CD = {cd:.2f}, drawn above "
        "the axis."
    )
    return figure, caption


def _cd_groups(values: np.ndarray, cd: float) -> list[tuple[int, int]]:
    """Maximal runs of sorted average ranks whose range is within the critical difference."""
    groups: list[tuple[int, int]] = []
    for start in range(len(values)):
        stop = max(j for j in range(start, len(values)) if values[j] - values[start] <= cd)
        if stop > start and not any(a <= start and stop <= b for a, b in groups):
            groups.append((start, stop))
    return groups


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
