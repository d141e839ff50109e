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
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import yaml

from regbench import appendix, metrics, stats
from regbench.config import canonical_json
from regbench.findings import (
    MATRIX_SYMBOLS,
    add_granularity,
    answer_sentences,
    findings_by_effect,
    verdict_matrix,
)
from regbench.wording import (
    breakable,
    format_diff,
    format_number,
    format_p,
    format_value,
    is_missing,
    join_names,
    metric_style,
    plural,
)

__all__ = [
    "HTML_ONLY_COLUMNS",
    "HTML_ONLY_FIGURE_KINDS",
    "PDF_FIGURE_KINDS",
    "TABLE_METRICS",
    "build_context",
    "copy_main_figures",
    "format_number",
    "render_html",
    "write_pdf",
]

#: Metrics of a dataset's results table, after the ones the study's report names.
TABLE_METRICS = (
    "test_accuracy",
    "test_loss",
    "test_f1_macro",
    "test_roc_auc",
    "gap_accuracy",
    "epochs_run",
)

#: Table columns shown in the HTML only unless the study's report judges them.
HTML_ONLY_COLUMNS = ("test_f1_macro", "test_roc_auc")

#: Figure kinds printed in the PDF, in this order; the main figures of the report.
PDF_FIGURE_KINDS = ("paired_differences", "learning_curves", "critical_difference")

#: Figure kinds shown in the HTML report only, to keep the PDF short (the PDF says so).
HTML_ONLY_FIGURE_KINDS = {
    "test_accuracy": "per-regularizer plots of each cell's own confidence interval",
    "generalization_gap": "plots of the generalization gap",
    "weights": "histograms of the final weights",
}

# TODO(stats): the study's validated `report:` block replaces these defaults.
_REPORT_DEFAULTS = {
    "primary": "test_accuracy",
    "metrics": ["test_accuracy", "test_loss", "gap_accuracy"],
}


def build_context(
    *,
    config: Mapping[str, Any],
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    comparisons: pd.DataFrame,
    rankings: pd.DataFrame,
    architectures: Mapping[str, Any],
    cards: Mapping[str, Mapping[str, Any]],
    figures: Sequence[Mapping[str, Any]],
    figure_dir: Path,
    skipped: Sequence[Mapping[str, str]],
    commit: str = "unknown",
    config_commit: str = "unknown",
) -> dict[str, Any]:
    """Everything the template prints, already worded and formatted."""
    report_metrics = _report_metrics(config, comparisons)
    test_sizes = {name: int(card["split_sizes"]["test"]) for name, card in cards.items()}
    comparisons = add_granularity(comparisons, test_sizes)
    cells = [
        (d, m)
        for d in config["datasets"]
        for m in config["models"]
        if ((summary["dataset"] == d) & (summary["model"] == m)).any()
    ]
    caveat_cells = _undertrained_cells(summary)
    pictures = _figures(figures, figure_dir)
    return {
        "meta": _meta(config, runs, commit, config_commit),
        "glance": _glance(config, runs, comparisons, cards, cells, report_metrics, caveat_cells),
        "findings": [
            findings_by_effect(comparisons, metric, config["baseline"], caveat_cells)
            for metric in report_metrics
        ],
        "sections": [
            _dataset_section(
                dataset,
                config,
                summary,
                comparisons,
                cards[dataset],
                architectures,
                pictures,
                report_metrics,
            )
            for dataset in config["datasets"]
            if any(d == dataset for d, _ in cells)
        ],
        "rankings": _rankings(rankings, report_metrics[0], pictures),
        "method": _method(config, comparisons, report_metrics),
        "html_only": _html_only(figures),
        "appendix": {
            **appendix.provenance(runs),
            "skipped": appendix.group_skipped(skipped, list(config["regularizers"])),
            "problems": appendix.problems(runs),
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
    """The metrics the report judges, primary first, among those the tables compare."""
    settings = config.get("report") or _REPORT_DEFAULTS
    primary = str(settings.get("primary", _REPORT_DEFAULTS["primary"]))
    wanted = [primary, *(str(m) for m in settings.get("metrics", []) if m != primary)]
    compared = set(comparisons["metric"])
    return [m for m in wanted if m in compared] or sorted(compared)[:1]


def _undertrained_cells(summary: pd.DataFrame) -> list[str]:
    """``dataset · model`` of cells whose runs were still improving at the last epoch."""
    # TODO(stats): summary.csv will carry a training-adequacy flag per cell.
    if "undertrained" not in summary.columns:
        return []
    flagged = summary[summary["undertrained"].astype(bool)]
    return sorted({f"{r.dataset} · {r.model}" for r in flagged.itertuples()})


def _meta(
    config: Mapping[str, Any], runs: pd.DataFrame, commit: str, config_commit: str
) -> dict[str, Any]:
    """Title, the grid in one line, and where the report came from."""
    study = config["study"]
    now = dt.datetime.now(dt.timezone.utc)
    ok = int((runs["status"] == "ok").sum())
    succeeded = "all succeeded" if ok == len(runs) else f"{ok} succeeded"
    grid = [
        plural(len(config["datasets"]), "dataset"),
        plural(len(config["models"]), "model"),
        f"{plural(len(config['regularizers']), 'regularizer')} (baseline {config['baseline']})",
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
    runs: pd.DataFrame,
    comparisons: pd.DataFrame,
    cards: Mapping[str, Mapping[str, Any]],
    cells: Sequence[tuple[str, str]],
    report_metrics: Sequence[str],
    caveat_cells: Sequence[str],
) -> dict[str, Any]:
    """Page one: the question, the verdict matrix, plain answers and the caveats that matter."""
    baseline, primary = config["baseline"], report_metrics[0]
    regularizers = [r for r in config["regularizers"] if r != baseline]
    style = metric_style(primary)
    unit = "percentage points" if style.proportion else "in the metric's own units"
    level = _level(comparisons)
    return {
        "question": config["study"].get("description") or config["study"]["title"],
        "matrix": {
            "title": f"Paired effect on {style.label} against {baseline}",
            "regularizers": [breakable(r) for r in regularizers],
            "rows": verdict_matrix(comparisons, primary, cells, regularizers),
            "caption": (
                f"Each cell: the mean paired difference (regularizer minus {baseline}, {unit}) "
                f"over the seeds both ran, and its {level} confidence interval. "
                f"{MATRIX_SYMBOLS['better']} better, {MATRIX_SYMBOLS['worse']} worse, "
                f"{MATRIX_SYMBOLS['indistinguishable']} indistinguishable from {baseline} "
                f"(Holm-adjusted p ≥ {_alpha(comparisons)}). Italic: a difference no larger than "
                "one test example. A dash: a combination not run."
            ),
        },
        "sentences": answer_sentences(
            comparisons, list(report_metrics), baseline, len(config["seeds"])
        ),
        "caveats": _caveats(config, runs, comparisons, cards, primary, caveat_cells),
    }


def _level(comparisons: pd.DataFrame) -> str:
    values = comparisons["confidence"].dropna().unique()
    return f"{float(values[0]) * 100:g}%" if len(values) else "–"


def _alpha(comparisons: pd.DataFrame) -> str:
    values = comparisons["alpha"].dropna().unique()
    return f"{float(values[0]):g}" if len(values) else "–"


def _caveats(
    config: Mapping[str, Any],
    runs: pd.DataFrame,
    comparisons: pd.DataFrame,
    cards: Mapping[str, Mapping[str, Any]],
    primary: str,
    caveat_cells: Sequence[str],
) -> list[str]:
    """What limits the conclusions of this study, computed from it."""
    caveats = [
        f"{plural(len(config['seeds']), 'seed')} per cell, paired by seed: intervals and "
        "tests measure seed-to-seed variation (initialization, dropout masks, batch order), "
        "nothing else.",
        _split_caveat(config),
        _granularity_caveat(comparisons, cards, primary),
    ]
    if caveat_cells:
        caveats.append(
            f"Still improving at the last epoch: {join_names(list(caveat_cells))}. "
            "A gain there may be faster convergence rather than regularization."
        )
    bad = runs[runs["status"] != "ok"]["status"].value_counts()
    if len(bad):
        counts = join_names([f"{n} {status}" for status, n in bad.items()])
        caveats.append(f"Runs not averaged in: {counts} (listed in the appendix).")
    if "test_objective" not in runs.columns and "test_loss" in comparisons["metric"].values:
        caveats.append(
            "Test loss here is the objective Keras reports: the data loss plus any weight "
            "or activity penalty, so penalized regularizers look worse on it by construction."
        )
    return [c for c in caveats if c]


def _split_caveat(config: Mapping[str, Any]) -> str:
    states = sorted(
        {
            str(body.get("split", {}).get("random_state", "–"))
            for body in config["datasets"].values()
        }
    )
    return (
        f"One train/validation/test split per dataset (random state {join_names(states)}): "
        "every run sees the same test rows, so the intervals say nothing about another split."
    )


def _granularity_caveat(
    comparisons: pd.DataFrame, cards: Mapping[str, Mapping[str, Any]], primary: str
) -> str:
    """One test example in points, per dataset, and how many differences are that small."""
    sizes = {name: int(card["split_sizes"]["test"]) for name, card in cards.items()}

    def points(n: int) -> str:
        return format_diff(1.0 / n, "test_accuracy", signed=False)

    if len(set(sizes.values())) == 1:
        n = next(iter(sizes.values()))
        where = f"by {points(n)} points on every dataset ({n} test rows)"
    else:
        where = "by " + ", ".join(
            f"{points(n)} points on {name} ({n} test rows)" for name, n in sizes.items()
        )
    chosen = comparisons[comparisons["metric"] == primary]
    tiny = int(chosen["within_one_example"].sum())
    tail = (
        f"; {tiny} of the {len(chosen)} differences in the matrix are no larger than that "
        "(in italics)"
        if tiny
        else ""
    )
    return f"One test example moves test accuracy {where}{tail}."


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
    summary: pd.DataFrame,
    comparisons: pd.DataFrame,
    card: Mapping[str, Any],
    architectures: Mapping[str, Any],
    pictures: Mapping[tuple[str | None, str], list[dict[str, Any]]],
    report_metrics: Sequence[str],
) -> dict[str, Any]:
    """One dataset: its card in a paragraph, then per model its table and figures."""
    columns = [*report_metrics, *(m for m in TABLE_METRICS if m not in report_metrics)]
    models = []
    for model in config["models"]:
        cell = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
        if cell.empty:
            continue
        chosen = comparisons[(comparisons["dataset"] == dataset) & (comparisons["model"] == model)]
        models.append(
            {
                "name": model,
                "table": _results_table(cell, chosen, config, columns, report_metrics),
                "architecture": _architecture(architectures, dataset, model, config["baseline"]),
                "figures": pictures.get((dataset, model), []),
            }
        )
    return {
        "name": dataset,
        "anchor": f"dataset-{dataset}",
        "description": config["datasets"][dataset].get("description", ""),
        "card": _card_text(card),
        "models": models,
    }


def _results_table(
    cell: pd.DataFrame,
    comparisons: pd.DataFrame,
    config: Mapping[str, Any],
    columns: Sequence[str],
    judged: Sequence[str],
) -> dict[str, Any]:
    """Baseline first, one line per regularizer; columns equal in every row left out, with a note.

    Metrics the report does not judge that are also no main table column
    (:data:`HTML_ONLY_COLUMNS`) are shown in the HTML only, to fit a printed page.
    """
    baseline = config["baseline"]
    verdicts = {(r.regularizer, r.metric): r.verdict for r in comparisons.itertuples()}
    present = [m for m in columns if (cell["metric"] == m).any()]
    headings = [("n", False)] + [
        (metric_style(m).heading, m in HTML_ONLY_COLUMNS and m not in judged) for m in present
    ]
    order = [baseline, *(r for r in config["regularizers"] if r != baseline)]
    rows = []
    for regularizer in order:
        values = cell[cell["regularizer"] == regularizer].set_index("metric")
        if not values.empty:
            texts = [_n_text(values.iloc[0])] + [
                _value_text(values, m, verdicts.get((regularizer, m))) for m in present
            ]
            rows.append(
                {"regularizer": regularizer, "is_baseline": regularizer == baseline, "cells": texts}
            )
    keep = [
        i for i in range(len(headings)) if len(rows) < 2 or len({r["cells"][i] for r in rows}) > 1
    ]
    dropped = [
        f"{headings[i][0]} {rows[0]['cells'][i]}" for i in range(len(headings)) if i not in keep
    ]
    for row in rows:
        row["cells"] = [{"text": row["cells"][i], "screen_only": headings[i][1]} for i in keep]
    return {
        "headings": [{"text": headings[i][0], "screen_only": headings[i][1]} for i in keep],
        "rows": rows,
        "dropped": "; ".join(dropped),
    }


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
    mark = MATRIX_SYMBOLS[verdict] if verdict in ("better", "worse") else ""
    return f"{text} {mark}".strip()


def _card_text(card: Mapping[str, Any]) -> str:
    """The data card in two sentences."""
    sizes = card["split_sizes"]
    balance = ", ".join(f"{name} {share:.0%}" for name, share in card["class_balance"].items())
    source = str(card["source"])
    if "download" in card:
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
    rankings: pd.DataFrame,
    metric: str,
    pictures: Mapping[tuple[str | None, str], list[dict[str, Any]]],
) -> dict[str, Any]:
    """Per model, ranks across at least two datasets with the Friedman test and the CD diagram."""
    chosen = rankings[(rankings["metric"] == metric) & (rankings["n_datasets"] >= 2)]
    models = []
    for model, ranks in chosen.groupby("model", sort=False):
        first = ranks.iloc[0]
        test = ""
        if not is_missing(first["friedman_statistic"]):
            test = (
                f"Friedman χ² = {format_number(first['friedman_statistic'], 2)}, "
                f"p {format_p(first['friedman_p'])}; Nemenyi critical difference "
                f"{format_number(first['critical_difference'], 2)} ranks."
            )
        models.append(
            {
                "model": model,
                "n_datasets": int(first["n_datasets"]),
                "ranks": [
                    (r.regularizer, format_number(r.average_rank, 2))
                    for r in ranks.sort_values("average_rank").itertuples()
                ],
                "test": test,
                "note": "" if pd.isna(first["note"]) else str(first["note"]),
                "figures": [
                    f
                    for f in pictures.get((None, str(model)), [])
                    if f["kind"] == "critical_difference"
                ],
            }
        )
    left_out = sorted(set(rankings.loc[rankings["n_datasets"] < 2, "model"]))
    return {
        "label": metric_style(metric).label,
        "models": models,
        "left_out": (
            f"Not ranked, for lack of a second dataset: {join_names(left_out)}." if left_out else ""
        ),
    }


def _method(
    config: Mapping[str, Any], comparisons: pd.DataFrame, report_metrics: Sequence[str]
) -> dict[str, Any]:
    """Every number the Method section states, from the constants and settings the code used."""
    first = comparisons.iloc[0] if len(comparisons) else None
    return {
        "baseline": config["baseline"],
        "training": yaml.safe_dump(
            config["training"], default_flow_style=True, width=10_000
        ).strip(),
        "level": _level(comparisons),
        "alpha": _alpha(comparisons),
        "power": "–" if first is None else f"{float(first['power']) * 100:g}%",
        "auto_t_below": stats.AUTO_T_BELOW,
        "normality_min_n": stats.NORMALITY_MIN_N,
        "normality_alpha": f"{stats.NORMALITY_ALPHA:g}",
        "bootstrap_resamples": f"{stats.BOOTSTRAP_RESAMPLES:,}",
        "bootstrap_seed": stats.BOOTSTRAP_SEED,
        "near_zero": f"{metrics.NEAR_ZERO:g}",
        "compared": join_names([metric_style(m).label for m in sorted(set(comparisons["metric"]))]),
        "judged": join_names([metric_style(m).label for m in report_metrics]),
        "regularizers": [
            {
                "name": name,
                "spec": yaml.safe_dump(body, default_flow_style=True, width=10_000).strip(),
            }
            for name, body in config["regularizers"].items()
        ],
    }
