"""End to end: real Snakemake runs a tiny study from config to PDF."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pypdf import PdfReader

from regbench.report import format_number

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

TINY_STUDY = {
    "study": {"name": "tiny", "title": "Tiny end-to-end study", "description": "Two datasets."},
    "datasets": {
        "iris": {"source": "sklearn", "loader": "iris"},
        "blobs": {
            "source": "synthetic",
            "synthetic": {"n_samples": 120, "n_features": 6, "n_informative": 3},
        },
    },
    "models": {
        "mlp": {"type": "mlp", "units": [8]},
        "cnn": {"type": "cnn", "filters": [4], "units": [4]},
    },
    "regularizers": {
        "none": {},
        "l2": {"kernel": {"l2": 1.0e-3}},
        "dropout_0.3": {"dropout": {"rate": 0.3}},
    },
    "seeds": [0, 1],
    "training": {"epochs": 3, "batch_size": 16},
    "baseline": "none",
}


def snakemake(
    workdir: Path, *args: str, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run Snakemake on the project's Snakefile in ``workdir``."""
    return subprocess.run(
        [
            *SNAKEMAKE,
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(workdir / "config.yaml"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )


def job_counts(output: str) -> Counter[str]:
    """Parse Snakemake's 'Job stats' table."""
    counts: Counter[str] = Counter()
    table = output.split("Job stats:", 1)[1]
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match:
            break
        counts[match[1]] = int(match[2])
    return counts


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny study run once, for real, by Snakemake."""
    workdir = tmp_path_factory.mktemp("tiny")
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY_STUDY), encoding="utf-8")
    dry = snakemake(workdir, "--dry-run")
    assert dry.returncode == 0, dry.stderr + dry.stdout
    (workdir / "dry-run.txt").write_text(dry.stdout + dry.stderr, encoding="utf-8")
    run = snakemake(workdir, "--cores", "2", env={"REGBENCH_PROGRESS_SECONDS": "2"})
    assert run.returncode == 0, run.stderr[-5000:]
    (workdir / "run.txt").write_text(run.stdout + run.stderr, encoding="utf-8")
    return workdir


@pytest.mark.e2e
def test_dry_run_schedules_one_training_job_per_combination(study: Path) -> None:
    """A dry run plans one train_cell per dataset x mlp x regularizer, and no CNN cell."""
    counts = job_counts((study / "dry-run.txt").read_text(encoding="utf-8"))
    assert counts["train_cell"] == 2 * 1 * 3
    assert counts["prepare_dataset"] == 2
    assert counts["render_report"] == 1


@pytest.mark.e2e
def test_progress_is_printed_while_the_study_runs(study: Path) -> None:
    """Snakemake's output carries regbench's progress lines, ending at 12/12 runs done."""
    lines = re.findall(r"regbench: \d+/12 runs done.*", (study / "run.txt").read_text("utf-8"))
    assert len(lines) >= 2
    assert lines[-1].startswith("regbench: 12/12 runs done (100%)")


@pytest.mark.e2e
def test_every_run_writes_metrics_history_and_log(study: Path) -> None:
    """Each combination has metrics.json with the promised fields, a history and a log."""
    runs = list((study / "results" / "runs").glob("*/*/*/seed*/metrics.json"))
    assert len(runs) == 12
    for path in runs:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        assert metrics["status"] == "ok"
        for field in (
            "test_loss",
            "test_accuracy",
            "test_f1_macro",
            "test_roc_auc",
            "best_epoch",
            "epochs_run",
            "gap_accuracy",
            "weight_l1",
            "weight_sparsity",
            "train_seconds",
        ):
            assert metrics[field] is not None, field
        history = pd.read_csv(path.parent / "history.csv")
        assert list(history["epoch"]) == [1, 2, 3]
        dataset, model, regularizer, seed = path.parent.relative_to(study / "results/runs").parts
        log = study / "logs/train_cell" / dataset / model / f"{regularizer}.log"
        assert f"{seed.removeprefix('seed')}: 'ok'" in log.read_text(encoding="utf-8")


@pytest.mark.e2e
def test_summary_agrees_with_runs(study: Path) -> None:
    """summary.csv's n and mean per cell and metric equal a groupby over runs.csv."""
    runs = pd.read_csv(study / "results/tables/runs.csv")
    summary = pd.read_csv(study / "results/tables/summary.csv")
    assert len(runs) == 12
    expected = runs.groupby(["dataset", "model", "regularizer"])["test_accuracy"].agg(
        ["mean", "count"]
    )
    got = summary[summary["metric"] == "test_accuracy"].set_index(
        ["dataset", "model", "regularizer"]
    )
    assert len(got) == len(expected) == 6
    for key, row in expected.iterrows():
        assert got.loc[key, "n"] == row["count"]
        assert got.loc[key, "mean"] == pytest.approx(row["mean"], rel=1e-12)
        assert got.loc[key, "ci_low"] <= row["mean"] <= got.loc[key, "ci_high"]


@pytest.mark.e2e
def test_pdf_holds_datasets_regularizers_and_summary_numbers(study: Path) -> None:
    """The PDF names each dataset and regularizer and prints summary.csv's means."""
    reader = PdfReader(study / "reports/report.pdf")
    assert len(reader.pages) >= 4
    text = " ".join(page.extract_text() for page in reader.pages)
    for name in ("iris", "blobs", "none", "l2", "dropout_0.3", "Tiny end-to-end study"):
        assert name in text
    summary = pd.read_csv(study / "results/tables/summary.csv")
    for metric in ("test_accuracy", "test_loss"):
        for mean in summary[summary["metric"] == metric]["mean"]:
            assert format_number(mean, 3) in text
    assert "model cnn is a CNN and needs image data" in text


class _Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v or "" for k, v in attrs if k in {"src", "href", "data", "srcset", "poster"}]


@pytest.mark.e2e
def test_html_references_no_external_resource(study: Path) -> None:
    """Every src/href in the HTML is an inline data: URI or an in-page anchor."""
    html = (study / "reports/report.html").read_text(encoding="utf-8")
    parser = _Resources()
    parser.feed(html)
    assert parser.urls, "the report should carry figures"
    assert all(url.startswith(("data:", "#")) for url in parser.urls), parser.urls
    assert "url(" not in html.split("</style>")[0].split("<style>")[1]


def test_bad_config_stops_snakemake_with_the_key_named(tmp_path: Path) -> None:
    """A config with an undeclared baseline fails before any job, naming the problem."""
    bad = {**TINY_STUDY, "baseline": "nothing"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")
    result = snakemake(tmp_path, "--dry-run")
    assert result.returncode != 0
    assert "baseline 'nothing' is not a declared regularizer" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()
