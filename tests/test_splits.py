"""A split per seed (split.vary: seed): each seed's own reproducible split, an official test
set kept, fixed-split studies untouched, pairing by seed, the split-variance numbers, and a
real Snakemake run whose report names the data split among what a seed varies."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from html import unescape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from pypdf import PdfReader

from regbench.config import ConfigError, Study, canonical_json, load_study
from regbench.datasets import RawData, combine_cards, data_card, prepare
from regbench.variance import split_variance

REPO = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2, 3]


def raw_config(**split: Any) -> dict[str, Any]:
    """A small valid study of one 120-row dataset, with ``split`` settings."""
    return {
        "study": {"name": "splits", "title": "Splits"},
        "datasets": {"rows": {"source": "sklearn", "loader": "iris", "split": dict(split)}},
        "models": {"mlp": {"type": "mlp", "units": [4]}},
        "regularizers": {"none": {}, "l2": {"kernel": {"l2": 0.01}}},
        "seeds": SEEDS,
        "training": {"epochs": 2},
        "baseline": "none",
    }


def traced(n: int = 120, n_classes: int = 3, test: int | None = None) -> RawData:
    """Rows whose one feature is their index, so every split can be traced; with ``test``,
    an official test set of that many rows (indices from 10,000 on)."""
    extra: dict[str, Any] = {}
    if test is not None:
        extra = {
            "x_test": np.arange(10_000, 10_000 + test, dtype=np.float64).reshape(test, 1),
            "y_test": np.arange(test, dtype=np.int64) % n_classes,
            "test_source": "an official test set",
        }
    return RawData(
        x=np.arange(n, dtype=np.float64).reshape(n, 1),
        y=np.arange(n, dtype=np.int64) % n_classes,
        feature_names=["row"],
        class_names=[f"c{c}" for c in range(n_classes)],
        source="traced rows",
        **extra,
    )


def unscaled(study: Study, seed: int | None) -> dict[str, Any]:
    """The spec one seed's split (or the fixed split) is prepared from, without scaling."""
    spec = study.dataset_spec("rows") if seed is None else study.split_spec("rows", seed)
    return {**spec, "scaling": "none"}


def test_each_seed_draws_its_own_reproducible_stratified_split() -> None:
    """With split.vary: seed, each seed's test set differs from every other seed's and from
    the fixed split's, is the same when prepared again, and keeps the class proportions."""
    study = load_study(raw_config(vary="seed"))
    fixed = load_study(raw_config())
    raw = traced()

    tests = {}
    for seed in SEEDS:
        first, again = (prepare(unscaled(study, seed), raw) for _ in range(2))
        assert all(
            np.array_equal(getattr(first, name), getattr(again, name))
            for name in ("x_train", "x_val", "x_test", "y_train", "y_val", "y_test")
        ), seed
        assert np.bincount(first.y_test).tolist() == [8, 8, 8], seed
        tests[seed] = frozenset(first.x_test.reshape(-1).astype(int).tolist())
        parts = [first.x_train, first.x_val, first.x_test]
        assert sorted(np.concatenate(parts).reshape(-1).astype(int)) == list(range(120)), seed
    fixed_test = frozenset(prepare(unscaled(fixed, None), raw).x_test.reshape(-1).astype(int))

    assert len(set(tests.values()) | {fixed_test}) == len(SEEDS) + 1


def test_an_official_test_set_is_kept_for_every_seed() -> None:
    """A dataset with its own test set keeps it whole for every seed; only training and
    validation are drawn anew, and the seeds' cards say which rows are tested."""
    study = load_study(raw_config(vary="seed"))
    raw = traced(test=30)

    prepared = {seed: prepare(unscaled(study, seed), raw) for seed in SEEDS}
    cards = [data_card(unscaled(study, s), raw, prepared[s]) for s in SEEDS]

    for data in prepared.values():
        np.testing.assert_array_equal(data.x_test.reshape(-1), np.arange(10_000, 10_030))
    assert len({tuple(d.x_val.reshape(-1)) for d in prepared.values()}) == len(SEEDS)
    assert len({card["test_rows"] for card in cards}) == 1
    assert any("official test set is the same for every seed" in n for n in cards[0]["notes"])


def test_seed_cards_combine_into_one_card_listing_each_seeds_split() -> None:
    """The seeds' cards of a dataset become one card whose seeds, in order, carry their own
    random state and test rows, while a fixed split's card passes through unchanged."""
    study, fixed = load_study(raw_config(vary="seed")), load_study(raw_config())
    raw = traced()
    cards = [data_card(unscaled(study, s), raw, prepare(unscaled(study, s), raw)) for s in SEEDS]
    fixed_card = data_card(unscaled(fixed, None), raw, prepare(unscaled(fixed, None), raw))

    combined = combine_cards([*reversed(cards), {**fixed_card, "name": "other"}])

    seeds = combined["rows"]["seeds"]
    assert [one["seed"] for one in seeds] == SEEDS
    assert len({one["test_rows"] for one in seeds}) == len(SEEDS)
    assert len({one["random_state"] for one in seeds}) == len(SEEDS)
    assert combined["rows"]["split_sizes"] == {"train": 76, "validation": 20, "test": 24}
    assert "seed" not in combined["rows"]["split"]
    assert combined["other"] == {**fixed_card, "name": "other"}


def test_writing_the_default_fixed_split_changes_no_spec() -> None:
    """split.vary: fixed resolves to exactly the specs of a study that never names it, and a
    fixed split's cells train on the one file every study has always prepared."""
    plain, written = load_study(raw_config()), load_study(raw_config(vary="fixed"))

    def everything(study: Study) -> list[str]:
        specs = [study.dataset_spec("rows"), *map(study.cell_spec, study.cells)]
        specs += [*map(study.run_spec, study.runs), study.aggregation_settings(), study.config]
        return [canonical_json(spec) for spec in specs]

    assert everything(written) == everything(plain)
    assert all("vary" not in spec for spec in everything(plain))
    assert [plain.cell_data(cell) for cell in plain.cells] == [["results/data/rows/data.npz"]] * 2
    assert plain.prepared_files("rows", "card.json") == ["results/data/rows/card.json"]


def test_every_cell_trains_a_seed_on_that_seeds_split() -> None:
    """Baseline and regularizer cells take the same file for a seed, one per seed in the
    seeds' order, so their runs stay paired by seed."""
    study = load_study(raw_config(vary="seed"))
    files = [f"results/data/rows/seed{seed}/data.npz" for seed in SEEDS]

    assert [study.cell_data(cell) for cell in study.cells] == [files, files]
    assert study.prepared_files("rows", "data.npz") == files
    assert {study.run_data(key) for key in study.runs if key.seed == 2} == {files[2]}


def test_a_split_of_a_seed_the_study_lacks_is_refused() -> None:
    """Preparing a seed's own split of a fixed-split dataset, or of a seed the study does
    not run, is refused with the dataset and seed named."""
    with pytest.raises(ValueError, match="dataset rows has no split of its own for seed 9"):
        load_study(raw_config(vary="seed")).split_spec("rows", 9)
    with pytest.raises(ValueError, match="dataset rows has no split of its own for seed 0"):
        load_study(raw_config()).split_spec("rows", 0)


def test_an_unknown_way_to_vary_is_named() -> None:
    """split.vary takes fixed or seed; anything else stops the study with the key named."""
    with pytest.raises(ConfigError, match=r"datasets\.rows\.split\.vary.*fixed.*seed"):
        load_study(raw_config(vary="fold"))


def runs_table(fixed: np.ndarray, varied: np.ndarray) -> pd.DataFrame:
    """A runs table of the baseline on a fixed-split dataset and its split-per-seed twin."""
    rows = [
        {"dataset": name, "model": "mlp", "regularizer": "none", "status": "ok", "acc": value}
        for name, values in (("fixed", fixed), ("varied", varied))
        for value in values
    ]
    return pd.DataFrame(rows)


def test_split_variance_interval_covers_the_true_ratio_as_often_as_it_claims() -> None:
    """Over many simulated studies whose split doubles the spread, the sd ratio's 95%
    interval covers 2 about 95% of the time, and the split's sd estimates sqrt(3)."""
    rng = np.random.default_rng(7)
    covered, split_sds = 0, []
    trials = 400
    for _ in range(trials):
        table = runs_table(rng.normal(0, 1, 8), rng.normal(0, 2, 8))
        (row,) = split_variance(table, {"varied": "fixed"}, "none", ["acc"]).to_dict("records")
        covered += row["sd_ratio_low"] <= 2.0 <= row["sd_ratio_high"]
        split_sds.append(row["split_sd"])

    assert 0.91 <= covered / trials <= 0.99
    assert abs(np.median(split_sds) - np.sqrt(3.0)) < 0.3


def test_split_variance_describes_each_way_and_leaves_a_ratio_it_cannot_compute() -> None:
    """Each way's n, mean, sd and range are the runs', a spread the split does not widen is
    worth a split sd of 0, and a fixed spread of 0 leaves the ratio undefined."""
    fixed, varied = np.array([0.7, 0.8, 0.9]), np.array([0.75, 0.8, 0.85])
    (row,) = split_variance(
        runs_table(fixed, varied), {"varied": "fixed"}, "none", ["acc"]
    ).to_dict("records")
    (flat,) = split_variance(
        runs_table(np.array([0.8, 0.8]), varied), {"varied": "fixed"}, "none", ["acc"]
    ).to_dict("records")

    assert (row["n_fixed"], row["min_fixed"], row["max_fixed"]) == (3, 0.7, 0.9)
    assert row["sd_fixed"] == pytest.approx(np.std(fixed, ddof=1))
    assert row["sd_ratio"] == pytest.approx(0.5) and row["split_sd"] == 0.0
    assert np.isnan(flat["sd_ratio"]) and flat["split_sd"] == pytest.approx(np.std(varied, ddof=1))


# --------------------------------------------------------------------------- end to end

E2E_STUDY = {
    "study": {"name": "splits_e2e", "title": "Split per seed", "description": "Iris both ways."},
    "datasets": {
        "iris": {"source": "sklearn", "loader": "iris"},
        "iris_split": {"source": "sklearn", "loader": "iris", "split": {"vary": "seed"}},
    },
    "models": {"mlp": {"type": "mlp", "units": [8]}},
    "regularizers": {
        "none": {},
        # Early stopping that never stops trains exactly as the baseline does: on the same
        # split, every seed scores what the baseline scores.
        "never_stops": {"early_stopping": {"patience": 50, "restore_best_weights": False}},
    },
    "seeds": [0, 1, 2],
    "training": {"epochs": 3, "batch_size": 16},
    "baseline": "none",
}


def text_of(html: str) -> str:
    """The visible words of an HTML report, whitespace collapsed."""
    html = re.sub(r"<(style|svg)\b.*?</\1>", " ", html, flags=re.S)
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture(scope="module")
def study_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study that runs iris with one split and with a split per seed, run by Snakemake."""
    workdir = tmp_path_factory.mktemp("splits")
    (workdir / "config.yaml").write_text(yaml.safe_dump(copy.deepcopy(E2E_STUDY)), "utf-8")
    run = subprocess.run(
        [
            *(sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")),
            *("--directory", str(workdir), "--configfile", str(workdir / "config.yaml")),
            *("--cores", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-5000:]
    return workdir


@pytest.mark.e2e
def test_each_seed_trains_and_tests_on_its_own_split(study_run: Path) -> None:
    """Each seed's split is prepared once, with a test set of its own, and the runs of a seed
    are paired: the regularizer that changes nothing scores exactly the baseline's score."""
    cards = [
        json.loads((study_run / f"results/data/iris_split/seed{seed}/card.json").read_text())
        for seed in (0, 1, 2)
    ]
    runs = pd.read_csv(study_run / "results/tables/runs.csv")
    varied = runs[runs["dataset"] == "iris_split"].pivot(
        index="seed", columns="regularizer", values="test_loss"
    )
    comparisons = pd.read_csv(study_run / "results/tables/comparisons.csv")

    assert len({card["test_rows"] for card in cards}) == 3
    assert not (study_run / "results/data/iris_split/data.npz").exists()
    assert varied["never_stops"].tolist() == varied["none"].tolist()
    assert varied["none"].nunique() == 3
    assert set(comparisons.loc[comparisons["dataset"] == "iris_split", "n_pairs"]) == {3}


@pytest.mark.e2e
def test_report_names_the_data_split_among_what_a_seed_varies(study_run: Path) -> None:
    """The report's caveats and Method name the data split as varied on iris_split, its data
    card lists each seed's test set, and the split-variance section compares both ways."""
    text = text_of((study_run / "reports/report.html").read_text("utf-8"))
    caveats = text.split("Caveats", 1)[1].split("Contents", 1)[0]
    method = text.split(" Method ")[-1]
    card = text.split("Each seed's split of iris_split", 1)[1][:400]
    pdf = " ".join(
        page.extract_text() for page in PdfReader(study_run / "reports/report.pdf").pages
    )

    sources = "initialization, batch order and the data split on iris_split"
    assert f"3 seeds per cell, paired by seed, each varying only {sources}." in caveats
    assert "One train/validation/test split on iris (random state 42)" in caveats
    assert f"the seed fixes {sources}" in method
    assert "each seed draws its own split of iris_split" in method
    assert all(re.search(rf"\b{seed} \d+ [0-9a-f]{{12}}\b", card) for seed in (0, 1, 2))
    assert "What the split alone moves" in text and "iris_split (one split: iris)" in text
    assert "data split" in re.sub(r"\s+", " ", pdf)
