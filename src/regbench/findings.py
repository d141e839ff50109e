"""The report's words about the paired comparisons: a verdict matrix, plain answers, findings.

The statistics layer (:mod:`regbench.stats`) returns a comparisons table of
numbers; this module groups its rows by what happened (clear gains, clear
losses, no detectable effect) and writes them as sentences. Numbers are
printed through :mod:`regbench.wording`, so tables and sentences share units.

A comparison row is a mapping with the columns of
:data:`regbench.stats.COMPARISON_COLUMNS`, plus ``one_example`` (the size of
one test example on the metric's scale, NaN where it does not apply) and
``within_one_example`` once :func:`add_granularity` has run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from regbench.stats import NOT_COMPARABLE
from regbench.wording import (
    MINUS,
    format_diff,
    format_interval,
    format_p,
    is_missing,
    join_names,
    metric_style,
    plural,
)

__all__ = [
    "MATRIX_SYMBOLS",
    "add_granularity",
    "answer_sentences",
    "cell_name",
    "findings_by_effect",
    "verdict_matrix",
]

Row = Mapping[str, Any]

#: Symbol of each verdict in the verdict matrix and tables (legible in grayscale).
MATRIX_SYMBOLS = {
    "better": "▲",
    "worse": "▼",
    "indistinguishable": "○",
    NOT_COMPARABLE: "?",
}

#: At most this many regularizers are named in one clause; beyond it, a count.
_MAX_NAMED = 3

#: Seeds-needed numbers above this are not advice anyone can act on.
# TODO(stats): replace with the cap and "not practically detectable" column of comparisons.csv.
_SEEDS_CAP = 100

_TEST_NAMES = {"wilcoxon": "Wilcoxon", "paired_t": "paired t-test", "identical": "no test"}


def cell_name(row: Row) -> str:
    """``dataset · model``, as the report names one cell of the grid."""
    return f"{row['dataset']} · {row['model']}"


def add_granularity(comparisons: pd.DataFrame, test_sizes: Mapping[str, int]) -> pd.DataFrame:
    """Add ``one_example`` and ``within_one_example`` to a comparisons table.

    On test accuracy one test example moves the metric by ``1 / n_test``; a
    mean paired difference no larger than that is the flip of a single
    prediction. Other metrics get NaN and False.
    """
    # TODO(stats): comparisons.csv will carry these columns; use them once it does.
    table = comparisons.copy()
    if "one_example" not in table.columns:
        sizes = table["dataset"].map(lambda d: 1.0 / test_sizes[d] if d in test_sizes else None)
        table["one_example"] = sizes.where(table["metric"] == "test_accuracy")
    if "within_one_example" not in table.columns:
        gap = table["mean_diff"].abs() - table["one_example"]
        table["within_one_example"] = (gap <= 1e-12) & (table["mean_diff"] != 0.0)
    return table


def verdict_matrix(
    comparisons: pd.DataFrame,
    metric: str,
    cells: Sequence[tuple[str, str]],
    regularizers: Sequence[str],
) -> list[dict[str, Any]]:
    """Rows ``dataset · model``, one entry per regularizer: the paired effect and its verdict.

    An entry is ``None`` where the combination was not run (skipped).
    """
    chosen = comparisons[comparisons["metric"] == metric]
    by_key = {(r["dataset"], r["model"], r["regularizer"]): r for r in _records(chosen)}
    rows = []
    for dataset, model in cells:
        entries: list[dict[str, Any] | None] = []
        for regularizer in regularizers:
            row = by_key.get((dataset, model, regularizer))
            entries.append(None if row is None else _matrix_entry(row, metric))
        if any(entries):
            rows.append({"name": f"{dataset} · {model}", "entries": entries})
    return rows


def _matrix_entry(row: Row, metric: str) -> dict[str, Any]:
    verdict = str(row["verdict"])
    low, high = row["diff_ci_low"], row["diff_ci_high"]
    bounds = [format_diff(v, metric, compact=True, signed=False) for v in (low, high)]
    # Bounds carry a sign only when negative, to stay narrow in a ten-column matrix.
    bounds = [
        f"{MINUS}{b}" if float(v) < 0 else b for b, v in zip(bounds, (low, high), strict=True)
    ]
    return {
        "verdict": verdict.replace(" ", "-"),
        "symbol": MATRIX_SYMBOLS.get(verdict, "?"),
        "diff": format_diff(row["mean_diff"], metric, compact=True),
        "ci": "" if is_missing(low) else f"{bounds[0]}, {bounds[1]}",
        "one_example": bool(row.get("within_one_example", False)),
    }


def answer_sentences(
    comparisons: pd.DataFrame, metrics: Sequence[str], baseline: str, n_seeds: int
) -> list[str]:
    """Two to five plain sentences: what helps, what hurts, what these seeds cannot tell apart.

    One sentence per metric (the first is the primary one), then one on the
    primary metric's resolution with these seeds.
    """
    n_cells = comparisons.groupby(["dataset", "model"]).ngroups
    sentences = [
        _metric_sentence(list(_records(comparisons[comparisons["metric"] == m])), m, baseline)
        for m in metrics
    ]
    sentences = [s for s in sentences if s][:4]
    primary = comparisons[comparisons["metric"] == metrics[0]] if metrics else comparisons
    resolution = _resolution_sentence(list(_records(primary)), metrics[0], n_seeds, n_cells)
    return [*sentences, resolution] if resolution else sentences


def _metric_sentence(rows: list[Row], metric: str, baseline: str) -> str:
    """What changed ``metric``: regularizers better, worse, and the count within noise."""
    style = metric_style(metric)
    tested = [r for r in rows if r["verdict"] != NOT_COMPARABLE]
    if not tested:
        return ""
    better = [r for r in tested if r["verdict"] == "better"]
    worse = [r for r in tested if r["verdict"] == "worse"]
    label = style.label[0].upper() + style.label[1:]
    if not better and not worse:
        return (
            f"No regularizer changes {style.label} beyond seed noise "
            f"({plural(len(tested), 'comparison')} with {baseline}, all indistinguishable)."
        )
    clauses = []
    if better:
        clauses.append(f"{style.better} than with {baseline} for {_who(better, rows, metric)}")
    if worse:
        lead = "" if better else f" than with {baseline}"
        clauses.append(f"{style.worse}{lead} for {_who(worse, rows, metric)}")
    rest = len(tested) - len(better) - len(worse)
    tail = f"; the other {rest} of {len(tested)} comparisons are within seed noise" if rest else ""
    return f"{label} is {'; '.join(clauses)}{tail}."


def _who(chosen: list[Row], all_rows: list[Row], metric: str) -> str:
    """The regularizers in ``chosen``, named with where and by how much, or counted."""
    cells = {cell_name(r) for r in all_rows}
    by_regularizer: dict[str, list[Row]] = {}
    for row in sorted(chosen, key=lambda r: -abs(float(r["mean_diff"]))):
        by_regularizer.setdefault(str(row["regularizer"]), []).append(row)
    regularizers = {str(r["regularizer"]) for r in all_rows}
    unit = " points" if metric_style(metric).proportion else ""
    if len(by_regularizer) <= _MAX_NAMED:
        return join_names(
            [
                f"{name} ({_where(found, cells, metric)}{unit})"
                for name, found in by_regularizer.items()
            ]
        )
    text = f"{len(by_regularizer)} of {len(regularizers)} regularizers"
    others = sorted(regularizers - set(by_regularizer))
    if len(cells) == 1:
        span = _span([float(r["mean_diff"]) for r in chosen], metric)
        return text + (f" (all but {join_names(others)})" if others else "") + f", by {span}{unit}"
    everywhere = [n for n, found in by_regularizer.items() if len(found) == len(cells)]
    named = everywhere[:_MAX_NAMED] if everywhere else list(by_regularizer)[:_MAX_NAMED]
    how = "on every dataset · model" if everywhere else "most clearly"
    return f"{text} in {plural(len(chosen), 'comparison')} ({join_names(named)} {how})"


def _where(found: list[Row], cells: set[str], metric: str) -> str:
    """A regularizer's differences: the value alone in a one-cell study, else per cell."""
    if len(cells) == 1:
        return format_diff(found[0]["mean_diff"], metric)
    if len(found) <= 2:
        return ", ".join(f"{cell_name(r)} {format_diff(r['mean_diff'], metric)}" for r in found)
    span = _span([float(r["mean_diff"]) for r in found], metric)
    if len(found) == len(cells):
        return f"on every dataset · model, {span}"
    return f"{len(found)} of {len(cells)} dataset · model pairs, {span}"


def _span(values: Sequence[float], metric: str) -> str:
    """``0.021 to 0.10`` by magnitude, or the one value."""
    low, high = min(values, key=abs), max(values, key=abs)
    if format_diff(low, metric) == format_diff(high, metric):
        return format_diff(low, metric, signed=False)
    return f"{format_diff(low, metric, signed=False)} to {format_diff(high, metric, signed=False)}"


def _resolution_sentence(rows: list[Row], metric: str, n_seeds: int, n_cells: int) -> str:
    """What these seeds can resolve on the primary metric: the median detectable difference."""
    detectable = [
        float(r["min_detectable_diff"])
        for r in rows
        if r["verdict"] == "indistinguishable" and not is_missing(r["min_detectable_diff"])
    ]
    if not detectable:
        return ""
    median = float(pd.Series(detectable).median())
    style = metric_style(metric)
    unit = " points" if style.proportion else ""
    return (
        f"With {plural(n_seeds, 'seed')} per cell, a difference in {style.label} smaller than "
        f"about {format_diff(median, metric, signed=False)}{unit} (the median smallest "
        "detectable difference) would usually go unseen, so “indistinguishable” is not "
        "“no effect”."
    )


def findings_by_effect(
    comparisons: pd.DataFrame, metric: str, baseline: str, caveat_cells: Iterable[str] = ()
) -> dict[str, Any]:
    """One metric's findings, grouped by what happened.

    ``effects`` holds the clear gains and the clear losses as table rows, one
    per regularizer and cell, largest regularizer first; ``no_effect`` and
    ``not_comparable`` are sentences. Cells named in ``caveat_cells``
    (``dataset · model``) carry a note.
    """
    rows = list(_records(comparisons[comparisons["metric"] == metric]))
    changed = [r for r in rows if r["verdict"] in ("better", "worse")]
    tests = {_test_name(r) for r in changed}
    marked = set(caveat_cells)
    shown = {
        "show_cell": len({cell_name(r) for r in rows}) > 1,
        "show_test": len(tests) > 1,
        "show_note": any(r.get("within_one_example") or cell_name(r) in marked for r in changed),
    }
    return {
        "metric": metric,
        "title": _title(metric_style(metric).label),
        **shown,
        # Regularizer, difference, interval and p, plus the optional columns.
        "columns": 4 + sum(shown.values()),
        "test_note": (
            f"Every difference listed was tested with a {tests.pop()}." if len(tests) == 1 else ""
        ),
        "effects": [
            {
                "heading": heading,
                "rows": _effect_rows(
                    [r for r in changed if r["verdict"] == verdict], metric, marked
                ),
            }
            for heading, verdict in (
                (f"Clear gains (better than {baseline})", "better"),
                (f"Clear losses (worse than {baseline})", "worse"),
            )
            if any(r["verdict"] == verdict for r in changed)
        ],
        "no_effect": _no_effect([r for r in rows if r["verdict"] == "indistinguishable"], metric),
        "not_comparable": _not_comparable(
            [r for r in rows if r["verdict"] == NOT_COMPARABLE], metric, baseline
        ),
    }


def _title(label: str) -> str:
    """A sentence's metric label as a heading: ``the train–test gap`` -> ``Train–test gap``."""
    label = label.removeprefix("the ")
    return label[0].upper() + label[1:]


def _test_name(row: Row) -> str:
    test = _TEST_NAMES.get(str(row["test"]), str(row["test"]))
    return f"{test} on {plural(int(row['n_pairs']), 'seed pair')}"


def _effect_rows(rows: list[Row], metric: str, marked: set[str]) -> list[dict[str, Any]]:
    """Table rows grouped by regularizer (largest effect first); ``first`` starts a group."""
    by_regularizer: dict[str, list[Row]] = {}
    for row in sorted(rows, key=lambda r: -abs(float(r["mean_diff"]))):
        by_regularizer.setdefault(str(row["regularizer"]), []).append(row)
    table = []
    for name, found in by_regularizer.items():
        for index, row in enumerate(found):
            notes = []
            if row.get("within_one_example"):
                notes.append(
                    f"≤ one test example ({format_diff(row['one_example'], metric, signed=False)})"
                )
            if cell_name(row) in marked:
                notes.append("still improving at the last epoch")
            table.append(
                {
                    "regularizer": name,
                    "first": index == 0,
                    "cell": cell_name(row),
                    "diff": format_diff(row["mean_diff"], metric),
                    "ci": format_interval(row["diff_ci_low"], row["diff_ci_high"], metric),
                    "p": format_p(row["p_holm"]).removeprefix("= "),
                    "test": _test_name(row),
                    "note": "; ".join(notes),
                }
            )
    return table


def _no_effect(rows: list[Row], metric: str) -> list[str]:
    """The comparisons within seed noise: how many, what these seeds could see, and what next."""
    if not rows:
        return []
    style = metric_style(metric)
    unit = " points" if style.proportion else ""
    identical = [r for r in rows if r["test"] == "identical"]
    varying = [r for r in rows if r["test"] != "identical"]
    sentences = [f"{plural(len(rows), 'comparison')} show no difference beyond seed noise."]
    if identical:
        share = "All" if len(identical) == len(rows) else f"{len(identical)} of them"
        sentences.append(
            f"{share} are identical to the baseline on every seed ({_examples(identical)})."
        )
    detectable = [
        float(r["min_detectable_diff"]) for r in varying if not is_missing(r["min_detectable_diff"])
    ]
    if detectable:
        median = float(pd.Series(detectable).median())
        sentences.append(
            f"With these seeds, the smallest difference detectable with "
            f"{float(rows[0]['power']) * 100:g}% power is typically "
            f"{format_diff(median, metric, signed=False)}{unit} (from "
            f"{_span(detectable, metric)}{unit}, growing with the seed-to-seed spread of the cell)."
        )
    tiny = [r for r in varying if r.get("within_one_example")]
    if tiny:
        sentences.append(
            f"In {len(tiny)} of them the mean difference is no larger than one test example."
        )
    sentences.append(_more_seeds(varying, metric))
    return [s for s in sentences if s]


def _examples(rows: list[Row]) -> str:
    """A few ``regularizer on cell`` names, and how many more."""
    names = [
        str(r["regularizer"]) if _single_cell(rows) else f"{r['regularizer']} on {cell_name(r)}"
        for r in rows[:_MAX_NAMED]
    ]
    more = len(rows) - len(names)
    return join_names(names) + (f" and {more} more" if more else "")


def _more_seeds(rows: list[Row], metric: str) -> str:
    """Which observed differences more seeds would likely resolve, and that the rest would not."""
    if not rows:
        return ""
    needs = sorted(
        (
            (int(r["seeds_needed"]), r)
            for r in rows
            if not is_missing(r["seeds_needed"])
            and int(r["n_pairs"]) < int(r["seeds_needed"]) <= _SEEDS_CAP
            and not r.get("within_one_example")
        ),
        key=lambda pair: pair[0],
    )
    if not needs:
        return (
            f"None of the observed differences would become detectable with up to {_SEEDS_CAP} "
            "seeds: no practically detectable effect at this size."
        )
    named = [
        f"{r['regularizer']}{'' if _single_cell(rows) else ' on ' + cell_name(r)} "
        f"(about {seeds} seeds)"
        for seeds, r in needs[:_MAX_NAMED]
    ]
    more = len(needs) - len(named)
    rest = len(rows) - len(needs)
    return (
        f"More seeds would likely resolve {join_names(named)}"
        + (f" and {more} more" if more else "")
        + (
            f"; the other {rest} show no practically detectable effect at this size "
            f"(more than {_SEEDS_CAP} seeds, or within one test example)"
            if rest
            else ""
        )
        + "."
    )


def _single_cell(rows: list[Row]) -> bool:
    return len({cell_name(r) for r in rows}) == 1


def _not_comparable(rows: list[Row], metric: str, baseline: str) -> list[str]:
    """Regularizers that could not be compared, each kind of reason in one sentence."""
    label = metric_style(metric).label
    one_seed = [r for r in rows if int(r["n_pairs"]) == 1]
    no_baseline = [r for r in rows if int(r["n_pairs"]) == 0 and int(r["n_baseline"]) == 0]
    rest = [r for r in rows if int(r["n_pairs"]) == 0 and int(r["n_baseline"]) > 0]
    no_runs = [r for r in rest if int(r["n_regularized"]) == 0]
    disjoint = [r for r in rest if int(r["n_regularized"]) > 0]
    sentences = []
    if one_seed:
        differences = join_names(
            [format_diff(r["mean_diff"], metric, unit=True) for r in one_seed[:_MAX_NAMED]]
        )
        sentences.append(
            f"Only one seed pairs {_examples(one_seed)} with {baseline} on {label} "
            f"(single-seed difference {differences}); one pair allows no test."
        )
    if no_baseline:
        cells = join_names(sorted({cell_name(r) for r in no_baseline}))
        sentences.append(
            f"Nothing can be compared with {baseline} on {label} on {cells}: "
            f"no successful {baseline} run has a value for it."
        )
    for chosen, reason in (
        (no_runs, "every run failed, diverged, is missing or lacks a value"),
        (disjoint, f"the successful runs share no seed with {baseline}'s"),
    ):
        if chosen:
            sentences.append(
                f"{_examples(chosen)} cannot be compared with {baseline} on {label}: {reason}."
            )
    return sentences


def _records(table: pd.DataFrame) -> Iterable[Row]:
    for record in table.to_dict("records"):
        yield {str(k): v for k, v in record.items()}
