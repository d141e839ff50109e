"""End to end: Snakemake runs a small sweep study; a sweep rewritten by hand retrains nothing."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from pypdf import PdfReader
from test_pipeline import job_counts, snakemake
from test_sweeps import HAND_WRITTEN_A, STUDY_A

from regbench.config import load_config_file

SWEEP_STUDY: dict[str, Any] = {
    "study": {"name": "sweep", "title": "Small sweep study", "description": "Two sweeps."},
    "datasets": {
        "blobs": {
            "source": "synthetic",
            "synthetic": {"n_samples": 150, "n_features": 6, "n_informative": 3},
        }
    },
    "models": {"mlp": {"type": "mlp", "units": [8]}},
    "regularizers": {
        "none": {},
        "l2": {"kernel": {"l2": [1e-4, 1e-3, 1e-2]}},
        "dropout": {"dropout": {"rate": [0.1, 0.3]}},
    },
    "seeds": [0, 1, 2],
    "training": {"epochs": 3, "batch_size": 16},
    "baseline": "none",
}

#: The same six regularizers written out by hand under the names the sweeps derive.
SWEEP_BY_HAND = {
    "none": {},
    "l2_0.0001": {"kernel": {"l2": 1e-4}},
    "l2_0.001": {"kernel": {"l2": 1e-3}},
    "l2_0.01": {"kernel": {"l2": 1e-2}},
    "dropout_0.1": {"dropout": {"rate": 0.1}},
    "dropout_0.3": {"dropout": {"rate": 0.3}},
}


def write_config(workdir: Path, config: dict[str, Any]) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


def training_jobs(output: str) -> int:
    """How many training jobs a dry run plans, whatever the training rule is called."""
    if "Nothing to be done" in output:
        return 0
    return sum(n for rule, n in job_counts(output).items() if rule.startswith("train_"))


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small sweep study, run once for real by Snakemake."""
    workdir = tmp_path_factory.mktemp("sweep")
    write_config(workdir, SWEEP_STUDY)
    run = snakemake(workdir, "--cores", "2")
    assert run.returncode == 0, run.stderr[-5000:]
    return workdir


@pytest.mark.e2e
def test_a_sweep_study_trains_every_variant_and_writes_tuned_csv(swept: Path) -> None:
    """Six regularizers per cell and seed train; tuned.csv holds each family's choice per seed."""
    runs = pd.read_csv(swept / "results/tables/runs.csv")
    assert (runs["status"] == "ok").all()
    per_seed = runs.groupby("seed")["regularizer"].apply(sorted).to_dict()
    assert per_seed == {seed: sorted(SWEEP_BY_HAND) for seed in (0, 1, 2)}
    tuned = pd.read_csv(swept / "results/tables/tuned.csv")
    assert sorted(zip(tuned["family"], tuned["seed"], strict=True)) == sorted(
        (family, seed) for family in ("l2", "dropout") for seed in (0, 1, 2)
    )
    # Each choice is the family's lowest best validation loss on that seed.
    for row in tuned.itertuples():
        family = runs[
            (runs["seed"] == row.seed) & runs["regularizer"].str.startswith(f"{row.family}_")
        ]
        assert row.variant == family.loc[family["best_val_loss"].idxmin(), "regularizer"]
        chosen = family.set_index("regularizer").loc[row.variant]
        assert row.test_accuracy == pytest.approx(chosen["test_accuracy"])


@pytest.mark.e2e
def test_a_sweep_studys_report_shows_its_response_to_strength(swept: Path) -> None:
    """The PDF has the Strength sweeps section, its dose-response figure and the tuned table."""
    text = re.sub(
        r"\s+",
        " ",
        " ".join(p.extract_text() or "" for p in PdfReader(swept / "reports/report.pdf").pages),
    )
    assert "Strength sweeps" in text
    assert "Response to strength, blobs · mlp" in text
    assert (
        "Best kernel.l2 by test accuracy:" in text and "Best dropout.rate by test accuracy:" in text
    )
    assert "Each sweep at its best, chosen on validation data" in text
    html = (swept / "reports/report.html").read_text("utf-8")
    section = html.split('<article id="sweeps">', 1)[1].split("</article>", 1)[0]
    assert section.count('<figure class="dose_response">') == 1
    assert (swept / "reports/figures/dose_response/blobs/mlp.svg").is_file()


@pytest.mark.e2e
def test_the_sweep_written_by_hand_retrains_nothing(swept: Path) -> None:
    """After a real run of the sweep form, the hand-written form plans no training job."""
    write_config(swept, {**SWEEP_STUDY, "regularizers": SWEEP_BY_HAND})
    try:
        dry = snakemake(swept, "--dry-run")
    finally:
        write_config(swept, SWEEP_STUDY)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert training_jobs(dry.stdout + dry.stderr) == 0


@pytest.mark.e2e
def test_study_a_in_sweep_form_retrains_nothing_of_the_hand_written_form(tmp_path: Path) -> None:
    """Study A's regularizers, hand-written and run for real, are all reused by its sweep form.

    The dataset is swapped for a small synthetic one (study A downloads its
    data) and training shortened; both forms share that, so the regularizers,
    the only part that differs, decide what would retrain.
    """
    raw = load_config_file(str(STUDY_A))
    raw["datasets"] = {"wine_quality": copy.deepcopy(SWEEP_STUDY["datasets"]["blobs"])}
    raw["seeds"], raw["training"]["epochs"] = [0], 2
    write_config(tmp_path, {**raw, "regularizers": HAND_WRITTEN_A})
    run = snakemake(tmp_path, "--cores", "2")
    assert run.returncode == 0, run.stderr[-5000:]
    assert len(list((tmp_path / "results/runs").glob("*/*/*/seed0/metrics.json"))) == 11

    write_config(tmp_path, raw)
    dry = snakemake(tmp_path, "--dry-run")

    assert dry.returncode == 0, dry.stderr[-3000:]
    assert training_jobs(dry.stdout + dry.stderr) == 0
    # The sweep form changes what the tables know (its families), not what trains.
    assert "aggregate_runs" in job_counts(dry.stdout + dry.stderr)
