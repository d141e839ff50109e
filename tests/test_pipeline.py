"""End to end: real Snakemake runs a tiny study from config to PDF."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fabricate import aggregate_fabricated, fabricate_study, study_config
from pypdf import PdfReader

from regbench.wording import format_value

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
    """regbench's progress lines, each a line of its own, count the run's jobs from 0 to all."""
    output = (study / "run.txt").read_text("utf-8")
    total = job_counts(output)["total"]
    lines = re.findall(r"^regbench: \d+/\d+ jobs done.*$", output, flags=re.MULTILINE)
    assert lines[0].startswith(f"regbench: 0/{total} jobs done (0%)")
    assert "render_report 1" in lines[0]  # The report's jobs are counted too.
    assert lines[-1].startswith(f"regbench: {total}/{total} jobs done (100%)")


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
    """The PDF names each dataset and regularizer and prints each row's summary.csv mean."""
    reader = PdfReader(study / "reports/report.pdf")
    assert len(reader.pages) >= 4
    text = "\n".join(page.extract_text() for page in reader.pages)
    for name in ("iris", "blobs", "none", "l2", "dropout_0.3", "Tiny end-to-end study"):
        assert name in text
    summary = pd.read_csv(study / "results/tables/summary.csv")
    lines = text.splitlines()
    for dataset in ("iris", "blobs"):
        # A dataset's table follows its section heading; each row starts with its name.
        start = lines.index(f"Dataset: {dataset}")
        for regularizer in ("none", "l2", "dropout_0.3"):
            row = next(line for line in lines[start:] if line.startswith(f"{regularizer} "))
            for metric in ("test_accuracy", "test_loss"):
                mean = summary[
                    (summary["dataset"] == dataset)
                    & (summary["regularizer"] == regularizer)
                    & (summary["metric"] == metric)
                ]["mean"].iloc[0]
                assert format_value(mean, metric) in row, (dataset, regularizer, metric, row)
    assert "Model cnn is a CNN and needs image data" in text


@pytest.mark.e2e
def test_snakemake_report_carries_the_report_tables_and_figures(study: Path) -> None:
    """snakemake --report report.zip holds the HTML and PDF report, the tables and main figures."""
    zipped = study / "snakemake-report.zip"
    result = snakemake(study, "--report", str(zipped))
    assert result.returncode == 0, result.stderr[-3000:]
    with zipfile.ZipFile(zipped) as archive:
        names = archive.namelist()
        viewer = archive.read(
            next(n for n in names if n.endswith("/report.html") and "/data/" not in n)
        )
    files = {name.rsplit("/", 1)[-1] for name in names}
    tables = {
        "runs",
        "summary",
        "comparisons",
        "rankings",
        "ranking_tests",
        "adequacy",
        "references",
    }
    assert {"report.html", "report.pdf"} | {f"{name}.csv" for name in tables} <= files
    assert any(re.search(r"/learning_curves/iris/mlp\.svg$", name) for name in names)
    # Each result carries its caption from templates/captions/.
    for caption in (
        "Learning curves of model mlp on iris",
        "Each regularizer against the baseline",
    ):
        assert caption in viewer.decode("utf-8")


@pytest.mark.e2e
def test_tables_carry_power_intervals_adequacy_and_rankings(study: Path) -> None:
    """Every comparison has seeds needed or the cap flag, and the new tables are written."""
    tables = study / "results/tables"
    runs = pd.read_csv(tables / "runs.csv")
    assert "test_objective" in runs.columns
    comparisons = pd.read_csv(tables / "comparisons.csv")
    tested = comparisons[comparisons["n_pairs"] >= 2]
    assert len(tested) and (tested["seeds_needed"].notna() ^ tested["beyond_seed_cap"]).all()
    assert set(comparisons["metric"]) >= {"test_accuracy", "test_loss", "gap_accuracy"}
    cards = {
        name: json.loads((study / f"results/data/{name}/card.json").read_text("utf-8"))
        for name in ("iris", "blobs")
    }
    accuracy = comparisons[comparisons["metric"] == "test_accuracy"]
    expected = accuracy["dataset"].map(lambda d: 1 / cards[d]["split_sizes"]["test"])
    assert accuracy["one_example"].tolist() == pytest.approx(expected.tolist())
    summary = pd.read_csv(tables / "summary.csv")
    epochs = summary[summary["metric"].isin(["epochs_run", "best_epoch"])]
    assert (epochs["ci_high"] <= 3).all() and (epochs["pi_low"] >= 1).all()
    adequacy = pd.read_csv(tables / "adequacy.csv")
    assert len(adequacy) == 6 and (adequacy["n_runs"] == 2).all()
    tests = pd.read_csv(tables / "ranking_tests.csv")
    assert tests["ranked"].all() and (tests["n_datasets"] == 2).all()
    loss = tests[tests["metric"] == "test_loss"].iloc[0]  # Losses never tie, accuracies may.
    assert (loss["iman_davenport_df1"], loss["iman_davenport_df2"]) == (2, 2)
    assert len(pd.read_csv(tables / "rankings.csv")) == 3 * len(tests)
    assert list(pd.read_csv(tables / "references.csv")["verdict"]) == []


def test_aggregation_of_fabricated_runs_writes_every_table(tmp_path: Path) -> None:
    """Fabricated runs give references verdicts, convergence flags that withhold verdicts, and
    no ranking over 1 dataset."""
    raw = study_config(datasets=1, regularizers=3, seeds=5)
    raw["report"] = {"primary": "test_roc_auc"}
    raw["references"] = {
        "none": [
            {"test_accuracy": 0.8, "source": "inside"},
            {"test_loss": 0.9, "source": "outside"},
        ]
    }
    study = fabricate_study(tmp_path, raw, unconverged=[("data0", "none")])
    tables = aggregate_fabricated(tmp_path, study)
    summary = pd.read_csv(tables / "summary.csv")
    objective = summary[summary["metric"] == "test_objective"]
    assert (objective["n"] == 0).all() and objective["mean"].isna().all()
    references = pd.read_csv(tables / "references.csv")
    assert references["verdict"].tolist() == ["consistent", "outside"]
    cell = summary[(summary["regularizer"] == "none") & (summary["metric"] == "test_loss")]
    assert cell["pi_high"].iloc[0] < references["reference"].iloc[1] == 0.9
    comparisons = pd.read_csv(tables / "comparisons.csv")
    assert "test_roc_auc" in set(comparisons["metric"])
    assert (
        comparisons.loc[comparisons["metric"] == "test_accuracy", "one_example"] == 1 / 200
    ).all()
    adequacy = pd.read_csv(tables / "adequacy.csv").set_index("regularizer")
    assert adequacy.loc["none", "n_best_late"] == 5 and not adequacy.loc["none", "converged"]
    assert adequacy.drop(index="none")["converged"].all()
    # The baseline had not converged: no comparison with it is judged, none is lost.
    assert set(comparisons["verdict"]) == {"undertrained"}
    assert comparisons["mean_diff"].notna().all()
    runs = pd.read_csv(tables / "runs.csv")
    assert runs.groupby("regularizer")["converged"].all().to_dict() == {
        "none": False,
        "l2_0": True,
        "l2_1": True,
    }
    assert pd.read_csv(tables / "rankings.csv").empty
    tests = pd.read_csv(tables / "ranking_tests.csv")
    assert not tests["ranked"].any() and tests["iman_davenport_df2"].isna().all()
    assert tests["note"].str.contains("needs at least 2 datasets").all()


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
