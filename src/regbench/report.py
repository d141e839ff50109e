"""Render the study report: one Jinja2 template set, a self-contained HTML file and a PDF.

All numbers are formatted here; templates only loop and print. Nothing from
the config or the data is marked safe, and the PDF renderer may fetch only
``data:`` URIs (everything the report shows is inlined).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import math
import os
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import yaml

from regbench.config import canonical_json
from regbench.stats import higher_is_better, write_findings

__all__ = ["build_context", "format_ci", "format_number", "render_html", "write_pdf"]

#: Metrics whose comparisons open the report as findings.
FINDING_METRICS = ("test_accuracy", "gap_accuracy")

#: Columns of a dataset's results table: (metric, heading, digits).
TABLE_METRICS = (
    ("test_accuracy", "Test accuracy", 3),
    ("test_loss", "Test loss", 3),
    ("test_f1_macro", "Macro F1", 3),
    ("test_roc_auc", "ROC AUC", 3),
    ("gap_accuracy", "Gap (acc.)", 3),
    ("epochs_run", "Epochs", 1),
)

PACKAGES = (
    "tensorflow",
    "keras",
    "snakemake",
    "scikit-learn",
    "pandas",
    "numpy",
    "scipy",
    "matplotlib",
    "jinja2",
    "weasyprint",
)


def format_number(value: Any, digits: int = 3) -> str:
    """A number as the report prints it; a dash for a missing value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def format_ci(mean: Any, low: Any, high: Any, digits: int = 3) -> str:
    """``mean [low, high]``, or the mean alone when there is no interval."""
    text = format_number(mean, digits)
    if low is None or (isinstance(low, float) and not math.isfinite(low)):
        return text
    return f"{text} [{format_number(low, digits)}, {format_number(high, digits)}]"


def svg_data_uri(path: Path) -> str:
    """An SVG file as a ``data:`` URI, so the report carries its figures inside."""
    return "data:image/svg+xml;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


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
    """Everything the template prints, already formatted."""
    baseline = config["baseline"]
    regularizer_order = list(config["regularizers"])
    sections = []
    for dataset in config["datasets"]:
        card = cards[dataset]
        models = []
        for model in config["models"]:
            cell = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
            if cell.empty:
                continue
            verdicts = _verdicts(comparisons, dataset, model)
            best = _best(cell)
            rows = []
            for regularizer in regularizer_order:
                reg_rows = cell[cell["regularizer"] == regularizer].set_index("metric")
                if reg_rows.empty:
                    continue
                first = reg_rows.iloc[0]
                rows.append(
                    {
                        "regularizer": regularizer,
                        "is_baseline": regularizer == baseline,
                        "n": int(reg_rows.loc["test_accuracy", "n"]),
                        "diverged": int(first["n_diverged"]),
                        "failed": int(first["n_failed"]),
                        "cells": [
                            {
                                "text": format_ci(
                                    reg_rows.loc[metric, "mean"],
                                    reg_rows.loc[metric, "ci_low"],
                                    reg_rows.loc[metric, "ci_high"],
                                    digits,
                                ),
                                "best": best.get(metric) == regularizer,
                                "mark": _MARKS.get(verdicts.get((regularizer, metric), ""), ""),
                            }
                            for metric, _, digits in TABLE_METRICS
                        ],
                    }
                )
            models.append(
                {
                    "name": model,
                    "spec": config["models"][model],
                    "rows": rows,
                    "architecture": _architecture(architectures, dataset, model, baseline),
                    "figures": [
                        {"uri": svg_data_uri(figure_dir / f["file"]), "caption": f["caption"]}
                        for f in figures
                        if f["dataset"] == dataset and f["model"] == model
                    ],
                }
            )
        sections.append(
            {
                "name": dataset,
                "anchor": f"dataset-{dataset}",
                "card": _card_rows(card),
                "description": config["datasets"][dataset].get("description", ""),
                "models": models,
            }
        )

    findings = []
    for dataset in config["datasets"]:
        for model in config["models"]:
            chosen = comparisons[
                (comparisons["dataset"] == dataset) & (comparisons["model"] == model)
            ]
            sentences = write_findings(chosen, FINDING_METRICS) if len(chosen) else []
            if sentences:
                findings.append({"title": f"{dataset} · {model}", "sentences": sentences})

    ok = runs[runs["status"] == "ok"]
    not_ok = runs[runs["status"] != "ok"]
    now = dt.datetime.now(dt.timezone.utc)
    study = config["study"]
    return {
        "title": study["title"],
        "description": study.get("description", ""),
        "name": study["name"],
        "generated": now.strftime("%Y-%m-%d %H:%M UTC"),
        "generated_iso": now.isoformat(timespec="seconds"),
        "commit": commit,
        "config_commit": config_commit,
        "config_digest": hashlib.sha256(canonical_json(dict(config)).encode()).hexdigest()[:12],
        "baseline": baseline,
        "headings": [heading for _, heading, _ in TABLE_METRICS],
        "grid": {
            "datasets": ", ".join(config["datasets"]),
            "models": ", ".join(config["models"]),
            "regularizers": ", ".join(regularizer_order),
            "seeds": ", ".join(str(s) for s in config["seeds"]),
            "runs": len(runs),
            "runs_ok": len(ok),
            "compute": _duration(float(ok["train_seconds"].fillna(0).sum())),
        },
        "regularizers": [
            {"name": name, "spec": _inline_yaml(body)}
            for name, body in config["regularizers"].items()
        ],
        "training": _inline_yaml(config["training"]),
        "sections": sections,
        "findings": findings,
        "rankings": _rankings(rankings, figures, figure_dir),
        "skipped": list(skipped),
        "problems": [
            {
                "run": f"{r.dataset} / {r.model} / {r.regularizer} / seed {r.seed}",
                "status": r.status,
                "detail": (
                    f"diverged at epoch {int(r.diverged_epoch)}"
                    if r.status == "diverged" and pd.notna(r.diverged_epoch)
                    else str(r.error)
                    if r.status == "failed" and isinstance(r.error, str)
                    else "no result: the job did not finish"
                    if r.status == "missing"
                    else ""
                ),
            }
            for r in not_ok.itertuples()
        ],
        "config_yaml": yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True),
        "versions": _versions(),
        "jobs": _job_resources(runs),
        "hardware": _hardware(sorted(set(ok["device"].dropna()))),
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


_MARKS = {"better": "▲", "worse": "▼"}


def _verdicts(comparisons: pd.DataFrame, dataset: str, model: str) -> dict[tuple[str, str], str]:
    """(regularizer, metric) -> verdict against the baseline, for one dataset and model."""
    chosen = comparisons[(comparisons["dataset"] == dataset) & (comparisons["model"] == model)]
    return {(r.regularizer, r.metric): r.verdict for r in chosen.itertuples()}


def _best(cell: pd.DataFrame) -> dict[str, str]:
    """metric -> the regularizer with the best mean, for the table's comparable metrics."""
    best = {}
    for metric, _, _ in TABLE_METRICS:
        if metric == "epochs_run":
            continue
        rows = cell[(cell["metric"] == metric) & cell["mean"].notna()]
        if rows.empty:
            continue
        index = rows["mean"].idxmax() if higher_is_better(metric) else rows["mean"].idxmin()
        best[metric] = str(rows.loc[index, "regularizer"])
    return best


def _rankings(
    rankings: pd.DataFrame, figures: Sequence[Mapping[str, Any]], figure_dir: Path
) -> list[dict[str, Any]]:
    """Per model: average ranks by test accuracy, the Friedman test and the CD diagram."""
    result = []
    chosen = rankings[rankings["metric"] == "test_accuracy"]
    for model, ranks in chosen.groupby("model", sort=False):
        first = ranks.iloc[0]
        diagram = next(
            (f for f in figures if f["kind"] == "critical_difference" and f["model"] == model), None
        )
        result.append(
            {
                "model": model,
                "n_datasets": int(first["n_datasets"]),
                "ranks": [
                    (r.regularizer, format_number(r.average_rank, 2))
                    for r in ranks.sort_values("average_rank").itertuples()
                ],
                "friedman": (
                    f"Friedman χ² = {format_number(first['friedman_statistic'], 2)}, "
                    f"p = {format_number(first['friedman_p'], 3)}; Nemenyi critical difference "
                    f"{format_number(first['critical_difference'], 2)}"
                    if math.isfinite(float(first["friedman_statistic"]))
                    else ""
                ),
                "note": "" if pd.isna(first["note"]) else str(first["note"]),
                "figure": (
                    {
                        "uri": svg_data_uri(figure_dir / diagram["file"]),
                        "caption": diagram["caption"],
                    }
                    if diagram
                    else None
                ),
            }
        )
    return result


def _architecture(
    architectures: Mapping[str, Any], dataset: str, model: str, baseline: str
) -> dict[str, Any] | None:
    """The baseline's layers, and the parameter count of every regularized variant."""
    layers = architectures.get(f"{dataset}/{model}/{baseline}")
    if not layers:
        return None
    prefix = f"{dataset}/{model}/"
    total = sum(layer["params"] for layer in layers)
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
        "total": f"{total:,}",
        "variants": ", ".join(
            f"{cell.removeprefix(prefix)} {count:,}"
            for cell, variant in sorted(architectures.items())
            if cell.startswith(prefix)
            and variant
            and (count := sum(layer["params"] for layer in variant)) != total
        ),
    }


def _job_resources(runs: pd.DataFrame) -> dict[str, Any]:
    """Per dataset and model: training jobs' wall time and peak memory (Snakemake benchmarks)."""
    measured = runs.dropna(subset=["job_seconds"])
    rows = [
        (
            f"{dataset} · {model}",
            str(len(group)),
            format_number(group["job_seconds"].median(), 1),
            format_number(group["job_seconds"].max(), 1),
            format_number(group["train_seconds"].median(), 1),
            format_number(group["max_rss_mb"].max(), 0),
        )
        for (dataset, model), group in measured.groupby(["dataset", "model"], sort=False)
    ]
    return {
        "rows": rows,
        "total": _duration(float(measured["job_seconds"].sum())),
        "peak": format_number(measured["max_rss_mb"].max(), 0),
    }


def _card_rows(card: Mapping[str, Any]) -> list[tuple[str, str]]:
    sizes = card["split_sizes"]
    balance = ", ".join(f"{name}: {share:.1%}" for name, share in card["class_balance"].items())
    rows = [("Source", str(card["source"]))]
    if "download" in card:
        download = card["download"]
        rows += [("Downloaded from", str(download["url"])), ("sha256", str(download["sha256"]))]
    rows += [
        ("Kind", f"{card['kind']}, input shape {tuple(card['input_shape'])}"),
        ("Rows", str(card["rows"])),
        ("Features", str(card["features"])),
        ("Classes", f"{card['classes']} ({balance})"),
        (
            "Split",
            f"train {sizes['train']}, validation {sizes['validation']}, test {sizes['test']}",
        ),
        ("Validation", str(card.get("validation", "a hold-out of the training split"))),
        ("Scaling", f"{card['scaling']} (fitted on the training split)"),
    ]
    rows += [("Note", str(note)) for note in card.get("notes", [])]
    return rows


def _inline_yaml(value: Any) -> str:
    text: str = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
    return text.strip()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _versions() -> list[tuple[str, str]]:
    versions = [("python", platform.python_version())]
    for package in PACKAGES:
        try:
            versions.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            versions.append((package, "not installed"))
    return versions


def _hardware(devices: Sequence[str]) -> list[tuple[str, str]]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return [
        ("CPU", f"{cpu}, {os.cpu_count()} logical cores"),
        ("Platform", platform.platform()),
        ("Training devices", ", ".join(devices) or "–"),
    ]
