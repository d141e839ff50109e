"""Render the study report: one Jinja2 template, a self-contained HTML file and a PDF.

:func:`build_context` turns the study's tables into everything the template
prints, already worded and formatted (:mod:`regbench.findings` writes the
sentences, :mod:`regbench.wording` the numbers); the template only loops.
Nothing from the config or the data is marked safe, and the PDF renderer may
fetch only ``data:`` URIs (everything the report shows is inlined).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import yaml

from regbench import appendix, metrics, stats, sweeps
from regbench.config import canonical_json, split_twins, varies_split
from regbench.findings import (
    MATRIX_SYMBOLS,
    Cell,
    answer_sentences,
    findings_by_effect,
    inert_sentences,
    judged_sentence,
    protocol_method,
    protocol_sentence,
    ranking_words,
    reference_rows,
    reference_sentence,
    saturation_sentences,
    selection_rows,
    smallest_effect_text,
    strength_sentences,
    suite_summary,
    survival_rows,
    survival_sentence,
    tuned_rows,
    tuned_sentence,
    tuned_table,
    verdict_matrix,
    verdict_order,
)
from regbench.measures import HIGHER_IS_BETTER
from regbench.variance import split_survival, split_variance
from regbench.wording import (
    MINUS,
    PIECE_METHODS,
    VERDICT_STYLES,
    column_labels,
    format_diff,
    format_number,
    format_value,
    is_missing,
    join_names,
    metric_style,
    plural,
)

__all__ = [
    "GLANCE_COLUMNS",
    "GLANCE_ROWS",
    "HTML_ONLY_COLUMNS",
    "HTML_ONLY_FIGURE_KINDS",
    "PDF_FIGURE_KINDS",
    "REPORT_TABLES",
    "SEED_PIECE_SOURCES",
    "SEED_SOURCES",
    "TABLE_METRICS",
    "ReportTables",
    "build_context",
    "copy_main_figures",
    "format_number",
    "render_html",
    "write_pdf",
]

#: The most dataset · model rows and regularizer columns page one's verdict matrix holds on
#: an A4 page with the rest of At a glance. A study with sweeps and more columns shows each
#: sweep as one column (tuned); a larger grid gets a summary per regularizer instead. Either
#: way every variant is in the full matrix after the findings, in blocks of GLANCE_COLUMNS.
GLANCE_ROWS, GLANCE_COLUMNS = 12, 10

#: Metrics of a dataset's results table, after the ones the study's report names.
TABLE_METRICS = (
    "test_accuracy",
    "test_loss",
    "test_objective",
    "test_f1_macro",
    "test_roc_auc",
    "gap_accuracy",
    "epochs_run",
)

#: Table columns shown in the HTML only unless the study's report judges them.
HTML_ONLY_COLUMNS = ("test_objective", "test_f1_macro", "test_roc_auc")

#: Figure kinds printed in the PDF, in this order; the main figures of the report.
PDF_FIGURE_KINDS = ("paired_differences", "dose_response", "learning_curves", "critical_difference")

#: Figure kinds shown in the Strength sweeps section rather than in their dataset's section.
SWEEP_FIGURE_KINDS = ("dose_response",)

#: Figure kinds shown in the HTML report only, to keep the PDF short (the PDF says so).
HTML_ONLY_FIGURE_KINDS = {
    "test_accuracy": "per-regularizer plots of each cell's own confidence interval",
    "generalization_gap": "plots of the generalization gap",
    "weights": "histograms of the final weights",
}

#: What a seed varies in every run; where a dataset's seeds draw their own splits, the split too.
SEED_SOURCES = ("initialization", "batch order")

#: What a seed also varies where a study's regularizers draw random numbers, by piece.
SEED_PIECE_SOURCES = {
    "dropout": "dropout masks",
    "spatial_dropout": "dropout masks",
    "gaussian_noise": "noise",
    "augmentation": "augmentations",
}

#: The tables the report reads, by name: ``results/tables/<name>.csv`` (architectures: JSON).
REPORT_TABLES = (
    "runs",
    "summary",
    "comparisons",
    "rankings",
    "ranking_tests",
    "adequacy",
    "references",
    "dose_response",
    "tuned",
    "tuned_comparisons",
    "architectures",
)


@dataclass(frozen=True)
class ReportTables:
    """The study's tables, as :func:`regbench.jobs.aggregate_runs` writes them."""

    runs: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    rankings: pd.DataFrame
    ranking_tests: pd.DataFrame
    adequacy: pd.DataFrame
    references: pd.DataFrame
    dose_response: pd.DataFrame
    tuned: pd.DataFrame
    tuned_comparisons: pd.DataFrame
    architectures: Mapping[str, Any]

    @classmethod
    def read(cls, paths: Mapping[str, str]) -> ReportTables:
        """Read every table of :data:`REPORT_TABLES` from ``paths`` (name -> file)."""
        missing = [name for name in REPORT_TABLES if name not in paths]
        if missing:
            raise ValueError(f"the report needs a path for table(s): {', '.join(missing)}")
        frames = {name: pd.read_csv(paths[name]) for name in REPORT_TABLES[:-1]}
        architectures = json.loads(Path(paths["architectures"]).read_text(encoding="utf-8"))
        return cls(**frames, architectures=architectures)


def build_context(
    *,
    config: Mapping[str, Any],
    tables: ReportTables,
    cards: Mapping[str, Mapping[str, Any]],
    figures: Sequence[Mapping[str, Any]],
    figure_dir: Path,
    skipped: Sequence[Mapping[str, str]],
    commit: str = "unknown",
    config_commit: str = "unknown",
) -> dict[str, Any]:
    """Everything the template prints, already worded and formatted."""
    judged = _report_metrics(config, tables.comparisons)
    summary = tables.summary
    cells = [
        (d, m)
        for d in config["datasets"]
        for m in config["models"]
        if ((summary["dataset"] == d) & (summary["model"] == m)).any()
    ]
    undertrained = _undertrained(tables.adequacy)
    pictures = _figures(figures, figure_dir)
    glance = _glance(config, tables, cards, cells, judged, undertrained)
    return {
        "meta": _meta(config, tables.runs, commit, config_commit),
        "glance": glance,
        "full_matrix": _full_matrix(config, tables, cells, judged[0], undertrained, glance),
        "findings": [
            findings_by_effect(tables.comparisons, metric, config["baseline"]) for metric in judged
        ],
        "references": reference_rows(tables.references),
        "sweeps": _sweeps(config, tables, pictures, judged),
        "sections": [
            _dataset_section(dataset, config, tables, cards[dataset], pictures, judged)
            for dataset in config["datasets"]
            if any(d == dataset for d, _ in cells)
        ],
        "variance": _variance_view(config, tables, judged),
        "rankings": _rankings(tables, judged[0], pictures, split_twins(config)),
        "method": {
            **_method(config, tables, judged),
            **_split_method(config, cards),
            "study": _study_text(config),
        },
        "verdict_styles": VERDICT_STYLES,
        "html_only": _html_only(figures),
        "appendix": {
            **appendix.provenance(tables.runs),
            "skipped": appendix.group_skipped(skipped, list(config["regularizers"])),
            "problems": appendix.problems(tables.runs),
            "config": appendix.config_text(config),
        },
    }


def render_html(context: Mapping[str, Any], template_dir: Path) -> str:
    """Render the report template; it includes the stylesheet inline."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("report.html.j2").render(**context)


def write_pdf(html: str, path: Path) -> None:
    """Render the HTML to PDF, fetching nothing but ``data:`` URIs.

    Title, subject, creator and date come from the HTML's ``<title>`` and
    ``<meta>`` elements.
    """
    import weasyprint

    fetcher = weasyprint.URLFetcher(allowed_protocols={"data"}, timeout=1)
    weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf(path)


def copy_main_figures(
    figures: Sequence[Mapping[str, Any]], figure_dir: Path, out_dir: Path
) -> list[Path]:
    """Copy the report's main figures to ``out_dir/<kind>/<dataset>/<model>.svg``.

    Config names contain no slash, so Snakemake's report reads kind, dataset
    and model back from the path; a figure across datasets has ``all`` for
    its dataset. Figures of earlier renderings are removed first.
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    copied = []
    for figure in figures:
        if figure["kind"] not in PDF_FIGURE_KINDS:
            continue
        target = out_dir / figure["kind"] / (figure["dataset"] or "all") / f"{figure['model']}.svg"
        target.parent.mkdir(parents=True, exist_ok=True)
        copied.append(Path(shutil.copyfile(figure_dir / figure["file"], target)))
    return copied


def _report_metrics(config: Mapping[str, Any], comparisons: pd.DataFrame) -> list[str]:
    """The metrics the report judges (``report:`` in the config), primary first."""
    settings = config["report"]
    primary = str(settings["primary"])
    wanted = [primary, *(str(m) for m in settings["metrics"] if m != primary)]
    compared = set(comparisons["metric"])
    return [m for m in wanted if m in compared] or sorted(compared)[:1]


def _undertrained(adequacy: pd.DataFrame) -> set[Cell]:
    """The (dataset, model, regularizer) cells with a run that had not converged."""
    flagged = adequacy[~adequacy["converged"].astype(bool)]
    return {(str(r.dataset), str(r.model), str(r.regularizer)) for r in flagged.itertuples()}


def _meta(
    config: Mapping[str, Any], runs: pd.DataFrame, commit: str, config_commit: str
) -> dict[str, Any]:
    """Title, the grid in one line, and where the report came from."""
    study = config["study"]
    now = dt.datetime.now(dt.timezone.utc)
    ok = int((runs["status"] == "ok").sum())
    succeeded = "all succeeded" if ok == len(runs) else f"{ok} succeeded"
    swept = f"{plural(len(config['families']), 'sweep')}; " if config["families"] else ""
    grid = [
        plural(len(config["datasets"]), "dataset"),
        plural(len(config["models"]), "model"),
        f"{plural(len(config['regularizers']), 'regularizer')} "
        f"({swept}baseline {config['baseline']})",
        plural(len(config["seeds"]), "seed"),
        f"{plural(len(runs), 'run')}, {succeeded}",
    ]
    return {
        "title": study["title"],
        "description": study.get("description", ""),
        "name": study["name"],
        "generated": now.strftime("%Y-%m-%d %H:%M UTC"),
        "generated_iso": now.isoformat(timespec="seconds"),
        "commit": commit,
        "config_commit": config_commit,
        "config_digest": hashlib.sha256(canonical_json(dict(config)).encode()).hexdigest()[:12],
        "grid": " · ".join(grid),
        "keywords": ", ".join(config["datasets"]),
    }


def _glance(
    config: Mapping[str, Any],
    tables: ReportTables,
    cards: Mapping[str, Mapping[str, Any]],
    cells: Sequence[tuple[str, str]],
    judged: Sequence[str],
    undertrained: Collection[Cell],
) -> dict[str, Any]:
    """Page one: the question, the verdict matrix or its summary, answers and caveats."""
    comparisons = tables.comparisons
    baseline, primary = config["baseline"], judged[0]
    style = metric_style(primary)
    sentences = answer_sentences(comparisons, list(judged), baseline, len(config["seeds"]))
    tuned = tables.tuned_comparisons
    several = tuned[tuned["metric"] == primary].groupby(["dataset", "model"]).ngroups > 1
    sentence = "" if several else tuned_sentence(tuned, primary, baseline)
    sentences = [*sentences, sentence] if sentence else sentences
    checked = reference_sentence(tables.references)
    row_regularizers = {
        (dataset, model): list(group["regularizer"].drop_duplicates())
        for (dataset, model), group in tables.summary.groupby(["dataset", "model"], sort=False)
    }
    saturated = saturation_sentences(
        stats.saturated_cells(tables.summary), row_regularizers, list(judged)
    )
    sentences = [*saturated, *sentences]
    survived = survival_sentence(_survival(config, tables, judged))
    sentences = [*sentences, survived] if survived else sentences
    columns = _glance_columns(config)
    families = [name for name, is_family in columns if is_family]
    names = [name for name, _ in columns]
    # A family's column is its tuned comparison with the baseline, from tuned_comparisons.csv.
    shown = pd.concat(
        [
            comparisons,
            tuned[(tuned["baseline"] == baseline) & tuned["regularizer"].isin(families)],
        ]
    )
    fits = len(cells) <= GLANCE_ROWS and len(columns) <= GLANCE_COLUMNS
    title = f"Paired effect on {style.label} against {baseline}"
    return {
        "protocol": protocol_sentence(config["training"]),
        "judged": judged_sentence(comparisons, tables.adequacy, judged),
        "question": _question(config["study"]),
        "matrix": (
            {
                "title": title,
                **_matrix_block(shown, primary, cells, names, undertrained),
                "caption": _matrix_caption(shown, primary, baseline, families, short=True),
            }
            if fits
            else None
        ),
        "summary": (
            None
            if fits
            else {
                "title": title,
                **suite_summary(shown, primary, names),
                "caption": _summary_caption(shown, primary, baseline, families, len(cells)),
            }
        ),
        "complete": fits and not families,
        "tuned": (
            {**tuned_table(tuned, primary), "caption": _tuned_caption(primary, baseline)}
            if several
            else None
        ),
        "sentences": [*sentences[: 6 + len(saturated)], checked] if checked else sentences,
        "caveats": _caveats(config, tables, cards, primary),
    }


def _question(study: Mapping[str, Any]) -> str:
    """The study's question: its description's first question, else first sentence, else title.

    Page one shows this alone; the whole description opens the Method section.
    """
    description = " ".join(str(study.get("description") or "").split())
    found = re.match(r"[^?]*?\?", description) or re.match(r".*?[.!](?=\s|$)", description)
    return found.group(0) if found else description or str(study["title"])


def _study_text(config: Mapping[str, Any]) -> str:
    """The whole description, for the Method section, where page one showed only a part."""
    description = " ".join(str(config["study"].get("description") or "").split())
    return "" if description == _question(config["study"]) else description


def _glance_columns(config: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """Page one's columns: every variant, or, where that is too many, one per sweep family.

    Each item is a name and whether it is a sweep family (shown tuned).
    """
    baseline = config["baseline"]
    variants = [r for r in config["regularizers"] if r != baseline]
    families: Mapping[str, Mapping[str, Any]] = config["families"]
    if len(variants) <= GLANCE_COLUMNS or not families:
        return [(name, False) for name in variants]
    owner = {variant: name for name, family in families.items() for variant in family["variants"]}
    columns: list[tuple[str, bool]] = []
    for variant in variants:
        column = (owner[variant], True) if variant in owner else (variant, False)
        if column not in columns:
            columns.append(column)
    return columns


def _matrix_block(
    comparisons: pd.DataFrame,
    metric: str,
    cells: Sequence[tuple[str, str]],
    names: Sequence[str],
    undertrained: Collection[Cell],
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One verdict matrix: its column labels, the legend where they are codes, its rows."""
    labels = list(labels) if labels is not None else column_labels(names)
    legend = [
        {"code": label, "name": name}
        for label, name in zip(labels, names, strict=True)
        if label.replace("\u200b", "") != name
    ]
    return {
        "labels": labels,
        "legend": legend,
        "rows": verdict_matrix(comparisons, metric, cells, names, undertrained),
    }


def _verdict_key(comparisons: pd.DataFrame, metric: str) -> str:
    """``▲ better, ▼ worse, ○ inconclusive``: the verdicts of ``metric`` with their symbols."""
    chosen = comparisons.loc[comparisons["metric"] == metric, "verdict"].astype(str)
    return join_names([f"{MATRIX_SYMBOLS.get(v, '?')} {v}" for v in verdict_order(chosen)])


def _matrix_caption(
    comparisons: pd.DataFrame,
    metric: str,
    baseline: str,
    families: Sequence[str],
    *,
    short: bool = False,
) -> str:
    """What a verdict matrix's cell says, its symbols and marks, and what its columns are.

    Page one's (``short``) leaves the difference between interval and verdict to the full
    matrix's caption.
    """
    unit = "points" if metric_style(metric).proportion else "the metric's units"
    tuned = (
        f" {join_names(families)}: each sweep at the strength validation data chose per seed "
        "(Holm over the tuned comparisons; every strength is in the full matrix)."
        if families
        else ""
    )
    caveat = (
        ""
        if short
        else " The interval is that comparison's alone, the verdict also corrects for the "
        "row's other comparisons, so an interval that excludes 0 can still be "
        "inconclusive."
    )
    return (
        f"Each cell: the mean paired difference (regularizer minus {baseline}, in {unit}) and "
        f"its {_level(comparisons)} confidence interval. {_verdict_key(comparisons, metric)} "
        f"(a difference: Holm-adjusted p < {_alpha(comparisons)} and at least the smallest "
        f"effect, {smallest_effect_text(comparisons, [metric])}; see Method).{caveat} Italic: "
        "at most "
        "one test example per seed. † after a row name: the baseline's runs had not converged by "
        f"the protocol. A dash: not run.{tuned}"
    )


def _summary_caption(
    comparisons: pd.DataFrame, metric: str, baseline: str, families: Sequence[str], rows: int
) -> str:
    """What the per-regularizer summary counts, and where its comparisons are in full."""
    tuned = (
        f" {join_names(families)}: each sweep at the strength validation data chose per seed."
        if families
        else ""
    )
    return (
        f"Each row: a regularizer's paired comparisons with {baseline} on "
        f"{plural(rows, 'dataset · model cell')}, counted by verdict "
        f"({_verdict_key(comparisons, metric)}; Holm-adjusted p < {_alpha(comparisons)}), "
        "and the median and range of their mean differences; †: comparisons on runs still "
        "improving at their last epoch. Most clear gains first; each comparison is in the "
        f"full matrix.{tuned}"
    )


def _tuned_caption(metric: str, baseline: str) -> str:
    """What page one's table of tuned sweeps counts."""
    return (
        "Each sweep at the strength validation data chose per seed, against "
        f"{baseline} and each other (a minus b) on {metric_style(metric).label}: verdicts "
        "counted over the dataset · model cells, and the median difference."
    )


def _full_matrix(
    config: Mapping[str, Any],
    tables: ReportTables,
    cells: Sequence[tuple[str, str]],
    metric: str,
    undertrained: Collection[Cell],
    glance: Mapping[str, Any],
) -> dict[str, Any] | None:
    """Every variant's verdict matrix, in blocks of columns, where page one shows less."""
    if glance["complete"]:
        return None
    baseline = config["baseline"]
    variants = [r for r in config["regularizers"] if r != baseline]
    labels = column_labels(variants)
    blocks = [
        _matrix_block(
            tables.comparisons,
            metric,
            cells,
            variants[start : start + GLANCE_COLUMNS],
            undertrained,
            labels[start : start + GLANCE_COLUMNS],
        )
        for start in range(0, len(variants), GLANCE_COLUMNS)
    ]
    return {
        "title": f"Paired effect on {metric_style(metric).label} against {baseline}",
        "blocks": blocks,
        "caption": _matrix_caption(tables.comparisons, metric, baseline, []),
    }


def _level(comparisons: pd.DataFrame) -> str:
    values = comparisons["confidence"].dropna().unique()
    return f"{float(values[0]) * 100:g}%" if len(values) else "–"


def _alpha(comparisons: pd.DataFrame) -> str:
    values = comparisons["alpha"].dropna().unique()
    return f"{float(values[0]):g}" if len(values) else "–"


def _caveats(
    config: Mapping[str, Any],
    tables: ReportTables,
    cards: Mapping[str, Mapping[str, Any]],
    primary: str,
) -> list[str]:
    """What limits the conclusions of this study, computed from it, one short line each."""
    runs = tables.runs
    caveats = [
        # One line on page one: the intervals cover what the seeds vary and nothing else.
        f"{plural(len(config['seeds']), 'seed')} per cell, paired by seed, each varying only "
        f"{_seed_sources(config)}.",
        _split_caveat(config, cards),
        _granularity_caveat(tables.comparisons, cards, primary),
    ]
    early = [name for name, body in config["regularizers"].items() if "early_stopping" in body]
    caveats += inert_sentences(tables.comparisons, tables.adequacy, early)
    bad = runs[runs["status"] != "ok"]["status"].value_counts()
    if len(bad):
        counts = join_names([f"{n} {status}" for status, n in bad.items()])
        caveats.append(f"Runs not averaged in: {counts} (listed in the appendix).")
    ok = runs[runs["status"] == "ok"]
    if "test_loss" in set(tables.comparisons["metric"]) and ok["test_objective"].isna().all():
        caveats.append(
            "Test loss here includes the weight and activity penalties (these runs predate "
            "the data loss), so penalized regularizers look worse on it by construction."
        )
    return [c for c in caveats if c]


def _varied(config: Mapping[str, Any]) -> list[str]:
    """The datasets whose seeds draw their own splits."""
    return [name for name, body in config["datasets"].items() if varies_split(body)]


def _seed_sources(config: Mapping[str, Any]) -> str:
    """What a seed varies in this study, in words: the split too where it does."""
    varied = _varied(config)
    pieces = {piece for body in config["regularizers"].values() for piece in body}
    drawn = [source for piece, source in SEED_PIECE_SOURCES.items() if piece in pieces]
    sources = [SEED_SOURCES[0], *dict.fromkeys(drawn), *SEED_SOURCES[1:]]
    if varied:
        every = len(varied) == len(config["datasets"])
        sources.append("the data split" + ("" if every else f" on {join_names(varied)}"))
    return join_names(sources)


def _kept_test_sets(config: Mapping[str, Any], cards: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Varied datasets whose seeds all test on the same rows (an official test set)."""
    return [
        name
        for name in _varied(config)
        if len({one["test_rows"] for one in cards.get(name, {}).get("seeds", [])}) == 1
    ]


def _split_caveat(config: Mapping[str, Any], cards: Mapping[str, Mapping[str, Any]]) -> str:
    """Which datasets keep one split for every seed, and which seeds' test sets never vary."""
    varied = _varied(config)
    fixed = [name for name in config["datasets"] if name not in varied]
    sentences = []
    if fixed:
        states = sorted(
            {
                str(config["datasets"][name].get("split", {}).get("random_state", "–"))
                for name in fixed
            }
        )
        where = f"on {join_names(fixed)}" if varied else "per dataset"
        moved = "their numbers" if varied else "every number"
        sentences.append(
            f"One train/validation/test split {where} (random state {join_names(states)}): "
            f"another split could move {moved}."
        )
    kept = _kept_test_sets(config, cards)
    if kept:
        sentences.append(
            f"Every seed tests on the same test set of {join_names(kept)} (its own test set); "
            "only training and validation vary."
        )
    return " ".join(sentences)


def _survival(
    config: Mapping[str, Any], tables: ReportTables, judged: Sequence[str]
) -> pd.DataFrame:
    """Each comparison of a dataset run both ways, with one split and a split per seed."""
    levels = tables.comparisons["confidence"].dropna().unique()
    confidence = float(levels[0]) if len(levels) else 0.95
    twins = split_twins(config)
    return split_survival(tables.runs, tables.comparisons, twins, list(judged), confidence)


def _variance_view(
    config: Mapping[str, Any], tables: ReportTables, judged: Sequence[str]
) -> dict[str, Any] | None:
    """How far the split alone moves the baseline, where the study runs a dataset both ways."""
    twins = split_twins(config)
    if not twins:
        return None
    baseline = str(config["baseline"])
    levels = tables.comparisons["confidence"].dropna().unique()
    confidence = float(levels[0]) if len(levels) else 0.95
    table = split_variance(tables.runs, twins, baseline, list(judged), confidence)
    records = table.to_dict("records")
    rows = [
        {
            "cell": f"{r['dataset']} (one split: {r['fixed_dataset']}) · {r['model']}",
            "metric": metric_style(r["metric"]).label,
            "fixed": _spread_text(r, "fixed"),
            "varied": _spread_text(r, "varied"),
            "ratio": _ratio_text(r),
            "split_sd": format_diff(r["split_sd"], r["metric"], signed=False),
        }
        for r in records
    ]
    cells = len({row["cell"] for row in rows})
    return {
        "intro": (
            f"This study runs {plural(cells, 'dataset · model cell')} both ways: with one split "
            "for every seed, and with a split drawn per seed, all else equal."
        ),
        "rows": rows,
        "survival": survival_rows(_survival(config, tables, judged)),
        "survival_caption": (
            f"Each comparison with {baseline} on the judged metrics, with one split for every "
            f"seed and with a split per seed: verdict, mean paired difference and its "
            f"{confidence * 100:g}% interval. It survives when the verdict is the same. A changed "
            "verdict comes from the estimate when the two estimates differ beyond their joint "
            "(Welch) interval, else from the noise: the ratio of the paired differences' "
            f"standard deviations. A seed drives the mean when its difference lies outside the "
            f"{stats.DRIVING_SEED_LEVEL * 100:g}% prediction interval of the others' and at least "
            "the smallest effect from their mean."
        ),
        "sentences": [_variance_sentence(r, baseline) for r in records if r["metric"] == judged[0]],
        "caption": (
            f"{baseline}'s runs: mean ± standard deviation over the seeds (lowest to highest; "
            f"n runs) with one split for every seed and with a split per seed; the ratio of the "
            f"two standard deviations with its {confidence * 100:g}% confidence interval (F "
            f"distribution); and the split's own standard deviation, √(sd² per seed {MINUS} sd² "
            "one split), taking the sources of variation as independent."
        ),
    }


def _spread_text(row: Mapping[str, Any], way: str) -> str:
    metric = row["metric"]
    if int(row[f"n_{way}"]) == 0:
        return "–"
    mean = format_value(row[f"mean_{way}"], metric)
    sd = format_diff(row[f"sd_{way}"], metric, signed=False)
    low, high = (format_value(row[f"{end}_{way}"], metric) for end in ("min", "max"))
    return f"{mean} ± {sd} ({low} to {high}; n {int(row[f'n_{way}'])})"


def _ratio_text(row: Mapping[str, Any]) -> str:
    if is_missing(row["sd_ratio"]):
        return "–"
    low, high = (format_number(row[f"sd_ratio_{end}"], 2) for end in ("low", "high"))
    return f"{format_number(row['sd_ratio'], 2)} [{low}, {high}]"


def _variance_sentence(row: Mapping[str, Any], baseline: str) -> str:
    """What the split alone does to one cell's baseline, in a sentence."""
    metric = row["metric"]
    label, unit = metric_style(metric).label, " points" if metric_style(metric).proportion else ""
    sds = [format_diff(row[f"sd_{way}"], metric, signed=False) for way in ("varied", "fixed")]
    where = f"{baseline}'s {label} on {row['dataset']} · {row['model']}"
    if is_missing(row["sd_ratio"]):
        return (
            f"With a split per seed, {where} has a standard deviation of {sds[0]}{unit}, "
            f"against {sds[1]}{unit} with one split."
        )
    ratio, low = float(row["sd_ratio"]), float(row["sd_ratio_low"])
    verdict = (
        "the split adds spread beyond what the seed varies"
        if low > 1
        else "these seeds cannot tell the two spreads apart"
    )
    split_sd = float(row["split_sd"])
    # A per-seed spread no wider than one split's leaves the split nothing to account for.
    alone = (
        f"the split alone is worth a standard deviation of about "
        f"{format_diff(split_sd, metric, signed=False)}{unit}"
        if split_sd > 0
        else "these runs show no spread the split adds"
    )
    return (
        f"With a split per seed, {where} spreads {format_number(ratio, 2)} times as much as with "
        f"one split (standard deviation {sds[0]} against {sds[1]}{unit}; {_ratio_text(row)}): "
        f"{verdict}, and {alone}."
    )


def _split_method(
    config: Mapping[str, Any], cards: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """The Method section's words on how the datasets are split and what a seed fixes."""
    varied = _varied(config)
    fixed = [name for name in config["datasets"] if name not in varied]
    clauses = []
    if fixed:
        who = (
            f"{join_names(fixed)} {'is' if len(fixed) == 1 else 'are'}"
            if varied
            else ("Every dataset is")
        )
        clauses.append(
            f"{who} split once into training, validation and test parts with a fixed random state"
        )
    if varied:
        clauses.append(
            f"{'each' if fixed else 'Each'} seed draws its own split of "
            f"{join_names(varied) if fixed else 'every dataset'} into training, validation and "
            "test parts, with a random state derived from the dataset's and the seed (listed "
            "with the dataset's data card), stratified where the dataset's split is"
        )
    kept = _kept_test_sets(config, cards)
    if kept:
        clauses.append(
            f"{join_names(kept)} {'keeps its' if len(kept) == 1 else 'keep their'} own test "
            "set for every seed, so only training and validation vary there"
        )
    return {
        "split": "; ".join(clauses) + ". Every split is scaled with statistics of its training "
        "part only.",
        "seed_sources": _seed_sources(config),
    }


def _granularity_caveat(
    comparisons: pd.DataFrame, cards: Mapping[str, Mapping[str, Any]], primary: str
) -> str:
    """One test example in points, per dataset, and how many differences are that small."""
    sizes = {name: int(card["split_sizes"]["test"]) for name, card in cards.items()}
    points = {
        name: format_diff(1.0 / n, "test_accuracy", signed=False) for name, n in sizes.items()
    }
    if len(sizes) == 1:
        name, value = next(iter(points.items()))
        where = f"{value} points on {name}"
    elif len(set(sizes.values())) == 1:
        where = f"{next(iter(points.values()))} points on every dataset"
    else:
        first, *rest = [f"{value} on {name}" for name, value in points.items()]
        where = ", ".join([first.replace(" on ", " points on ", 1), *rest])
    chosen = comparisons[comparisons["metric"] == primary]
    tiny = int((chosen["within_one_example"].astype(bool) & (chosen["mean_diff"] != 0)).sum())
    verb = "is" if tiny == 1 else "are"
    tail = (
        f"; {tiny} of the {len(chosen)} differences in the matrix {verb} at most one example "
        "per seed (italics)"
        if tiny
        else ""
    )
    return f"One test example is worth {where} of test accuracy{tail}."


def _figures(
    figures: Sequence[Mapping[str, Any]], figure_dir: Path
) -> dict[tuple[str | None, str], list[dict[str, Any]]]:
    """Figures per (dataset, model), main kinds first, each inlined as a ``data:`` URI."""

    def order(figure: Mapping[str, Any]) -> tuple[int, str]:
        kind = str(figure["kind"])
        main = PDF_FIGURE_KINDS.index(kind) if kind in PDF_FIGURE_KINDS else len(PDF_FIGURE_KINDS)
        return main, kind

    placed: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
    for figure in sorted(figures, key=order):
        uri = "data:image/svg+xml;base64," + base64.b64encode(
            (figure_dir / figure["file"]).read_bytes()
        ).decode("ascii")
        placed.setdefault((figure["dataset"], figure["model"]), []).append(
            {
                "uri": uri,
                "caption": figure["caption"],
                "kind": figure["kind"],
                "html_only": figure["kind"] in HTML_ONLY_FIGURE_KINDS,
            }
        )
    return placed


def _html_only(figures: Sequence[Mapping[str, Any]]) -> str:
    """The sentence that tells a PDF reader what only the HTML report carries."""
    kinds = [
        text
        for kind, text in HTML_ONLY_FIGURE_KINDS.items()
        if any(f["kind"] == kind for f in figures)
    ]
    columns = join_names([metric_style(m).heading.replace(" (%)", "") for m in HTML_ONLY_COLUMNS])
    return join_names([*kinds, f"the {columns} columns", "the layer-by-layer architecture tables"])


def _dataset_section(
    dataset: str,
    config: Mapping[str, Any],
    tables: ReportTables,
    card: Mapping[str, Any],
    pictures: Mapping[tuple[str | None, str], list[dict[str, Any]]],
    judged: Sequence[str],
) -> dict[str, Any]:
    """One dataset: its card in a paragraph, then per model its table and figures."""
    summary, comparisons = tables.summary, tables.comparisons
    models = []
    for model in config["models"]:
        cell = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
        if cell.empty:
            continue
        chosen = comparisons[(comparisons["dataset"] == dataset) & (comparisons["model"] == model)]
        models.append(
            {
                "name": model,
                "table": _results_table(cell, chosen, config, judged),
                "architecture": _architecture(
                    tables.architectures, dataset, model, config["baseline"]
                ),
                "figures": [
                    f
                    for f in pictures.get((dataset, model), [])
                    if f["kind"] not in SWEEP_FIGURE_KINDS
                ],
            }
        )
    return {
        "name": dataset,
        "anchor": f"dataset-{dataset}",
        "description": config["datasets"][dataset].get("description", ""),
        "card": _card_text(card),
        "splits": _seed_splits(card),
        "models": models,
    }


def _seed_splits(card: Mapping[str, Any]) -> dict[str, Any] | None:
    """Each seed's split of a dataset whose seeds draw their own: a column per property
    that differs between seeds, and one line for those that do not."""
    seeds = card.get("seeds")
    if not seeds:
        return None
    rows = [_seed_split_cells(one) for one in seeds]
    headings = list(rows[0])
    keep = [h for i, h in enumerate(headings) if i < 2 or len({row[h] for row in rows}) > 1]
    return {
        "headings": keep,
        "rows": [[row[h] for h in keep] for row in rows],
        "same": "; ".join(f"{h.lower()} {rows[0][h]}" for h in headings if h not in keep),
    }


def _seed_split_cells(one: Mapping[str, Any]) -> dict[str, str]:
    """One seed's row of the table of splits, by heading."""
    sizes = one["split_sizes"]
    return {
        "Seed": str(one["seed"]),
        "Random state": str(one["random_state"]),
        "Train": f"{int(sizes['train']):,}",
        "Validation": f"{int(sizes['validation']):,}",
        "Test": f"{int(sizes['test']):,}",
        "Test classes": ", ".join(f"{name} {n}" for name, n in one["test_classes"].items()),
        "Test rows": str(one["test_rows"]),
    }


def _results_table(
    cell: pd.DataFrame, comparisons: pd.DataFrame, config: Mapping[str, Any], judged: Sequence[str]
) -> dict[str, Any]:
    """Baseline first, one line per regularizer; columns equal in every row left out, with a note.

    The judged metrics come first, the primary one followed by its prediction
    interval; :data:`HTML_ONLY_COLUMNS` the report does not judge are shown in
    the HTML only, to fit a printed page.
    """
    baseline = config["baseline"]
    verdicts = {(r.regularizer, r.metric): r.verdict for r in comparisons.itertuples()}
    metrics = [m for m in dict.fromkeys([*judged, *TABLE_METRICS]) if (cell["metric"] == m).any()]
    level = cell["prediction_level"].dropna()
    pi = f"{float(level.iloc[0]) * 100:g}% prediction interval" if len(level) else ""
    # (heading, HTML only, text of one regularizer's rows indexed by metric)
    columns: list[tuple[str, bool, Any]] = [("n", False, lambda v, r: _n_text(v.iloc[0]))]
    for metric in metrics:
        hidden = metric in HTML_ONLY_COLUMNS and metric not in judged
        columns.append((metric_style(metric).heading, hidden, _value_column(metric, verdicts)))
        if metric == judged[0] and pi:
            columns.append((pi, False, _interval_column(metric)))
    order = [baseline, *(r for r in config["regularizers"] if r != baseline)]
    rows = []
    for regularizer in order:
        values = cell[cell["regularizer"] == regularizer].set_index("metric")
        if not values.empty:
            texts = [text(values, regularizer) for _, _, text in columns]
            rows.append(
                {"regularizer": regularizer, "is_baseline": regularizer == baseline, "cells": texts}
            )
    keep = [
        i for i in range(len(columns)) if len(rows) < 2 or len({r["cells"][i] for r in rows}) > 1
    ]
    # A column with no value at all (a metric these runs did not record) goes unmentioned.
    dropped = [
        f"{columns[i][0]}: {rows[0]['cells'][i]}"
        for i in range(len(columns))
        if i not in keep and rows[0]["cells"][i] != "–"
    ]
    for row in rows:
        row["cells"] = [{"text": row["cells"][i], "screen_only": columns[i][1]} for i in keep]
    return {
        "headings": [{"text": columns[i][0], "screen_only": columns[i][1]} for i in keep],
        "rows": rows,
        "dropped": "; ".join(dropped),
    }


def _value_column(metric: str, verdicts: Mapping[tuple[str, str], str]) -> Any:
    return lambda values, regularizer: _value_text(
        values, metric, verdicts.get((regularizer, metric))
    )


def _interval_column(metric: str) -> Any:
    def text(values: pd.DataFrame, regularizer: str) -> str:
        if metric not in values.index or is_missing(values.loc[metric, "pi_low"]):
            return "–"
        row = values.loc[metric]
        return f"{format_value(row['pi_low'], metric)} to {format_value(row['pi_high'], metric)}"

    return text


def _n_text(first: pd.Series) -> str:
    """Successful runs, and the others of the cell: ``4 (1 diverged)``."""
    extra = [
        f"{int(first[column])} {word}"
        for column, word in (("n_diverged", "diverged"), ("n_failed", "failed"))
        if first[column]
    ]
    text = str(int(first["n"]))
    return f"{text} ({', '.join(extra)})" if extra else text


def _value_text(values: pd.DataFrame, metric: str, verdict: str | None) -> str:
    """``95.6 ± 0.8 ▲``: the mean with its interval on one line, and the verdict's mark."""
    if metric not in values.index:
        return "–"
    row = values.loc[metric]
    mean, low, high = row["mean"], row["ci_low"], row["ci_high"]
    text = format_value(mean, metric)
    if not is_missing(low):
        below = format_value(float(mean) - float(low), metric)
        above = format_value(float(high) - float(mean), metric)
        if below == above:
            text += f" ± {below}"
        else:
            text += f" [{format_value(low, metric)}, {format_value(high, metric)}]"
    mark = MATRIX_SYMBOLS[verdict] if verdict in ("better", "worse", "underfitting") else ""
    return f"{text} {mark}".strip()


def _card_text(card: Mapping[str, Any]) -> str:
    """The data card in two sentences."""
    sizes = card["split_sizes"]
    balance = ", ".join(f"{name} {share:.0%}" for name, share in card["class_balance"].items())
    source = str(card["source"])
    if "download" in card and card["download"]["url"] not in source:
        download = card["download"]
        source += f", downloaded from {download['url']} (sha256 {download['sha256'][:12]}…)"
    text = (
        f"{card['rows']:,} rows, {card['features']} features ({card['kind']}, input shape "
        f"{tuple(card['input_shape'])}), {card['classes']} classes ({balance}). "
        f"Split: train {sizes['train']}, validation {sizes['validation']} "
        f"({card.get('validation', 'a hold-out of the training split')}), test {sizes['test']}; "
        f"scaling {card['scaling']}, fitted on the training split. Source: {source}."
    )
    notes = " ".join(str(note) for note in card.get("notes", []))
    return f"{text} {notes}".strip()


def _architecture(
    architectures: Mapping[str, Any], dataset: str, model: str, baseline: str
) -> dict[str, Any] | None:
    """The baseline's layers, and the parameter count of every variant that differs."""
    layers = architectures.get(f"{dataset}/{model}/{baseline}")
    if not layers:
        return None
    prefix = f"{dataset}/{model}/"
    total = sum(layer["params"] for layer in layers)
    variants = [
        f"{cell.removeprefix(prefix)} {count:,}"
        for cell, variant in sorted(architectures.items())
        if cell.startswith(prefix)
        and variant
        and (count := sum(layer["params"] for layer in variant)) != total
    ]
    return {
        "layers": [
            (
                layer["name"],
                layer["type"],
                "("
                + ", ".join("batch" if d is None else str(d) for d in layer["output_shape"])
                + ")",
                f"{layer['params']:,}",
            )
            for layer in layers
        ],
        "summary": f"{total:,} parameters"
        + (f"; other counts: {', '.join(variants)}" if variants else ""),
    }


def _rankings(
    tables: ReportTables,
    metric: str,
    pictures: Mapping[tuple[str | None, str], list[dict[str, Any]]],
    twins: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Per model ranked over enough datasets: ranks, the tests, what they could detect, the CD.

    ``twins`` maps each dataset run with a split per seed to its fixed-split twin: a
    ranking counts the two as one dataset, which the note on a missing ranking says.
    """
    tests = tables.ranking_tests[tables.ranking_tests["metric"] == metric]
    rankings = tables.rankings[tables.rankings["metric"] == metric]
    models = []
    for test in tests[tests["ranked"].astype(bool)].to_dict("records"):
        model = str(test["model"])
        ranks = rankings[rankings["model"] == model].sort_values("average_rank")
        models.append(
            {
                "model": model,
                "n_datasets": int(test["n_datasets"]),
                "ranks": [
                    (r.regularizer, format_number(r.average_rank, 2)) for r in ranks.itertuples()
                ],
                **ranking_words(test, ranks),
                "figures": [
                    f for f in pictures.get((None, model), []) if f["kind"] == "critical_difference"
                ],
            }
        )
    left_out = [t for t in tests.to_dict("records") if not bool(t["ranked"])]
    counted_once = join_names([f"{v} and {k}" for k, v in (twins or {}).items()])
    once = (
        f" ({counted_once}: one dataset run both ways, which counts once)"
        if counted_once and left_out
        else ""
    )
    return {
        "label": metric_style(metric).label,
        "models": models,
        "left_out": "; ".join(f"{t['model']}: {t['note']}" for t in left_out) + once,
    }


def _sweeps(
    config: Mapping[str, Any],
    tables: ReportTables,
    pictures: Mapping[tuple[str | None, str], list[dict[str, Any]]],
    judged: Sequence[str],
) -> dict[str, Any] | None:
    """The Strength sweeps section: each family's response to strength, then each at its best."""
    families = config["families"]
    if not families:
        return None
    primary, baseline = judged[0], config["baseline"]
    criterion = config["tuning"]["criterion"]
    best = strength_sentences(tables.dose_response, primary, families)
    cells = []
    for dataset in config["datasets"]:
        for model in config["models"]:
            name = f"{dataset} · {model}"
            found = [s for s in best if s["cell"] == name]
            if found:
                figures = pictures.get((dataset, model), [])
                cells.append(
                    {
                        "name": name,
                        "sentences": found,
                        "figures": [f for f in figures if f["kind"] in SWEEP_FIGURE_KINDS],
                    }
                )
    described = [
        f"{name} at {len(family['variants'])} settings of {join_names(family['swept'])}"
        for name, family in families.items()
    ]
    selection = selection_rows(sweeps.selection_counts(tables.tuned, families), families)
    per_cell = len(families) + len(families) * (len(families) - 1) // 2
    return {
        "intro": (
            f"This study sweeps {plural(len(families), 'regularizer')} over strengths: "
            f"{join_names(described)}. For each dataset · model, the best strength of each "
            f"family by {metric_style(primary).label} (the best mean on the test data, so an "
            "optimistic pick), and the strengths these seeds cannot tell apart from it: each "
            "is compared with the best on runs paired by seed, with Holm's correction over the "
            "family's strengths. The figures show "
            f"{metric_style(primary).label}, the test data loss and the train–test accuracy gap "
            "against strength."
        ),
        "cells": cells,
        "selection_text": (
            f"For a fair comparison, each family's strength is chosen anew for each dataset · "
            f"model and seed: the one with the "
            f"{'highest' if HIGHER_IS_BETTER[criterion] else 'lowest'} "
            f"{metric_style(criterion).label} (tuning.criterion: {criterion}; on a tie, the "
            "weaker strength). Only validation numbers take part in the choice, so the test set "
            "judges it without having made it. The chosen run's test results stand for the "
            f"family on that seed, and the tuned families are compared, paired by seed, with "
            f"{baseline} and with each other, with Holm's correction over the {per_cell} "
            "comparisons of each dataset · model and metric. Tuning trains nothing beyond the "
            "sweep itself."
        ),
        "selection": selection,
        "tuned": tuned_rows(tables.tuned_comparisons, judged),
        "show_cell": len({row["cell"] for row in selection}) > 1,
    }


def _method(
    config: Mapping[str, Any], tables: ReportTables, judged: Sequence[str]
) -> dict[str, Any]:
    """Every number the Method section states, from the constants and settings the code used."""
    comparisons = tables.comparisons
    first = comparisons.iloc[0] if len(comparisons) else None
    return {
        "baseline": config["baseline"],
        "training": _flow(config["training"]),
        "level": _level(comparisons),
        "alpha": _alpha(comparisons),
        "power": "–" if first is None else f"{float(first['power']) * 100:g}%",
        "prediction_level": f"{stats.PREDICTION_LEVEL * 100:g}%",
        "seed_cap": stats.SEED_CAP,
        "auto_t_below": stats.AUTO_T_BELOW,
        "wilcoxon_min_pairs": (
            "–" if first is None else stats.wilcoxon_min_pairs(float(first["alpha"]))
        ),
        "normality_min_n": stats.NORMALITY_MIN_N,
        "normality_alpha": f"{stats.NORMALITY_ALPHA:g}",
        "bootstrap_resamples": f"{stats.BOOTSTRAP_RESAMPLES:,}",
        "bootstrap_seed": stats.BOOTSTRAP_SEED,
        "ranking_min_datasets": stats.RANKING_MIN_DATASETS,
        "adequacy_window": f"{stats.ADEQUACY_WINDOW_FRACTION:.0%}",
        "adequacy_min_window": stats.ADEQUACY_MIN_WINDOW,
        "adequacy_loss_fall": f"{stats.ADEQUACY_LOSS_FALL:.0%}",
        "protocol": protocol_method(config["training"]),
        "near_zero": f"{metrics.NEAR_ZERO:g}",
        "loss_note": _loss_note(tables.runs),
        "pieces": [
            text
            for piece, text in PIECE_METHODS.items()
            if any(piece in body for body in config["regularizers"].values())
        ],
        "compared": join_names([metric_style(m).label for m in sorted(set(comparisons["metric"]))]),
        "smallest_effect": smallest_effect_text(comparisons, judged),
        "smallest_points": format_diff(stats.SMALLEST_EFFECT_POINTS, "test_accuracy", signed=False),
        "smallest_examples": plural(stats.SMALLEST_EFFECT_EXAMPLES, "test example"),
        "smallest_loss": f"{stats.SMALLEST_EFFECT_LOSS:g}",
        "judged": join_names([metric_style(m).label for m in judged]),
    }


def _loss_note(runs: pd.DataFrame) -> str:
    """What "test loss" is in these runs: the data loss, or (older runs) Keras's objective."""
    if runs.loc[runs["status"] == "ok", "test_objective"].notna().any():
        return (
            "Test loss is the data loss alone (cross-entropy); the objective Keras optimizes "
            "and model.evaluate prints, data loss plus weight and activity penalties, is "
            "test_objective in summary.csv and in the HTML tables."
        )
    return (
        "These runs recorded one test loss, the objective Keras reports (data loss plus "
        "weight and activity penalties); rerun them to separate the two."
    )


def _flow(value: Any) -> str:
    text: str = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return text.strip()
