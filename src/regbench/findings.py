"""The report's words about the paired comparisons: a verdict matrix, plain answers, findings.

The statistics layer (:mod:`regbench.stats`) returns a comparisons table of
numbers; this module groups its rows by what happened (clear gains, clear
losses, negligible, equivalent or inconclusive, saturated, undertrained) and
writes them as sentences. Numbers are printed through :mod:`regbench.wording`,
so tables and sentences share units.

A comparison row is a mapping with the columns of
:data:`regbench.stats.COMPARISON_COLUMNS`. A comparison one of whose runs had
not converged by the study's training protocol carries the verdict
:data:`regbench.stats.UNDERTRAINED`: it is counted and named apart, never
worded as an effect of regularization.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from regbench import stats
from regbench.config import PLATEAU
from regbench.measures import TEST_PARTS
from regbench.stats import NOT_COMPARABLE, UNDERTRAINED
from regbench.wording import (
    MINUS,
    VERDICT_STYLES,
    format_diff,
    format_interval,
    format_number,
    format_p,
    format_value,
    is_missing,
    join_names,
    metric_style,
    plural,
)

__all__ = [
    "MATRIX_SYMBOLS",
    "Cell",
    "answer_sentences",
    "cell_name",
    "findings_by_effect",
    "inert_sentences",
    "judged_sentence",
    "protocol_method",
    "protocol_sentence",
    "ranking_words",
    "reference_rows",
    "reference_sentence",
    "saturation_sentences",
    "selection_rows",
    "smallest_effect_text",
    "strength_label",
    "strength_sentences",
    "suite_summary",
    "survival_rows",
    "survival_sentence",
    "tuned_rows",
    "tuned_sentence",
    "tuned_table",
    "verdict_matrix",
    "verdict_order",
]

Row = Mapping[str, Any]

#: Symbol of each verdict in the verdict matrix and tables (legible in grayscale).
MATRIX_SYMBOLS = {verdict: style.symbol for verdict, style in VERDICT_STYLES.items()}

#: At most this many regularizers are named in one clause; beyond it, a count.
_MAX_NAMED = 3

#: How a findings row marks a difference of at most one test example per seed;
#: :func:`findings_by_effect` says so.
_ONE_EXAMPLE_MARK = "≤ 1 example"

_TEST_NAMES = {"wilcoxon": "Wilcoxon", "paired_t": "paired t-test", "identical": "no test"}


def cell_name(row: Row) -> str:
    """``dataset · model``, as the report names one cell of the grid."""
    return f"{row['dataset']} · {row['model']}"


Cell = tuple[str, str, str]


def verdict_matrix(
    comparisons: pd.DataFrame,
    metric: str,
    cells: Sequence[tuple[str, str]],
    regularizers: Sequence[str],
    undertrained: Collection[Cell] = (),
) -> list[dict[str, Any]]:
    """Rows ``dataset · model``, one entry per regularizer: the paired effect and its verdict.

    An entry is ``None`` where the combination was not run (skipped). A row is
    ``undertrained`` when its baseline's runs had not all converged by the
    training protocol (``undertrained`` cells); an entry's own verdict says
    whether its comparison was judged.
    """
    chosen = comparisons[comparisons["metric"] == metric]
    by_key = {(r["dataset"], r["model"], r["regularizer"]): r for r in _records(chosen)}
    baseline = str(chosen["baseline"].iloc[0]) if len(chosen) else ""
    rows = []
    for dataset, model in cells:
        entries: list[dict[str, Any] | None] = []
        for regularizer in regularizers:
            row = by_key.get((dataset, model, regularizer))
            entries.append(None if row is None else _matrix_entry(row, metric))
        if any(entries):
            rows.append(
                {
                    "name": f"{dataset} · {model}",
                    "undertrained": (dataset, model, baseline) in undertrained,
                    "entries": entries,
                }
            )
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
        # An exact zero is trivially within one example; italics mark a small real difference.
        "one_example": bool(row["within_one_example"]) and float(row["mean_diff"]) != 0.0,
    }


def saturation_sentences(
    saturated: pd.DataFrame,
    regularizers: Mapping[tuple[str, str], Sequence[str]],
    metrics: Sequence[str],
) -> list[str]:
    """Page one's word on metrics at their bound in every run: no evidence either way there.

    ``saturated`` is :func:`regbench.stats.saturated_cells` of the summary;
    ``regularizers`` lists each dataset · model row's regularizers (baseline
    included); ``metrics`` are the judged ones. A judged gap is named with its
    test side, whose bound makes it unable to tell the variants apart too.
    """
    gaps = {TEST_PARTS[m]: m for m in metrics if m in TEST_PARTS}
    checked = list(dict.fromkeys([m for m in metrics if m not in TEST_PARTS] + list(gaps)))
    sentences = []
    for metric in checked:
        chosen = saturated[saturated["metric"] == metric]
        style = metric_style(metric)
        for (dataset, model), found in chosen.groupby(["dataset", "model"], sort=True):
            names = [
                r for r in regularizers.get((dataset, model), []) if r in set(found["regularizer"])
            ]
            if len(names) < 2:
                continue
            bound = float(found["bound"].iloc[0])
            value = f"{bound * 100:g}%" if style.proportion else f"{bound:g}"
            everyone = len(names) == len(regularizers.get((dataset, model), []))
            who = "every variant" if everyone else join_names(names)
            also = (
                f", nor can {metric_style(gaps[metric]).label}, whose test side it is"
                if metric in gaps
                else ""
            )
            label = style.label[0].upper() + style.label[1:]
            sentences.append(
                f"{label} is {value} in every run of {who} on {dataset} · {model}: this test "
                f"set cannot tell {'the variants' if everyone else 'them'} apart on it{also}, "
                "so no verdict there is evidence either way."
            )
    return sentences


def verdict_order(verdicts: Iterable[str]) -> list[str]:
    """The verdicts that occur, in :data:`regbench.wording.VERDICT_STYLES`' order, others last."""
    present = set(verdicts)
    known = [v for v in VERDICT_STYLES if v in present]
    return [*known, *sorted(present - set(known))]


def suite_summary(
    comparisons: pd.DataFrame, metric: str, regularizers: Sequence[str]
) -> dict[str, Any]:
    """Per regularizer, across every dataset · model: how many comparisons got each verdict.

    The rows are the regularizers with the most clear gains first (then the
    fewest losses, then the study's order); each gives its verdict counts
    (undertrained among them: the comparisons resting on unconverged runs) and
    the median paired difference with its range.
    """
    chosen = comparisons[comparisons["metric"] == metric]
    verdicts = verdict_order(chosen["verdict"].astype(str))
    rows = []
    for position, regularizer in enumerate(regularizers):
        found = list(_records(chosen[chosen["regularizer"] == regularizer]))
        if not found:
            continue
        counts = {v: sum(str(r["verdict"]) == v for r in found) for v in verdicts}
        diffs = pd.Series([r["mean_diff"] for r in found], dtype=float).dropna()
        rows.append(
            (
                -counts.get("better", 0),
                counts.get("worse", 0),
                position,
                {
                    "name": regularizer,
                    "counts": [_count(counts[v], v) for v in verdicts],
                    "of": len(found),
                    "median": format_diff(diffs.median() if len(diffs) else None, metric),
                    "range": _range(diffs, metric),
                },
            )
        )
    rows.sort(key=lambda item: item[:3])
    return {
        "verdicts": [{"symbol": MATRIX_SYMBOLS.get(v, "?"), "name": v} for v in verdicts],
        "rows": [row for *_, row in rows],
        # Every regularizer compared on every row needs no column to say so: the caption does.
        "show_of": len({row["of"] for *_, row in rows}) > 1,
    }


def _count(count: int, verdict: str) -> dict[str, str]:
    """A count of one verdict as a table cell: blank where none, in the verdict's colours."""
    return (
        {"text": str(count), "verdict": verdict.replace(" ", "-")}
        if count
        else {
            "text": "",
            "verdict": "",
        }
    )


def _range(diffs: pd.Series, metric: str) -> str:
    """``-0.4 to +1.2``: the lowest and highest of some differences."""
    if diffs.empty:
        return "–"
    return format_interval(diffs.min(), diffs.max(), metric)


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
    """What changed ``metric``: regularizers better, worse, and what the rest show."""
    style = metric_style(metric)
    tested = [r for r in rows if r["verdict"] not in (NOT_COMPARABLE, UNDERTRAINED)]
    withheld = sum(r["verdict"] == UNDERTRAINED for r in rows)
    unjudged = f" ({withheld} more not judged: undertrained)" if withheld else ""
    if not tested:
        if not withheld:
            return ""
        small = sum(r.get("practical") == "negligible" for r in rows)
        which = f"{small} of them {'is' if small == 1 else 'are'}"
        sizes = (
            f"; {'it is' if withheld == 1 else which} smaller than the smallest effect that "
            "matters so far"
            if small
            else ""
        )
        return (
            f"No comparison on {style.label} could be judged: "
            f"{'the one' if withheld == 1 else f'all {withheld}'} with {baseline} "
            f"{'rests' if withheld == 1 else 'rest'} on runs that had not converged "
            f"({UNDERTRAINED}){sizes}."
        )
    if all(r["verdict"] == "saturated" for r in tested):
        # Nothing to say but that the metric is at its bound: saturation_sentences says so.
        return ""
    better = [r for r in tested if r["verdict"] == "better"]
    worse = [r for r in tested if r["verdict"] == "worse"]
    underfit = [r for r in tested if r["verdict"] == "underfitting"]
    label = style.label[0].upper() + style.label[1:]
    if not better and not worse and not underfit:
        return (
            f"No regularizer changes {style.label} by the smallest effect of interest "
            f"({_smallest(tested, metric)}): {_rest_clause(tested, other=False)}"
            f"{unjudged}."
        )
    clauses = []
    if better:
        # A smaller gap with a test score no worse is what "less overfitting" means.
        reading = (
            " (less overfitting: the test score did not get worse)" if metric in TEST_PARTS else ""
        )
        clauses.append(
            f"{style.better} than with {baseline}{reading} for {_who(better, rows, metric)}"
        )
    if worse:
        lead = "" if better else f" than with {baseline}"
        clauses.append(f"{style.worse}{lead} for {_who(worse, rows, metric)}")
    if underfit:
        clauses.append(
            f"{style.better} but with a worse test score, which is underfitting rather than "
            f"less overfitting, for {_who(underfit, rows, metric)}"
        )
    rest = [r for r in tested if r not in better + worse + underfit]
    tail = f"; {_rest_clause(rest, other=True)}" if rest else ""
    return f"{label} is {'; '.join(clauses)}{tail}{unjudged}."


#: How a sentence counts the comparisons of each verdict that is not a clear change.
_REST_WORDS = {
    "negligible": "negligible (significant, but smaller than the smallest effect)",
    "equivalent": "equivalent (shown within the smallest effect)",
    "inconclusive": "inconclusive (neither a difference nor equivalence shown)",
    "saturated": "saturated (every run at the metric's bound)",
    "underfitting": "underfitting",
    "better": "better",
    "worse": "worse",
}


def _rest_clause(rows: list[Row], other: bool) -> str:
    """``of the other 7 comparisons, 2 are negligible ... and 2 ...``, counted by verdict."""
    counts = [
        (sum(r["verdict"] == verdict for r in rows), words)
        for verdict, words in _REST_WORDS.items()
    ]
    parts = [f"{count} {'is' if count == 1 else 'are'} {words}" for count, words in counts if count]
    n = len(rows)
    if len(parts) == 1:
        only = parts[0].split(" ", 2)[2]
        if other:
            return f"the other {'comparison is' if n == 1 else f'{n} comparisons are'} {only}"
        many = "both comparisons are" if n == 2 else f"all {n} comparisons are"
        return f"{'the one comparison is' if n == 1 else many} {only}"
    noun = "comparison" if n == 1 else "comparisons"
    return f"of {'the other ' if other else ''}{n} {noun}, {join_names(parts)}"


def smallest_effect_text(comparisons: pd.DataFrame, metrics: Sequence[str]) -> str:
    """``test accuracy ±2.6 points (default), test loss ±0.01 (declared)``, per judged metric."""
    parts = []
    for metric in metrics:
        rows = list(_records(comparisons[comparisons["metric"] == metric]))
        if not rows:
            continue
        sources = sorted({str(r["smallest_effect_source"]) for r in rows})
        parts.append(
            f"{metric_style(metric).label} {_smallest(rows, metric)} ({'/'.join(sources)})"
        )
    return join_names(parts) if parts else "none"


def _smallest(rows: list[Row], metric: str, sign: str = "±") -> str:
    """The smallest effect of interest the rows were judged by: ``±1.0 points`` or a range."""
    values = sorted(
        {float(r["smallest_effect"]) for r in rows if not is_missing(r["smallest_effect"])}
    )
    if not values:
        return "none set"
    unit = " points" if metric_style(metric).proportion else ""
    texts = [format_diff(v, metric, signed=False) for v in values]
    if len(set(texts)) == 1:
        return f"{sign}{texts[0]}{unit}"
    return f"{sign}{texts[0]} to {texts[-1]}{unit}"


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
    if everywhere:
        named = f"{join_names(everywhere[:_MAX_NAMED])} on every dataset · model"
    else:
        # The largest differences, each with where it was seen: a name alone could
        # appear among the gains and the losses of one metric, on different datasets.
        largest = [found[0] for found in list(by_regularizer.values())[:_MAX_NAMED]]
        named = "most clearly " + join_names(
            [f"{r['regularizer']} on {cell_name(r)}" for r in largest]
        )
    return f"{text} in {plural(len(chosen), 'comparison')} ({named})"


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
    detectable = _detectable([r for r in rows if r["verdict"] == "inconclusive"])
    if not detectable:
        return ""
    median = float(pd.Series(detectable).median())
    style = metric_style(metric)
    unit = " points" if style.proportion else ""
    return (
        f"With {plural(n_seeds, 'seed')} per cell, a difference in {style.label} smaller than "
        f"about {format_diff(median, metric, signed=False)}{unit} (the median smallest "
        "detectable difference) would usually go unseen, so “inconclusive” is not "
        "“no effect”."
    )


def findings_by_effect(comparisons: pd.DataFrame, metric: str, baseline: str) -> dict[str, Any]:
    """One metric's findings, grouped by what happened.

    ``effects`` holds the clear gains and the clear losses as table rows, one
    per regularizer and cell, largest regularizer first; ``no_effect``,
    ``undertrained`` (comparisons not judged) and ``not_comparable`` are sentences.
    """
    rows = list(_records(comparisons[comparisons["metric"] == metric]))
    changed = [r for r in rows if r["verdict"] in _EFFECT_HEADINGS]
    tests = {_test_name(r) for r in changed}
    shown = {
        "show_cell": len({cell_name(r) for r in rows}) > 1,
        "show_test": len(tests) > 1,
        "show_note": any(r["within_one_example"] for r in changed),
    }
    return {
        "metric": metric,
        "title": _title(metric_style(metric).label),
        **shown,
        # Regularizer, difference, interval and p, plus the optional columns.
        "columns": 4 + sum(shown.values()),
        "test_note": _table_note(tests, changed),
        "effects": [
            {
                "heading": heading,
                "rows": _effect_rows([r for r in changed if r["verdict"] == verdict], metric),
            }
            for verdict, heading in (
                (v, h.format(baseline=baseline, smallest=_smallest(rows, metric, "")))
                for v, h in _effect_headings(metric).items()
            )
            if any(r["verdict"] == verdict for r in changed)
        ],
        "no_effect": _no_effect(
            [r for r in rows if r["verdict"] in ("equivalent", "inconclusive")], metric
        ),
        "saturated": _saturated_sentence([r for r in rows if r["verdict"] == "saturated"], metric),
        "undertrained": _undertrained([r for r in rows if r["verdict"] == UNDERTRAINED], metric),
        "not_comparable": _not_comparable(
            [r for r in rows if r["verdict"] == NOT_COMPARABLE], metric, baseline
        ),
    }


#: The findings tables, one per verdict that is a difference, with their headings.
_EFFECT_HEADINGS = {
    "better": "Clear gains (better than {baseline} by at least {smallest})",
    "worse": "Clear losses (worse than {baseline} by at least {smallest})",
    "underfitting": "Smaller gap, worse test score (underfitting, not less overfitting)",
    "negligible": "Significant but negligible (smaller than {smallest})",
}


def _effect_headings(metric: str) -> dict[str, str]:
    """The findings tables' headings; a gap's gains read as less overfitting."""
    if metric not in TEST_PARTS:
        return _EFFECT_HEADINGS
    return {
        **_EFFECT_HEADINGS,
        "better": "Less overfitting (gap smaller than {baseline}'s by at least {smallest}, "
        "test score not worse)",
        "worse": "More overfitting (gap larger than {baseline}'s by at least {smallest})",
    }


def _saturated_sentence(rows: list[Row], metric: str) -> list[str]:
    """The comparisons whose cells all sit at the metric's bound: no evidence either way."""
    if not rows:
        return []
    label = metric_style(metric).label
    return [
        f"{_examples(rows)} and the baseline score at the bound of {label} in every run "
        f"({plural(len(rows), 'comparison')}): this test set cannot tell them apart on it, "
        "so these comparisons are no evidence either way."
    ]


def _table_note(tests: set[str], changed: list[Row]) -> str:
    """The sentence under a metric's effect tables: the test used and what the notes mean."""
    parts = (
        [f"Every difference listed was tested with a {next(iter(tests))}."]
        if len(tests) == 1
        else []
    )
    if any(r["within_one_example"] for r in changed):
        parts.append(f"{_ONE_EXAMPLE_MARK}: at most one test example per seed.")
    return " ".join(parts)


def _title(label: str) -> str:
    """A sentence's metric label as a heading: ``the train–test gap`` -> ``Train–test gap``."""
    label = label.removeprefix("the ")
    return label[0].upper() + label[1:]


def _test_name(row: Row) -> str:
    test = _TEST_NAMES.get(str(row["test"]), str(row["test"]))
    return f"{test} on {plural(int(row['n_pairs']), 'seed pair')}"


def _effect_rows(rows: list[Row], metric: str) -> list[dict[str, Any]]:
    """Table rows grouped by regularizer (largest effect first); ``first`` starts a group."""
    by_regularizer: dict[str, list[Row]] = {}
    for row in sorted(rows, key=lambda r: -abs(float(r["mean_diff"]))):
        by_regularizer.setdefault(str(row["regularizer"]), []).append(row)
    table = []
    for name, found in by_regularizer.items():
        for index, row in enumerate(found):
            notes = [_ONE_EXAMPLE_MARK] if row["within_one_example"] else []
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
    """The comparisons without a significant difference: equivalent or inconclusive, and why."""
    if not rows:
        return []
    style = metric_style(metric)
    unit = " points" if style.proportion else ""
    identical = [r for r in rows if r["test"] == "identical"]
    varying = [r for r in rows if r["test"] != "identical"]
    equivalent = [r for r in rows if r["verdict"] == "equivalent"]
    inconclusive = [r for r in rows if r["verdict"] == "inconclusive"]
    verb = "shows" if len(rows) == 1 else "show"
    sentences = [f"{plural(len(rows), 'comparison')} {verb} no significant difference."]
    if equivalent:
        sentences.append(
            f"{_count_of(equivalent, rows)} shown equivalent: two one-sided tests put the "
            f"difference within {_smallest(equivalent, metric)} ({_examples(equivalent)})."
        )
    if inconclusive:
        sentences.append(
            f"{_count_of(inconclusive, rows)} inconclusive: the interval reaches beyond "
            f"{_smallest(inconclusive, metric)}, so these seeds show neither a difference "
            f"nor its absence ({_examples(inconclusive)})."
        )
    if identical:
        share = "All" if len(identical) == len(rows) else f"{len(identical)} of them"
        verb = "is" if len(identical) == 1 and share != "All" else "are"
        sentences.append(
            f"{share} {verb} identical to the baseline on every seed ({_examples(identical)})."
        )
    detectable = _detectable(varying)
    if detectable:
        median = float(pd.Series(detectable).median())
        sentences.append(
            f"With these seeds, the smallest difference detectable with "
            f"{float(rows[0]['power']) * 100:g}% power at Holm's level is typically "
            f"{format_diff(median, metric, signed=False)}{unit} (from "
            f"{_span(detectable, metric)}{unit}, growing with the seed-to-seed spread of the cell)."
        )
    tiny = [r for r in varying if r["within_one_example"]]
    if tiny:
        sentences.append(
            f"In {len(tiny)} of them the mean difference is at most one test example per seed"
            f" ({_examples(tiny)})."
        )
    sentences.append(_more_seeds([r for r in varying if r in inconclusive], metric))
    return [s for s in sentences if s]


def _count_of(chosen: list[Row], rows: list[Row]) -> str:
    """``All 3 are``, ``1 of them is``, ``2 of them are``."""
    if len(chosen) == len(rows):
        return "It is" if len(rows) == 1 else f"All {len(rows)} are"
    return f"{len(chosen)} of them {'is' if len(chosen) == 1 else 'are'}"


def _undertrained(rows: list[Row], metric: str) -> list[str]:
    """The comparisons not judged because a run of the pair had not converged."""
    if not rows:
        return []
    unit = " points" if metric_style(metric).proportion else ""
    span = _span([float(r["mean_diff"]) for r in rows], metric)
    verb = "rests" if len(rows) == 1 else "rest"
    sentences = [
        f"{plural(len(rows), 'comparison')} {verb} on runs that had not converged by the "
        f"training protocol ({_examples(rows)}), so no verdict is given: their differences "
        f"({span}{unit} in size) may be ones of training length, not of regularization. "
        "A larger epoch budget (training.epochs) would let them be judged."
    ]
    small = [r for r in rows if r.get("practical") == "negligible"]
    if small:
        margins = sorted({float(r["smallest_effect"]) for r in small})
        margin = _span(margins, metric)
        if len(rows) == 1:
            share = "It is"
        elif len(small) == len(rows):
            share = "All are"
        else:
            share = f"{len(small)} of them {'is' if len(small) == 1 else 'are'}"
        sentences.append(
            f"{share}, at this training length, smaller than the smallest effect that "
            f"matters ({margin}{unit}): negligible in size, though not judged."
        )
    return sentences


def _detectable(rows: list[Row]) -> list[float]:
    """The smallest detectable differences of comparisons whose differences vary.

    Runs identical to the baseline on every seed have no spread, so their
    detectable difference is zero and says nothing about what the seeds resolve.
    """
    return [
        float(r["min_detectable_diff"])
        for r in rows
        if r["test"] != "identical" and not is_missing(r["min_detectable_diff"])
    ]


def _examples(rows: list[Row]) -> str:
    """A few ``regularizer on cell`` names, and how many more."""
    names = [
        str(r["regularizer"]) if _single_cell(rows) else f"{r['regularizer']} on {cell_name(r)}"
        for r in rows[:_MAX_NAMED]
    ]
    more = len(rows) - len(names)
    return join_names(names) + (f" and {more} more" if more else "")


def _more_seeds(rows: list[Row], metric: str) -> str:
    """Which observed differences more seeds would likely resolve, and that the rest would not.

    ``seeds_needed`` is empty beyond the statistics' seed cap (``beyond_seed_cap``);
    a difference of at most one test example is not worth more seeds either.
    """
    if not rows:
        return ""
    cap = int(rows[0]["seed_cap"])
    needs = sorted(
        (
            (int(r["seeds_needed"]), r)
            for r in rows
            if not is_missing(r["seeds_needed"])
            and int(r["seeds_needed"]) > int(r["n_pairs"])
            and not r["within_one_example"]
        ),
        key=lambda pair: pair[0],
    )
    rest = len(rows) - len(needs)
    reason = (
        f"no practically detectable effect at this size (more than {cap} seeds needed, "
        "or at most one test example per seed)"
    )
    if not needs:
        return f"Up to {cap} seeds would resolve not one of them: {reason}."
    named = [
        f"{r['regularizer']}{'' if _single_cell(rows) else ' on ' + cell_name(r)} "
        f"(about {seeds} seeds)"
        for seeds, r in needs[:_MAX_NAMED]
    ]
    more = len(needs) - len(named)
    return (
        f"More seeds would likely resolve {join_names(named)}"
        + (f" and {more} more" if more else "")
        + (f"; the other {'one shows' if rest == 1 else f'{rest} show'} {reason}" if rest else "")
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


def ranking_words(test: Row, ranks: pd.DataFrame) -> dict[str, str]:
    """The cross-dataset tests of one model and metric, and what they could detect.

    ``test`` is a row of ``ranking_tests.csv``; ``ranks`` its regularizers'
    average ranks (``rankings.csv``), best first.
    """
    if is_missing(test["friedman_statistic"]):
        return {"test": "", "power": str(test["note"] or "")}
    words = (
        f"Friedman χ² = {format_number(test['friedman_statistic'], 2)}, "
        f"p {format_p(test['friedman_p'])}; Iman–Davenport F({int(test['iman_davenport_df1'])}, "
        f"{int(test['iman_davenport_df2'])}) = {format_number(test['iman_davenport_f'], 2)}, "
        f"p {format_p(test['iman_davenport_p'])}; Nemenyi critical difference "
        f"{format_number(test['critical_difference'], 2)} ranks at level {float(test['alpha']):g}."
    )
    n, k, cd = int(test["n_datasets"]), int(test["n_regularizers"]), test["critical_difference"]
    best, worst = str(ranks.iloc[0]["regularizer"]), str(ranks.iloc[-1]["regularizer"])
    largest = f"{format_number(test['max_rank_difference'], 2)} ({best} against {worst})"
    if not bool(test["cd_reachable"]):
        power = (
            f"With {n} datasets no two of these {k} regularizers can be told apart: the "
            f"critical difference, {format_number(cd, 2)}, exceeds the largest possible "
            f"difference in average rank, {k - 1}."
        )
    elif float(test["max_rank_difference"]) >= float(cd):
        power = (
            f"The largest difference in average rank, {largest}, reaches the critical "
            f"difference: across these {n} datasets the two differ."
        )
    else:
        needed = test["datasets_needed"]
        more = (
            f"; about {int(needed)} datasets would be needed for a difference that large to count"
            if not is_missing(needed)
            else ""
        )
        power = (
            f"Across {n} datasets, two regularizers must differ by {format_number(cd, 2)} in "
            f"average rank to be told apart; the largest observed difference, {largest}, "
            f"falls short{more}."
        )
    return {"test": words, "power": power}


def reference_rows(references: pd.DataFrame) -> list[dict[str, str]]:
    """Each published value beside this study's prediction interval for its cell, as table rows."""
    rows = []
    for row in _records(references):
        metric = str(row["metric"])
        interval = (
            "–"
            if is_missing(row["pi_low"])
            else f"{format_value(row['pi_low'], metric)} to {format_value(row['pi_high'], metric)}"
        )
        rows.append(
            {
                "regularizer": str(row["regularizer"]),
                "cell": cell_name(row),
                "metric": metric_style(metric).heading,
                "reference": format_value(row["reference"], metric),
                "source": str(row["source"]),
                "mean": f"{format_value(row['mean'], metric)} (n = {int(row['n'])})",
                "interval": interval,
                "verdict": str(row["verdict"]),
            }
        )
    return rows


def reference_sentence(references: pd.DataFrame) -> str:
    """How many published values this study's runs reproduce, for page one; empty without any."""
    if references.empty:
        return ""
    level = (
        f"{float(references['prediction_level'].dropna().iloc[0]) * 100:g}%"
        if references["prediction_level"].notna().any()
        else ""
    )
    outside = [r for r in _records(references) if r["verdict"] == "outside"]
    consistent = int((references["verdict"] == "consistent").sum())
    total = len(references)
    text = (
        f"Of {plural(total, 'published value')}, {consistent} "
        f"{'lies' if consistent == 1 else 'lie'} inside this study's {level} prediction "
        "interval for one run"
    )
    if outside:
        named = [f"{r['regularizer']} {metric_style(str(r['metric'])).label}" for r in outside]
        text += f"; {len(outside)} outside ({_shortlist(named)})"
    untested = total - consistent - len(outside)
    if untested:
        text += f"; {untested} could not be placed (fewer than two runs)"
    widths = _interval_widths([r for r in _records(references) if r["verdict"] == "consistent"])
    if widths:
        text += (
            f". Inside is weak evidence where the interval is wide: one run's interval spans "
            f"{widths}"
        )
    return text + "."


def _interval_widths(rows: list[Row]) -> str:
    """``3.1 to 5.2 points of test accuracy and 0.04 of test objective``: widths per metric."""
    parts = []
    for metric in dict.fromkeys(str(r["metric"]) for r in rows):
        widths = [float(r["pi_high"]) - float(r["pi_low"]) for r in rows if r["metric"] == metric]
        unit = " points" if metric_style(metric).proportion else ""
        parts.append(f"{_span(widths, metric)}{unit} of {metric_style(metric).label}")
    return join_names(parts)


def _shortlist(names: Sequence[str]) -> str:
    shown = list(names[:_MAX_NAMED])
    more = len(names) - len(shown)
    return join_names(shown + ([f"{more} more"] if more else []))


def _records(table: pd.DataFrame) -> Iterable[Row]:
    for record in table.to_dict("records"):
        yield {str(k): v for k, v in record.items()}


# --------------------------------------------------------------------------- sweeps

#: How a variant's verdict against its family's best reads, singular and plural.
_AGAINST_BEST = {
    "equivalent": ("is equivalent to it", "are equivalent to it"),
    "inconclusive": ("cannot be told apart from it", "cannot be told apart from it"),
    "negligible": ("differs from it negligibly", "differ from it negligibly"),
    "saturated": ("ties with it at the metric's bound", "tie with it at the metric's bound"),
    "worse": ("is worse", "are worse"),
    "underfitting": (
        "has a smaller gap but a worse test score",
        "have a smaller gap but worse test scores",
    ),
    "better": ("is better on the seeds both ran", "are better on the seeds both ran"),
    NOT_COMPARABLE: (
        "could not be compared with it (fewer than two seed pairs)",
        "could not be compared with it (fewer than two seed pairs)",
    ),
}


def strength_label(family: Mapping[str, Any], variant: str) -> str:
    """A variant's strength as the report names it: ``0.001``, or ``l1 0.01, l2 0.001``."""
    values: Mapping[str, float] = family["values"][variant]
    if len(values) == 1:
        return f"{next(iter(values.values())):g}"
    keys = [path.split(".", 1)[1] for path in values]
    return ", ".join(
        f"{key if keys.count(key) == 1 else path} {value:g}"
        for path, key, value in zip(values, keys, values.values(), strict=True)
    )


def strength_sentences(
    dose: pd.DataFrame, metric: str, families: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, str]]:
    """Per family and dataset · model: its best strength on ``metric``, and what ties with it.

    ``dose`` is ``dose_response.csv``. The best strength is named with its
    mean and confidence interval; the other strengths are grouped by their
    paired verdict against it, a one-key family's neighbours first, so the
    reader sees which strengths these seeds cannot tell apart from the best.
    """
    chosen = dose[dose["metric"] == metric]
    found = []
    for (name, dataset, model), rows in chosen.groupby(["family", "dataset", "model"], sort=False):
        family = families[str(name)]
        found.append(
            {
                "family": str(name),
                "cell": f"{dataset} · {model}",
                "sentence": _strength_sentence(rows.sort_values("position"), family, metric),
            }
        )
    return found


def _strength_sentence(rows: pd.DataFrame, family: Mapping[str, Any], metric: str) -> str:
    """The best strength with its interval, then the others by verdict against it."""
    best = rows[rows["best"].astype(bool)]
    style = metric_style(metric)
    if best.empty:
        return f"No strength has a successful run with a value for {style.label}."
    top = best.iloc[0]
    swept = family["swept"]
    what = swept[0] if len(swept) == 1 else "setting"
    interval = _value_interval(top["ci_low"], top["ci_high"], metric)
    lead = (
        f"Best {what} by {style.label}: {strength_label(family, str(top['variant']))} "
        f"({format_value(top['mean'], metric)}{'%' if style.proportion else ''}"
        f"{f', {interval}' if interval else ''})."
    )
    others = rows[~rows["best"].astype(bool)]
    if others.empty:
        return lead
    near = others[others["neighbour"].astype(bool)]
    rest = others[~others["neighbour"].astype(bool)]
    clauses = []
    if len(near):
        clauses.append(
            _against_best_clauses(near, family, "Its neighbour" + ("s" if len(near) > 1 else ""))
        )
    if len(rest):
        # Always led by words: a clause that began with a setting would capitalize its key.
        clauses.append(_against_best_clauses(rest, family, "Of the others,"))
    return " ".join([lead, *(f"{c}." for c in clauses)])


def _against_best_clauses(rows: pd.DataFrame, family: Mapping[str, Any], prefix: str) -> str:
    """``0.005 and 0.2 cannot be told apart from it; 0.9 is worse``, led by ``prefix``."""
    clauses = []
    for verdict, (one, many) in _AGAINST_BEST.items():
        chosen = [str(v) for v in rows.loc[rows["vs_best"] == verdict, "variant"]]
        if not chosen:
            continue
        labels = [strength_label(family, v) for v in chosen]
        names = join_names(labels) if len(labels) <= _MAX_NAMED else f"{len(labels)} strengths"
        clauses.append(f"{names} {one if len(labels) == 1 else many}")
    text = "; ".join(clauses)
    return f"{prefix} {text}".strip() if prefix else text[:1].upper() + text[1:]


def _value_interval(low: Any, high: Any, metric: str) -> str:
    """A value's confidence interval as ``CI 73.9 to 76.6``; empty where there is none."""
    if is_missing(low) or is_missing(high):
        return ""
    return f"CI {format_value(low, metric)} to {format_value(high, metric)}"


def selection_rows(
    counts: pd.DataFrame, families: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, str]]:
    """Per family and dataset · model: how often the tuning chose each strength, as a line.

    ``counts`` is :func:`regbench.sweeps.selection_counts`.
    """
    rows = []
    for (name, dataset, model), chosen in counts.groupby(
        ["family", "dataset", "model"], sort=False
    ):
        family = families[str(name)]
        n_seeds = int(chosen["n_seeds"].iloc[0])
        rows.append(
            {
                "family": str(name),
                "cell": f"{dataset} · {model}",
                "counts": ", ".join(
                    f"{strength_label(family, str(r.variant))}: {int(r.chosen)}"
                    for r in chosen.sort_values("position").itertuples()
                ),
                "seeds": str(n_seeds),
            }
        )
    return rows


def tuned_rows(tuned: pd.DataFrame, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """The tuned comparisons as table rows, per judged metric: who minus whom, by how much.

    The metric is named on the first row of its group only (``first``).
    """
    rows = []
    for metric in metrics:
        for index, row in enumerate(_records(tuned[tuned["metric"] == metric])):
            verdict = str(row["verdict"])
            rows.append(
                {
                    # The metric heads its group of rows, as the findings tables do.
                    "metric": metric_style(metric).heading if index == 0 else "",
                    "first": index == 0,
                    "cell": cell_name(row),
                    "comparison": f"{row['regularizer']} {MINUS} {row['baseline']}",
                    "diff": format_diff(row["mean_diff"], metric),
                    "ci": format_interval(row["diff_ci_low"], row["diff_ci_high"], metric),
                    "p": format_p(row["p_holm"]).removeprefix("= "),
                    "verdict": f"{MATRIX_SYMBOLS.get(verdict, '?')} {verdict}",
                    "pairs": str(int(row["n_pairs"])),
                }
            )
    return rows


def tuned_sentence(tuned: pd.DataFrame, metric: str, baseline: str) -> str:
    """Page one's sentence on the sweeps at their best: each against the baseline and each other."""
    chosen = list(_records(tuned[tuned["metric"] == metric]))
    if not chosen:
        return ""
    style = metric_style(metric)
    unit = " points" if style.proportion else ""
    single = len({cell_name(r) for r in chosen}) == 1
    clauses = []
    for (reference, family), rows in _by_pair(chosen).items():
        if not single:
            counts = [sum(r["verdict"] == v for r in rows) for v in ("better", "worse")]
            clauses.append(
                f"{family} against {reference}: {style.better} in {counts[0]}, {style.worse} in "
                f"{counts[1]} of {plural(len(rows), 'dataset · model pair')}"
            )
            continue
        row = rows[0]
        if row["verdict"] in ("better", "worse"):
            comparative = style.better if row["verdict"] == "better" else style.worse
            difference = format_diff(row["mean_diff"], metric)
            clauses.append(f"{family} is {comparative} than {reference} ({difference}{unit})")
        elif row["verdict"] == "equivalent":
            clauses.append(f"{family} and {reference} are equivalent")
        elif row["verdict"] == "negligible":
            clauses.append(f"{family} and {reference} differ negligibly")
        else:
            clauses.append(f"{family} and {reference} cannot be told apart")
    return (
        f"With each sweep at the strength validation data chose per seed, on {style.label}: "
        + "; ".join(clauses)
        + "."
    )


def tuned_table(tuned: pd.DataFrame, metric: str) -> dict[str, Any]:
    """Page one's table of the tuned sweeps over several dataset · model cells.

    One row per comparison (a family against the baseline or another family),
    its verdict counts over the cells, and the median difference.
    """
    chosen = list(_records(tuned[tuned["metric"] == metric]))
    verdicts = verdict_order(str(r["verdict"]) for r in chosen)
    rows = []
    for (reference, family), found in _by_pair(chosen).items():
        diffs = pd.Series([r["mean_diff"] for r in found], dtype=float).dropna()
        rows.append(
            {
                "comparison": f"{family} {MINUS} {reference}",
                "counts": [_count(sum(str(r["verdict"]) == v for r in found), v) for v in verdicts],
                "of": str(len(found)),
                "median": format_diff(diffs.median() if len(diffs) else None, metric),
            }
        )
    return {
        "verdicts": [{"symbol": MATRIX_SYMBOLS.get(v, "?"), "name": v} for v in verdicts],
        "rows": rows,
    }


def _by_pair(rows: Sequence[Row]) -> dict[tuple[str, str], list[Row]]:
    pairs: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        pairs.setdefault((str(row["baseline"]), str(row["regularizer"])), []).append(row)
    return pairs


# --------------------------------------------------------------------------- split survival


def _survival_why(row: Row) -> str:
    """Why a verdict changed with a split per seed, or what held; with any driving seed."""
    metric = str(row["metric"])
    unit = " points" if metric_style(metric).proportion else ""
    before, after = (format_diff(row[f"mean_diff_{w}"], metric) for w in ("fixed", "varied"))
    shift = f"{before} → {after}{unit}"
    if row["verdict_fixed"] == "saturated":
        why = (
            f"with one split every run sat at the bound of {metric_style(metric).label}, so "
            "that verdict was no evidence; a split per seed gives a test set that can tell"
        )
    elif bool(row["moved"]):
        why = f"the estimate moved ({shift}, beyond both intervals' joint uncertainty)"
    elif is_missing(row["sd_diff_ratio"]):
        why = f"the estimate did not move ({shift}); the paired differences now vary"
    elif float(row["sd_diff_ratio"]) == 0.0:
        why = f"the estimate did not move ({shift}); every seed now gives the same difference"
    else:
        ratio = float(row["sd_diff_ratio"])
        change = "grew" if ratio > 1.0 else "shrank to"
        why = (
            f"the estimate did not move ({shift}); the paired sd {change} "
            f"{format_number(ratio, 1 if ratio > 1.0 else 2)}×"
        )
    driver = _driver_text(row, "varied")
    return f"{why}; {driver}" if driver else why


def _driver_text(row: Row, way: str) -> str:
    """``seed 3 drives the mean (per seed 0: -2.3, ...; without it -3.1 points)``, or empty."""
    seed = row[f"driving_seed_{way}"]
    if seed is None or is_missing(seed):
        return ""
    metric = str(row["metric"])
    unit = " points" if metric_style(metric).proportion else ""
    per_seed = ", ".join(
        f"{int(s)}: {format_diff(d, metric, compact=True)}" for s, d in row[f"seed_diffs_{way}"]
    )
    without = format_diff(row[f"without_driver_{way}"], metric)
    return (
        f"seed {int(seed)} drives the mean, its difference far outside the others' "
        f"(per seed {per_seed}; without it {without}{unit})"
    )


def survival_rows(survival: pd.DataFrame) -> list[dict[str, str]]:
    """Each comparison of a dataset run both ways as a table row: both verdicts and why."""
    rows = []
    for row in _records(survival):
        metric = str(row["metric"])
        ways = {}
        for way in ("fixed", "varied"):
            verdict = str(row[f"verdict_{way}"])
            interval = format_interval(
                row[f"diff_ci_low_{way}"], row[f"diff_ci_high_{way}"], metric
            )
            ways[way] = (
                f"{MATRIX_SYMBOLS.get(verdict, '?')} {verdict} "
                f"{format_diff(row[f'mean_diff_{way}'], metric)} [{interval}]"
            )
        rows.append(
            {
                "comparison": f"{row['regularizer']} · {metric_style(metric).label}",
                "cell": f"{row['dataset']} / {row['fixed_dataset']} · {row['model']}",
                "fixed": ways["fixed"],
                "varied": ways["varied"],
                "survives": "yes" if bool(row["survives"]) else "no",
                "why": _survival_why(row),
            }
        )
    return rows


def survival_sentence(survival: pd.DataFrame) -> str:
    """Page one: how many conclusions survive a split per seed, and the changed ones named."""
    if survival.empty:
        return ""
    rows = list(_records(survival))
    kept = sum(bool(r["survives"]) for r in rows)
    # Changes the bound forced say least, so the others are named first.
    changed = sorted(
        (r for r in rows if not bool(r["survives"])),
        key=lambda r: r["verdict_fixed"] == "saturated",
    )
    text = (
        f"With a split per seed, the verdict holds for {kept} of {plural(len(rows), 'comparison')}"
    )
    if not changed:
        return text + "."
    named = [
        f"{r['regularizer']} on {metric_style(str(r['metric'])).label} "
        f"({r['verdict_fixed']} → {r['verdict_varied']}: {_survival_why(r)})"
        for r in changed[:2]
    ]
    more = len(changed) - len(named)
    tail = f" and {more} more (see What the split alone moves)" if more else ""
    return f"{text}; changed: {'; '.join(named)}{tail}."


def _by_more_than(training: Mapping[str, Any]) -> str:
    """`` by more than 0.001`` where the plateau protocol asks for a least improvement."""
    least = float(training.get("min_delta", 0.0))
    return f" by more than {least:g}" if least else ""


def protocol_sentence(training: Mapping[str, Any]) -> str:
    """The study's training protocol in one line, as page one leads with it."""
    epochs = int(training["epochs"])
    if training["protocol"] == PLATEAU:
        return (
            f"Protocol: each seed trains until its validation loss has not improved"
            f"{_by_more_than(training)} for "
            f"{training['patience']} epochs (at most {epochs}) and "
            "is tested with the weights of its best validation epoch; the same rule for the "
            "baseline and every variant."
        )
    return (
        f"Protocol: every seed trains a fixed {plural(epochs, 'epoch')} and is tested with its "
        "last weights; a run still improving at its end has not converged."
    )


def judged_sentence(
    comparisons: pd.DataFrame, adequacy: pd.DataFrame, metrics: Sequence[str]
) -> str:
    """How many of the report's comparisons were judged, how many not, and what to change."""
    rows = comparisons[comparisons["metric"].isin(metrics)]
    if rows.empty:
        return ""
    withheld = int((rows["verdict"] == UNDERTRAINED).sum())
    cells = f"{int(adequacy['converged'].sum())} of {plural(len(adequacy), 'cell')} converged"
    if not withheld:
        return f"Judged: all {plural(len(rows), 'comparison')} ({cells})."
    return (
        f"Judged: {len(rows) - withheld} of {plural(len(rows), 'comparison')}; {withheld} not "
        f"judged because a run had not converged ({UNDERTRAINED}, "
        f"{VERDICT_STYLES[UNDERTRAINED].symbol}; {cells}). To judge them, raise training.epochs"
        + (" or use protocol plateau." if (adequacy["protocol"] != PLATEAU).any() else ".")
    )


def inert_sentences(
    comparisons: pd.DataFrame, adequacy: pd.DataFrame, early_stopping: Collection[str]
) -> list[str]:
    """Variants that did nothing here: early stopping that never stopped a run, and variants
    whose runs are identical to the baseline's on every seed."""
    sentences = []
    for row in _records(adequacy[adequacy["regularizer"].isin(list(early_stopping))]):
        stopped, runs = int(row["n_stopped_early"]), int(row["n_runs"])
        if runs and not stopped:
            sentences.append(
                f"{row['regularizer']} on {cell_name(row)} never triggered in {runs} of "
                f"{plural(runs, 'run')}: it trained as long as the baseline here."
            )
    identical = comparisons[(comparisons["test"] == "identical")]
    if len(identical):
        every_metric = identical.groupby(["dataset", "model", "regularizer"]).size()
        per_cell = comparisons.groupby(["dataset", "model", "regularizer"]).size()
        same = [key for key, n in every_metric.items() if n == per_cell[key]]
        if same:
            named = join_names([f"{r} on {d} · {m}" for d, m, r in same[:_MAX_NAMED]])
            more = f" and {len(same) - _MAX_NAMED} more" if len(same) > _MAX_NAMED else ""
            sentences.append(
                f"Identical to the baseline on every seed and metric: {named}{more}; "
                "it changed nothing these metrics measure there."
            )
    return sentences


def protocol_method(training: Mapping[str, Any]) -> str:
    """The Method's paragraph on the training protocol: the rule, the question it answers,
    and when a run counts as converged."""
    epochs = int(training["epochs"])
    if training["protocol"] == PLATEAU:
        return (
            f"Training protocol (plateau): each seed trains until its validation data loss "
            f"(cross-entropy without penalties, the same quantity for every variant) has not "
            f"improved{_by_more_than(training)} for "
            f"{training['patience']} epochs, at most "
            f"{epochs} epochs, and is tested "
            "with the weights of its best validation epoch"
            + (
                f", the last that improved on the best so far{_by_more_than(training)}"
                if _by_more_than(training)
                else ""
            )
            + " "
            "(Keras's EarlyStopping with restore_best_weights, one per seed). The question "
            "answered is the practical one: "
            "with the usual validation-based choice of when to stop, does the regularizer give "
            "a better model than the baseline? It is not how the variants compare after an "
            "equal number of steps, nor at convergence of the training objective. A run "
            "converged when the rule ended it before the budget (or an early-stopping piece "
            "did); a comparison resting on a run that did not is given no verdict "
            f"({UNDERTRAINED}). Validation values (tuning's criterion among them) are those of "
            "the tested weights."
        )
    window = stats.adequacy_window(epochs)
    return (
        f"Training protocol (fixed): every seed trains {plural(epochs, 'epoch')} and is tested "
        "with its last weights (or those an early-stopping piece restored): the question "
        "answered is which variant is better after this budget. A run counts as converged "
        f"unless it was still improving at its end: over its last {window} epochs "
        f"({stats.ADEQUACY_WINDOW_FRACTION:.0%} of the budget, at least "
        f"{stats.ADEQUACY_MIN_WINDOW}) its best validation epoch falls, or its training data "
        f"loss fell by more than {stats.ADEQUACY_LOSS_FALL:.0%} while its validation loss did "
        "not rise. A comparison resting on a run that had not converged is given no verdict "
        f"({UNDERTRAINED}): its difference may be one of training length, not of "
        "regularization. Validation values (tuning's criterion among them) are those of the "
        "tested weights."
    )
