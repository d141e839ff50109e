"""The reference study configs under studies/: they validate, plan the right grid, and
build the reference notebooks' architectures."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from regbench.config import RunKey, Study, load_config_file, load_study, varies_split

REPO = Path(__file__).resolve().parents[1]
STUDIES = REPO / "studies"

# Per study: training jobs (one per variant, all its seeds), downloads, skipped cells, and the
# Keras parameter count of the reference notebook's model (hidden layers plus the output layer;
# study F, which has no notebook: its CIFAR-10 CNN).
EXPECTED = {
    "a_wine_l1l2_dropout": {"train_cell": 11, "downloads": 1, "parameters": 681},
    "b_ann_l1l2": {"train_cell": 4, "downloads": 0, "parameters": 2817},
    "c_iris_activity": {"train_cell": 3, "downloads": 0, "parameters": 152515},
    "d_breast_cancer_dropout": {"train_cell": 4, "downloads": 0, "parameters": 40431},
    "e_cifar10_cnn": {"train_cell": 4, "downloads": 1, "parameters": 122570},
    # Spatial dropout is skipped for the MLP on both datasets.
    "f_modern_regularizers": {"train_cell": 54, "downloads": 1, "skipped": 2, "parameters": 282250},
    # The companions of C and D run their dataset both ways: one split, and one per seed.
    "c_iris_activity_splits": {"train_cell": 6, "downloads": 0, "parameters": 152515},
    "d_breast_cancer_dropout_splits": {"train_cell": 8, "downloads": 0, "parameters": 40431},
}

# Each companion, the study it repeats, and its dataset that draws a split per seed.
COMPANIONS = {
    "c_iris_activity_splits": ("c_iris_activity", "iris_split"),
    "d_breast_cancer_dropout_splits": ("d_breast_cancer_dropout", "breast_cancer_split"),
}


def study(name: str) -> Study:
    return load_study(load_config_file(str(STUDIES / f"{name}.yaml")))


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


def test_there_is_one_config_per_reference_study() -> None:
    """studies/ holds exactly the five reference studies A-E, study F and the companions of
    C and D."""
    assert sorted(path.stem for path in STUDIES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_study_validates_with_several_seeds(name: str) -> None:
    """Each study config validates, repeats every variant over at least five seeds, and
    skips only the cells it is expected to skip."""
    loaded = study(name)

    assert len(loaded.config["seeds"]) >= 5
    assert len(loaded.cells) == EXPECTED[name]["train_cell"]
    assert len(loaded.runs) == EXPECTED[name]["train_cell"] * len(loaded.seeds)
    assert len(loaded.skipped) == EXPECTED[name].get("skipped", 0)
    assert loaded.config["study"]["name"] == name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dry_run_schedules_the_expected_jobs(name: str, tmp_path: Path) -> None:
    """A dry run in a fresh folder plans one train_cell per variant (all seeds), one
    preparation per dataset with one split (and one per seed for a dataset that draws a
    split per seed), and a download only for the studies that fetch data."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--dry-run",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(STUDIES / f"{name}.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-4000:]
    counts = job_counts(result.stdout + result.stderr)
    assert counts["train_cell"] == EXPECTED[name]["train_cell"]
    loaded = study(name)
    varied = [dataset for dataset, body in loaded.datasets.items() if varies_split(body)]
    assert counts["prepare_dataset"] == len(loaded.datasets) - len(varied)
    assert counts["prepare_split"] == len(varied) * len(loaded.seeds)
    assert counts["download_dataset"] == EXPECTED[name]["downloads"]


@pytest.mark.parametrize("name", sorted(COMPANIONS))
def test_companion_repeats_its_study_and_varies_only_the_split(name: str) -> None:
    """A companion's one-split runs have exactly its study's specs (so none reruns where the
    study ran), and its other dataset differs from that one only in drawing a split per seed."""
    original, varied = COMPANIONS[name]
    companion, reference = study(name), study(original)
    (fixed,) = reference.datasets

    shared = [key for key in companion.runs if key.dataset == fixed]
    assert shared == list(reference.runs)
    assert all(companion.run_spec(key) == reference.run_spec(key) for key in shared)
    assert companion.split_twins() == {varied: fixed}
    assert companion.datasets[varied]["split"] == {
        **reference.datasets[fixed]["split"],
        "vary": "seed",
    }


def test_downloaded_studies_pin_the_reference_urls_and_checksums() -> None:
    """Studies A and E download from the canonical URLs with the sha256 studies.md gives."""
    wine = study("a_wine_l1l2_dropout").datasets["wine_quality"]
    cifar = study("e_cifar10_cnn").datasets["cifar10"]

    assert wine["url"] == (
        "https://archive.ics.uci.edu/ml/machine-learning-databases/wine-quality/winequality-red.csv"
    )
    assert wine["sha256"] == "4a402cf041b025d4566d954c3b9ba8635a3a8a01e039005d97d6a710278cf05e"
    assert cifar["url"] == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert cifar["sha256"] == "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    assert cifar["subsample"] == {"train": 5000}


def test_reference_settings_are_reproduced() -> None:
    """Each study carries its notebook's split, scaling and training settings."""
    a, c, d = (
        study("a_wine_l1l2_dropout"),
        study("c_iris_activity"),
        study("d_breast_cancer_dropout"),
    )

    wine = a.datasets["wine_quality"]
    assert wine["split"] == {
        "test": 0.2,
        "validation": 0.2,
        "validation_mode": "last",
        "stratify": False,
        "random_state": 42,
    }
    assert wine["csv"]["target_transform"] == ">= 6" and wine["scaling"] == "standard"
    assert a.config["training"]["epochs"] == 500
    assert c.datasets["iris"]["split"]["validation_mode"] == "test"
    training = c.config["training"]
    assert [training[k] for k in ("epochs", "batch_size", "optimizer", "learning_rate")] == [
        350,
        128,
        "sgd",
        0.01,
    ]
    assert d.datasets["breast_cancer"]["scaling"] == "minmax"
    assert d.config["regularizers"]["dropout_0.5"]["dropout"]["layers"] == [1]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_study_builds_the_reference_architecture(name: str) -> None:
    """Each study's baseline model has exactly the reference notebook's parameter count."""
    from regbench.models import build_model

    loaded = study(name)
    key = next(key for key in loaded.runs if key.regularizer == loaded.baseline)
    spec = loaded.run_spec(RunKey(key.dataset, key.model, key.regularizer, key.seed))
    shapes = {"wine_quality": (11,), "synthetic_10": (10,), "iris": (4,),
              "breast_cancer": (30,), "cifar10": (32, 32, 3), "digits": (8, 8, 1)}  # fmt: skip
    classes = {"iris": 3, "cifar10": 10, "digits": 10}

    model = build_model(
        spec["model"], spec["regularizer"], shapes[key.dataset], classes.get(key.dataset, 2)
    )

    assert model.count_params() == EXPECTED[name]["parameters"]
