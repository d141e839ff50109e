"""Reruns do exactly what a change implies: a real study, then dry runs after each change."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_pipeline import job_counts

REPO = Path(__file__).resolve().parents[1]

STUDY: dict[str, Any] = {
    "study": {"name": "reruns", "title": "Rerun study"},
    "datasets": {
        "iris": {"source": "sklearn", "loader": "iris"},
        "blobs": {"source": "synthetic", "synthetic": {"n_samples": 100, "n_features": 8}},
    },
    "models": {"mlp": {"type": "mlp", "units": [4]}},
    "regularizers": {
        "none": {},
        "l2": {"kernel": {"l2": 0.01}},
        "dropout": {"dropout": {"rate": 0.2}},
    },
    "seeds": [0, 1],
    "training": {"epochs": 2},
    "baseline": "none",
}


def copy_workflow(target: Path) -> Path:
    """A private copy of the workflow files, so tests may edit templates and code."""
    for name in ("Snakefile", "rules", "scripts", "templates", "envs"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            shutil.copy(source, target / name)
    return target / "Snakefile"


def snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the copied workflow in ``workdir``; return its output, failing on a non-zero exit."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(workdir / "Snakefile"),
            "--directory",
            str(workdir),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def planned(workdir: Path, config: dict[str, Any] | str, **kwargs: Any) -> Counter[str]:
    """The jobs a dry run plans for ``config`` (a dict, or YAML text written as is)."""
    path = workdir / "changed.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config), "utf-8")
    output = snakemake(workdir, "--dry-run", "--configfile", str(path), **kwargs)
    if "Nothing to be done" in output:
        return Counter()
    jobs = job_counts(output)
    del jobs["total"]
    return jobs


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The study run to completion once."""
    workdir = tmp_path_factory.mktemp("reruns")
    copy_workflow(workdir)
    (workdir / "config.yaml").write_text(yaml.safe_dump(STUDY), encoding="utf-8")
    snakemake(workdir, "--cores", "2", "--configfile", str(workdir / "config.yaml"))
    return workdir


def changed(edit: Any) -> dict[str, Any]:
    """A deep copy of the study with ``edit`` applied."""
    config = copy.deepcopy(STUDY)
    edit(config)
    return config


REPORT = {"aggregate_runs": 1, "plot_figures": 1, "render_report": 1, "all": 1}


@pytest.mark.e2e
def test_rewording_the_yaml_reruns_nothing(done: Path) -> None:
    """Other key order, 0.010 for 0.01, 1.0e-2 and comments: nothing to do."""
    reworded = """
# The same study, written differently.
baseline: none
training: {epochs: 2}
seeds: [0, 1]
regularizers:
  dropout: {dropout: {rate: 0.20}}   # same rate
  l2: {kernel: {l2: 1.0e-2}}
  none: {}
models: {mlp: {units: [4], type: mlp}}
datasets:
  blobs: {synthetic: {n_features: 8, n_samples: 100}, source: synthetic}
  iris: {loader: iris, source: sklearn}
study: {title: Rerun study, name: reruns}
"""
    assert planned(done, reworded) == Counter()


@pytest.mark.e2e
def test_changing_one_strength_reruns_exactly_that_regularizer(done: Path) -> None:
    """A new L2 strength retrains l2's cells (every dataset, all seeds), then the report."""
    jobs = planned(done, changed(lambda c: c["regularizers"]["l2"]["kernel"].update(l2=0.02)))
    assert jobs == Counter({"train_cell": 2, **REPORT})


@pytest.mark.e2e
def test_adding_a_seed_retrains_the_cells_it_joins(done: Path) -> None:
    """Seed 2 joins every cell, whose seeds train together: each cell's job runs again."""
    jobs = planned(done, changed(lambda c: c["seeds"].append(2)))
    assert jobs == Counter({"train_cell": 2 * 3, **REPORT})


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["metrics.json", "history.csv", "weights.npz"])
def test_a_seed_file_gone_retrains_its_cell_alone(done: Path, name: str) -> None:
    """The tables wait for one record per cell, yet a seed's file deleted by hand still
    retrains that cell (and no other), then the report."""
    path = done / "results/runs/iris/mlp/l2/seed1" / name
    aside = path.with_name(name + ".aside")
    path.rename(aside)
    try:
        assert planned(done, STUDY) == Counter({"train_cell": 1, **REPORT})
    finally:
        aside.rename(path)
    assert planned(done, STUDY) == Counter()


@pytest.mark.e2e
def test_adding_a_dataset_prepares_and_trains_only_it(done: Path) -> None:
    """A new dataset is prepared once and trained for every regularizer and seed."""
    jobs = planned(
        done, changed(lambda c: c["datasets"].update(wine={"source": "sklearn", "loader": "wine"}))
    )
    assert jobs == Counter({"prepare_dataset": 1, "train_cell": 3, **REPORT})


@pytest.mark.e2e
def test_changing_epochs_reruns_every_run(done: Path) -> None:
    """training.epochs is part of every cell's spec."""
    jobs = planned(done, changed(lambda c: c["training"].update(epochs=3)))
    assert jobs == Counter({"train_cell": 2 * 3, **REPORT})


@pytest.mark.e2e
def test_changing_what_the_report_judges_or_its_references_reruns_only_the_tables_onwards(
    done: Path,
) -> None:
    """report: and references: reach aggregation, figures and report, never a training run."""
    report = changed(lambda c: c.update(report={"primary": "test_roc_auc"}))
    assert planned(done, report) == Counter(REPORT)
    reference = {"test_accuracy": 0.9, "source": "a paper", "dataset": "iris", "model": "mlp"}
    assert planned(done, changed(lambda c: c.update(references={"l2": reference}))) == Counter(
        REPORT
    )


@pytest.mark.e2e
def test_editing_the_template_or_stylesheet_rerenders_only_the_report(done: Path) -> None:
    """A template or CSS edit reruns render_report and nothing upstream."""
    for name in ("report.css", "report.html.j2"):
        path = done / "templates" / name
        original = path.read_text(encoding="utf-8")
        path.write_text(original + "\n", encoding="utf-8")
        try:
            assert planned(done, STUDY) == Counter({"render_report": 1, "all": 1})
        finally:
            path.write_text(original, encoding="utf-8")


@pytest.mark.e2e
def test_changing_the_title_rerenders_only_the_report(done: Path) -> None:
    """The study title is printed in the report and reaches no training run."""
    jobs = planned(done, changed(lambda c: c["study"].update(title="Renamed")))
    assert jobs == Counter({"render_report": 1, "all": 1})


@pytest.mark.e2e
def test_editing_the_training_code_reruns_every_run(done: Path, tmp_path: Path) -> None:
    """A package copy whose training.py differs retrains every run and nothing upstream."""
    source = tmp_path / "src"
    shutil.copytree(REPO / "src" / "regbench", source / "regbench")
    training = source / "regbench" / "training.py"
    training.write_text(training.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(source)}
    assert planned(done, STUDY, env=env) == Counter({"train_cell": 2 * 3, **REPORT})


@pytest.mark.e2e
def test_regbench_why_names_the_changed_key(done: Path) -> None:
    """`regbench why` names the config key behind each run that would retrain, a cell's new
    seed included."""
    config = changed(
        lambda c: (c["regularizers"]["l2"]["kernel"].update(l2=0.02), c["seeds"].append(2))
    )
    path = done / "why.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "regbench.cli",
            "why",
            "--configfile",
            str(path),
            "--directory",
            str(done),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = result.stdout.splitlines()
    seeds = "its cell's seeds changed from [0, 1] to [0, 1, 2]"
    assert (
        f"iris/mlp/l2/seed0: regularizers.l2.kernel.l2 changed from 0.01 to 0.02; {seeds}" in lines
    )
    assert f"blobs/mlp/none/seed1: {seeds}" in lines
    assert "blobs/mlp/none/seed2: not trained yet" in lines
    assert len(lines) == 2 * 3 * 3  # Every cell trains again, now with three seeds.
    unchanged = subprocess.run(
        [
            sys.executable,
            "-m",
            "regbench.cli",
            "why",
            "--configfile",
            str(done / "config.yaml"),
            "--directory",
            str(done),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert unchanged.stdout.strip() == "Every run is up to date with the config."
