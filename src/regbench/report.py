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
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import yaml

from regbench.config import canonical_json

__all__ = ["build_context", "format_ci", "format_number", "render_html", "write_pdf"]

#: Columns of a dataset's results table: (metric, heading, digits).
TABLE_METRICS = (
    ("test_accuracy", "Test accuracy", 3),
    ("test_loss", "Test loss", 3),
    ("test_f1_macro", "Macro F1", 3),
    ("test_roc_auc", "ROC AUC", 3),
    ("gap_accuracy", "Gap (acc.)", 3),
    ("epochs_run", "Epochs", 1),
)

PACKAGES = ("tensorflow", "keras", "snakemake", "scikit-learn", "pandas", "numpy", "scipy",
            "matplotlib", "jinja2", "weasyprint")


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
    cards: Mapping[str, Mapping[str, Any]],
    figures: Sequence[Mapping[str, Any]],
    figure_dir: Path,
    skipped: Sequence[Mapping[str, str]],
    project_dir: Path | None = None,
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
                            format_ci(
                                reg_rows.loc[metric, "mean"],
                                reg_rows.loc[metric, "ci_low"],
                                reg_rows.loc[metric, "ci_high"],
                                digits,
                            )
                            for metric, _, digits in TABLE_METRICS
                        ],
                    }
                )
            models.append(
                {
                    "name": model,
                    "spec": config["models"][model],
                    "rows": rows,
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
                "description": card.get("description", ""),
                "models": models,
            }
        )

    ok = runs[runs["status"] == "ok"]
    not_ok = runs[runs["status"] != "ok"]
    study = config["study"]
    return {
        "title": study["title"],
        "description": study.get("description", ""),
        "name": study["name"],
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(project_dir),
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
            {"name": name, "spec": _inline_yaml(body)} for name, body in config["regularizers"].items()
        ],
        "training": _inline_yaml(config["training"]),
        "sections": sections,
        "skipped": list(skipped),
        "problems": [
            {
                "run": f"{r.dataset} / {r.model} / {r.regularizer} / seed {r.seed}",
                "status": r.status,
                "detail": (
                    f"diverged at epoch {int(r.diverged_epoch)}"
                    if r.status == "diverged" and pd.notna(r.diverged_epoch)
                    else ""
                ),
            }
            for r in not_ok.itertuples()
        ],
        "config_yaml": yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True),
        "versions": _versions(),
        "hardware": _hardware(sorted(set(ok["device"].dropna()))),
    }


def render_html(context: Mapping[str, Any], template_dir: Path) -> str:
    """Render the report template with the stylesheet inlined."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    stylesheet = (template_dir / "report.css").read_text(encoding="utf-8")
    return environment.get_template("report.html.j2").render(**context, stylesheet=stylesheet)


def write_pdf(html: str, path: Path, *, title: str) -> None:
    """Render the HTML to PDF, fetching nothing but ``data:`` URIs."""
    import weasyprint

    fetcher = weasyprint.URLFetcher(allowed_protocols={"data"}, timeout=1)
    document = weasyprint.HTML(string=html, url_fetcher=fetcher).render()
    document.metadata.title = title
    document.metadata.creator = "regbench"
    document.write_pdf(path)


def _card_rows(card: Mapping[str, Any]) -> list[tuple[str, str]]:
    sizes = card["split_sizes"]
    balance = ", ".join(f"{name}: {share:.1%}" for name, share in card["class_balance"].items())
    return [
        ("Source", str(card["source"])),
        ("Kind", f"{card['kind']}, input shape {tuple(card['input_shape'])}"),
        ("Rows", str(card["rows"])),
        ("Features", str(card["features"])),
        ("Classes", f"{card['classes']} ({balance})"),
        ("Split", f"train {sizes['train']}, validation {sizes['validation']}, test {sizes['test']}"),
        ("Scaling", f"{card['scaling']} (fitted on the training split)"),
    ]


def _inline_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _git_commit(project_dir: Path | None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=project_dir or Path.cwd(),
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=project_dir or Path.cwd(),
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


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
