"""Sweeps in the config: lists and listed settings expand into named variants of a family."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fabricate import aggregate_fabricated, fabricate_study, render_fabricated
from pypdf import PdfReader

from regbench import figures, stats, sweeps
from regbench.config import (
    MAX_SWEEP_VARIANTS,
    ConfigError,
    Study,
    canonical_json,
    load_config_file,
    load_study,
    variant_name,
)
from regbench.findings import strength_label, strength_sentences, tuned_sentence
from regbench.jobs import figure_settings, plot_figures
from regbench.wording import MINUS, format_diff, format_value

REPO = Path(__file__).resolve().parents[1]
STUDY_A = REPO / "studies" / "a_wine_l1l2_dropout.yaml"


def small_study(regularizers: dict[str, Any]) -> dict[str, Any]:
    """A valid raw study on one synthetic dataset and an MLP with two hidden layers."""
    return {
        "study": {"name": "sweep", "title": "Sweep study"},
        "datasets": {"blobs": {"source": "synthetic", "synthetic": {"n_samples": 100}}},
        "models": {"mlp": {"type": "mlp", "units": [8, 4]}},
        "regularizers": {"none": {}, **regularizers},
        "seeds": [0, 1],
        "training": {"epochs": 2},
        "baseline": "none",
    }


#: Study A's eleven variants written out by hand, under the names its sweep form derives.
HAND_WRITTEN_A = {
    "none": {},
    "l1l2_l1-0.01_l2-0.01": {"kernel": {"l1": 0.01, "l2": 0.01, "layers": [1]}},
    "l1l2_l1-0.001_l2-0.001": {"kernel": {"l1": 0.001, "l2": 0.001, "layers": [1]}},
    "l1l2_l1-0.001_l2-0": {"kernel": {"l1": 0.001, "l2": 0.0, "layers": [1]}},
    "l1l2_l1-0_l2-0.001": {"kernel": {"l1": 0.0, "l2": 0.001, "layers": [1]}},
    "l1l2_l1-0.01_l2-0.001": {"kernel": {"l1": 0.01, "l2": 0.001, "layers": [1]}},
    "dropout_0.005": {"dropout": {"rate": 0.005, "layers": "all"}},
    "dropout_0.1": {"dropout": {"rate": 0.1, "layers": "all"}},
    "dropout_0.2": {"dropout": {"rate": 0.2, "layers": "all"}},
    "dropout_0.5": {"dropout": {"rate": 0.5, "layers": "all"}},
    "dropout_0.9": {"dropout": {"rate": 0.9, "layers": "all"}},
}


def hand_written(raw: dict[str, Any], regularizers: dict[str, Any]) -> dict[str, Any]:
    """The same study with its regularizers written out by hand."""
    return {**copy.deepcopy(raw), "regularizers": copy.deepcopy(regularizers)}


def specs(study: Study) -> dict[str, str]:
    """Every run's canonical spec, by run folder."""
    return {key.path: canonical_json(study.run_spec(key)) for key in study.runs}


def test_a_list_declares_one_variant_per_value() -> None:
    """A list of strengths expands into one named variant per value, listed by strength."""
    study = load_study(small_study({"l2": {"kernel": {"l2": [1.0e-2, 1.0e-4, "1e-3"]}}}))

    assert list(study.config["regularizers"]) == ["none", "l2_0.0001", "l2_0.001", "l2_0.01"]
    assert study.config["regularizers"]["l2_0.001"] == {
        "kernel": {"l1": 0.0, "l2": 0.001, "layers": "all"}
    }
    assert study.families == {
        "l2": {
            "swept": ["kernel.l2"],
            "variants": ["l2_0.0001", "l2_0.001", "l2_0.01"],
            "values": {
                "l2_0.0001": {"kernel.l2": 0.0001},
                "l2_0.001": {"kernel.l2": 0.001},
                "l2_0.01": {"kernel.l2": 0.01},
            },
        }
    }
    assert len(study.runs) == 4 * 2


def test_two_lists_in_one_entry_expand_to_their_product() -> None:
    """Lists in two keys give every combination, each named by both keys and values."""
    study = load_study(
        small_study({"l1l2": {"kernel": {"l1": [0.0, 0.01], "l2": [0.001, 0.1], "layers": [1]}}})
    )

    assert study.families["l1l2"]["swept"] == ["kernel.l1", "kernel.l2"]
    assert list(study.families["l1l2"]["variants"]) == [
        "l1l2_l1-0_l2-0.001",
        "l1l2_l1-0_l2-0.1",
        "l1l2_l1-0.01_l2-0.001",
        "l1l2_l1-0.01_l2-0.1",
    ]
    assert study.config["regularizers"]["l1l2_l1-0.01_l2-0.1"]["kernel"] == {
        "l1": 0.01,
        "l2": 0.1,
        "layers": [1],
    }


def test_listed_settings_declare_points_rather_than_a_product() -> None:
    """A sweep list of settings gives one variant per setting, merged onto the entry."""
    study = load_study(
        small_study(
            {
                "pairs": {
                    "kernel": {"layers": [1]},
                    "sweep": [{"kernel": {"l1": 0.01, "l2": 0.01}}, {"kernel": {"l2": 0.001}}],
                }
            }
        )
    )

    assert study.families["pairs"]["values"] == {
        "pairs_l1-0_l2-0.001": {"kernel.l1": 0.0, "kernel.l2": 0.001},
        "pairs_l1-0.01_l2-0.01": {"kernel.l1": 0.01, "kernel.l2": 0.01},
    }
    assert study.config["regularizers"]["pairs_l1-0_l2-0.001"]["kernel"]["layers"] == [1]


def test_variant_names_are_readable_exact_and_path_safe() -> None:
    """Names hold each swept value exactly, with the key where several are swept."""
    assert variant_name("l2", {"kernel.l2": 1e-4}) == "l2_0.0001"
    assert variant_name("l2", {"kernel.l2": 1.5e-5}) == "l2_1.5e-05"
    assert variant_name("es", {"early_stopping.patience": 10}) == "es_10"
    assert variant_name("big", {"kernel.l2": 1e20}) == "big_1e20"
    assert variant_name("mix", {"kernel.l2": 0.01, "bias.l2": 0.0}) == (
        "mix_kernel.l2-0.01_bias.l2-0"
    )
    assert variant_name("l1l2", {"kernel.l1": 0.0015, "kernel.l2": 2.0}) == "l1l2_l1-0.0015_l2-2"


def test_names_do_not_depend_on_how_the_sweep_is_written() -> None:
    """Key order, list order and number spelling give the same variants and specs."""
    first = load_study(small_study({"mix": {"kernel": {"l1": [0.01, 0.0], "l2": [1e-3, 0.1]}}}))
    second = load_study(
        small_study({"mix": {"kernel": {"l2": [0.100, "1.0e-3"], "l1": [0, 1.0e-2]}}})
    )

    assert first.families == second.families
    assert specs(first) == specs(second)


def test_sweep_form_and_hand_written_form_give_identical_runs() -> None:
    """A sweep and the same variants written by hand give the same runs and byte-equal specs."""
    raw = small_study(
        {"l2": {"kernel": {"l2": [1e-4, 1e-3]}}, "dropout": {"dropout": {"rate": [0.1, 0.3]}}}
    )
    by_hand = hand_written(
        raw,
        {
            "none": {},
            "l2_0.0001": {"kernel": {"l2": 0.0001}},
            "l2_0.001": {"kernel": {"l2": 0.001}},
            "dropout_0.1": {"dropout": {"rate": 0.1}},
            "dropout_0.3": {"dropout": {"rate": 0.3}},
        },
    )

    swept, written = load_study(raw), load_study(by_hand)

    assert swept.runs == written.runs
    assert specs(swept) == specs(written)
    assert written.families == {}


def test_study_a_sweep_form_resolves_to_the_hand_written_runs() -> None:
    """Study A's two sweeps resolve to its 55 hand-written runs, every spec byte for byte."""
    raw = load_config_file(str(STUDY_A))
    swept, written = load_study(raw), load_study(hand_written(raw, HAND_WRITTEN_A))

    assert len(swept.runs) == 55
    assert swept.runs == written.runs
    assert specs(swept) == specs(written)
    assert {name: list(f["variants"]) for name, f in swept.families.items()} == {
        "l1l2": [
            "l1l2_l1-0_l2-0.001",
            "l1l2_l1-0.001_l2-0",
            "l1l2_l1-0.001_l2-0.001",
            "l1l2_l1-0.01_l2-0.001",
            "l1l2_l1-0.01_l2-0.01",
        ],
        "dropout": [name for name in HAND_WRITTEN_A if name.startswith("dropout")],
    }


def test_a_list_of_layer_indices_is_no_sweep() -> None:
    """``layers`` takes a list of indices, which selects layers and sweeps nothing."""
    study = load_study(small_study({"l2": {"kernel": {"l2": 0.01, "layers": [0, 1]}}}))

    assert study.families == {}
    assert study.config["regularizers"]["l2"]["kernel"]["layers"] == [0, 1]


def test_tuning_criterion_and_families_reach_the_tables_but_no_run() -> None:
    """The tuning criterion is an aggregation setting: changing it changes no run spec."""
    raw = small_study({"l2": {"kernel": {"l2": [1e-4, 1e-3]}}})
    default = load_study(raw)
    accuracy = load_study({**raw, "tuning": {"criterion": "val_accuracy"}})

    assert default.aggregation_settings()["tuning"] == {"criterion": "val_loss"}
    assert default.aggregation_settings()["families"] == default.families
    assert accuracy.aggregation_settings()["tuning"] == {"criterion": "val_accuracy"}
    assert specs(default) == specs(accuracy)


@pytest.mark.parametrize(
    ("regularizers", "message"),
    [
        (
            {
                "dropout": {"dropout": {"rate": [0.1, 0.3]}},
                "dropout_0.1": {"dropout": {"rate": 0.1}},
            },
            r"regularizers.dropout: its variant 'dropout_0.1' has the name of a declared "
            r"regularizer; rename the sweep or that regularizer",
        ),
        (
            {"l2": {"kernel": {"l2": [0.1, 0.2]}}, "l2_0.1": {"kernel": {"l2": [0.3, 0.4]}}},
            r"its variant 'l2_0.1' has the name of a declared regularizer",
        ),
        (
            {"l2": {"kernel": {"l2": [0.001]}}},
            r"regularizers.l2: the sweep gives a single setting; a sweep needs two or more",
        ),
        (
            {"l2": {"sweep": [{"kernel": {"l2": 0.1}}, {"kernel": {"l2": 0.1, "layers": [0]}}]}},
            r"regularizers.l2: the settings of a sweep may differ only in numbers .*; its "
            r"setting 2 differs from its first in kernel.layers",
        ),
        (
            {"mixed": {"sweep": [{"kernel": {"l2": 0.1}}, {"dropout": {"rate": 0.1}}]}},
            r"regularizers.mixed: the settings of a sweep may differ only in numbers .* "
            r"differs from its first in kernel, which only one of them has",
        ),
        (
            {
                "l2": {
                    "sweep": [
                        {"kernel": {"l2": 0.1}},
                        {"kernel": {"l2": 0.2}},
                        {"kernel": {"l2": 0.1}},
                    ]
                }
            },
            r"regularizers.l2: settings 1 and 3 of the sweep are the same variant, l2_0.1",
        ),
        (
            {
                "l2": {
                    "kernel": {
                        "l1": [i / 1e4 for i in range(40)],
                        "l2": [i / 1e4 for i in range(40)],
                    }
                }
            },
            rf"regularizers.l2: the sweep declares 1,600 variants; at most {MAX_SWEEP_VARIANTS:,}",
        ),
        (
            {"x" * 60: {"kernel": {"l2": [1e-4, 1e-3]}}},
            r"its variant name 'x{60}_0.0001' is not a usable name; names are 1 to 64",
        ),
        (
            {"l2": {"kernel": {"l2": [1e-3, -1]}}},
            r"regularizers.l2.kernel.l2.1: -1.0 is out of range; expected a number >= 0",
        ),
        (
            {"drop": {"dropout": {"rate": [0.5, 1.5]}}},
            r"regularizers.drop.dropout.rate.1: 1.5 is out of range; expected a number > 0 and < 1",
        ),
        (
            {"l2": {"kernel": {"l2": [0.1, 0.1]}}},
            r"regularizers.l2.kernel.l2: has repeated entries \[0.1, 0.1\]",
        ),
        (
            {"l2": {"kernel": {"l2": [0.1, 0.2]}, "sweep": [{"kernel": {"l3": 1}}]}},
            r"regularizers.l2.sweep.0.kernel: unknown key\(s\) 'l3'",
        ),
    ],
)
def test_bad_sweeps_are_named(regularizers: dict[str, Any], message: str) -> None:
    """A colliding, single, mixed, repeated, huge, long or out-of-range sweep: one error."""
    with pytest.raises(ConfigError, match=message):
        load_study(small_study(regularizers))


def test_baseline_cannot_be_a_sweep() -> None:
    """The baseline names one regularizer; naming a sweep says which variants there are."""
    raw = {**small_study({"l2": {"kernel": {"l2": [1e-4, 1e-3]}}}), "baseline": "l2"}

    with pytest.raises(
        ConfigError,
        match=r"baseline 'l2' is a sweep; name one of its variants \(l2_0.0001, l2_0.001\)",
    ):
        load_study(raw)


def test_tuning_criterion_must_be_a_validation_metric() -> None:
    """A test-set metric cannot choose a variant: the config names the validation ones."""
    raw = {
        **small_study({"l2": {"kernel": {"l2": [1e-4, 1e-3]}}}),
        "tuning": {"criterion": "test_loss"},
    }

    with pytest.raises(
        ConfigError,
        match=re.escape(
            "tuning.criterion: 'test_loss' is not a validation metric; expected one of: "
            "val_loss, val_accuracy"
        ),
    ):
        load_study(raw)


@pytest.mark.parametrize("criterion", ["best_val_loss", "best_val_accuracy"])
def test_tuning_criterion_is_read_at_the_tested_weights(criterion: str) -> None:
    """A criterion read at the best epoch, whose weights a fixed protocol does not test, is
    refused with the tested weights' metric to use instead."""
    raw = {
        **small_study({"l2": {"kernel": {"l2": [1e-4, 1e-3]}}}),
        "tuning": {"criterion": criterion},
    }

    with pytest.raises(ConfigError, match=f"'{criterion}' is read at another epoch.*val_loss"):
        load_study(raw)


# --------------------------------------------------------------------------- statistics

FAMILIES = {
    "l2": {
        "swept": ["kernel.l2"],
        "variants": ["l2_0.0001", "l2_0.001", "l2_0.01"],
        "values": {
            "l2_0.0001": {"kernel.l2": 0.0001},
            "l2_0.001": {"kernel.l2": 0.001},
            "l2_0.01": {"kernel.l2": 0.01},
        },
    },
    "dropout": {
        "swept": ["dropout.rate"],
        "variants": ["dropout_0.1", "dropout_0.3"],
        "values": {"dropout_0.1": {"dropout.rate": 0.1}, "dropout_0.3": {"dropout.rate": 0.3}},
    },
}

#: Per regularizer: test accuracy added to a seed's level, and best validation loss.
EFFECTS = {
    "none": (0.0, 0.40),
    "l2_0.0001": (0.01, 0.39),
    "l2_0.001": (0.05, 0.30),
    "l2_0.01": (-0.10, 0.50),
    "dropout_0.1": (0.02, 0.36),
    "dropout_0.3": (0.021, 0.35),
}


def sweep_runs(seeds: int = 6) -> pd.DataFrame:
    """A runs table of the families above: seeded noise around the effects, every run ok."""
    rng = np.random.default_rng(7)
    rows = []
    for seed in range(seeds):
        level = 0.8 + rng.normal(0, 0.01)  # Shared by the seed's runs, as the data order is.
        for regularizer, (effect, val_loss) in EFFECTS.items():
            accuracy = level + effect + rng.normal(0, 0.004)
            rows.append(
                {
                    "dataset": "blobs",
                    "model": "mlp",
                    "regularizer": regularizer,
                    "seed": seed,
                    "status": "ok",
                    "test_accuracy": accuracy,
                    "test_loss": 1.0 - accuracy,
                    "gap_accuracy": 0.05 - effect / 2,
                    "best_val_loss": val_loss + rng.normal(0, 0.004),
                    "best_val_accuracy": 1.0 - val_loss,
                }
            )
    return pd.DataFrame(rows)


def sweep_summary(runs: pd.DataFrame) -> pd.DataFrame:
    return stats.describe_cells(runs, ["test_accuracy", "test_loss", "gap_accuracy"])


def test_dose_response_marks_the_best_strength_and_what_cannot_be_told_from_it() -> None:
    """The best variant is the best mean; a clearly worse one is worse, a close one is not."""
    runs = sweep_runs()
    table = sweeps.dose_response(runs, sweep_summary(runs), FAMILIES, "none", ["test_accuracy"])
    l2 = table[table["family"] == "l2"].set_index("variant")
    dropout = table[table["family"] == "dropout"].set_index("variant")

    assert list(l2.index) == ["l2_0.0001", "l2_0.001", "l2_0.01"]
    assert list(l2["strength"]) == [0.0001, 0.001, 0.01]
    assert l2.loc["l2_0.001", "best"] and l2.loc["l2_0.001", "vs_best"] == "best"
    assert l2["neighbour"].tolist() == [True, False, True]
    assert l2.loc["l2_0.0001", "vs_best"] == "worse"
    assert l2.loc["l2_0.01", "vs_best"] == "worse"
    means = runs.groupby("regularizer")["test_accuracy"].mean()
    # A tenth of a point between the rates, with 0.4 points of noise per run: within the
    # default smallest effect of one point, which two one-sided tests show.
    higher = means["dropout_0.1"] > means["dropout_0.3"]
    assert dropout["best"].tolist() == [higher, not higher]
    assert set(dropout["vs_best"]) == {"best", "equivalent"}
    assert l2.loc["l2_0.01", "diff_from_best"] == pytest.approx(
        means["l2_0.01"] - means["l2_0.001"]
    )
    assert list(l2["baseline_mean"]) == pytest.approx([means["none"]] * 3)


def test_dose_response_applies_holm_over_the_familys_variants() -> None:
    """The p-values against the best are Holm-adjusted over the family's other variants."""
    runs = sweep_runs()
    table = sweeps.dose_response(runs, sweep_summary(runs), FAMILIES, "none", ["test_accuracy"])
    l2 = table[(table["family"] == "l2") & ~table["best"]]
    pairs = pd.DataFrame(
        [("blobs", "mlp", "l2_0.001", v, "test_accuracy") for v in l2["variant"]],
        columns=list(stats.PAIR_COLUMNS),
    )
    alone = stats.compare_pairs(runs, pairs)

    assert list(l2["p_holm"]) == pytest.approx(list(alone["p_holm"]))
    assert (alone["family_size"] == 2).all()


def test_selection_takes_the_best_validation_value_per_seed() -> None:
    """Each seed's choice is the lowest best validation loss (highest for accuracy)."""
    runs = sweep_runs()
    chosen = sweeps.select_variants(runs, FAMILIES, "best_val_loss")

    assert len(chosen) == 2 * 6
    for row in chosen.itertuples():
        candidates = runs[
            (runs["seed"] == row.seed)
            & runs["regularizer"].isin(list(FAMILIES[row.family]["variants"]))
        ]
        best = candidates.loc[candidates["best_val_loss"].idxmin()]
        assert row.variant == best["regularizer"]
        assert row.criterion_value == best["best_val_loss"]
    by_accuracy = sweeps.select_variants(runs, FAMILIES, "best_val_accuracy")
    assert set(by_accuracy["variant"]) <= {"l2_0.001", "dropout_0.3"}


def test_selection_ties_go_to_the_weaker_strength_and_failed_runs_are_never_chosen() -> None:
    """Equal criterion values choose the first by strength; a failed run cannot be chosen."""
    runs = sweep_runs(seeds=2)
    runs.loc[runs["regularizer"].str.startswith("l2_"), "best_val_loss"] = 0.3
    runs.loc[(runs["regularizer"] == "l2_0.0001") & (runs["seed"] == 1), "status"] = "failed"

    chosen = sweeps.select_variants(runs, FAMILIES, "best_val_loss").set_index(["family", "seed"])

    assert chosen.loc[("l2", 0), "variant"] == "l2_0.0001"
    assert chosen.loc[("l2", 1), "variant"] == "l2_0.001"


def test_no_test_set_number_influences_a_selection() -> None:
    """Shuffling every test metric, or removing them all, leaves every choice as it was."""
    runs = sweep_runs()
    chosen = sweeps.select_variants(runs, FAMILIES, "best_val_loss")
    rng = np.random.default_rng(1)
    shuffled = runs.copy()
    for column in ("test_accuracy", "test_loss", "gap_accuracy"):
        shuffled[column] = rng.permutation(shuffled[column].to_numpy())
    without = runs.drop(columns=["test_accuracy", "test_loss", "gap_accuracy"])

    pd.testing.assert_frame_equal(
        sweeps.select_variants(shuffled, FAMILIES, "best_val_loss"), chosen
    )
    pd.testing.assert_frame_equal(
        sweeps.select_variants(without, FAMILIES, "best_val_loss"), chosen
    )
    # The criterion itself does decide: reversing it changes the choices.
    reversed_runs = runs.assign(best_val_loss=-runs["best_val_loss"])
    assert not sweeps.select_variants(reversed_runs, FAMILIES, "best_val_loss").equals(chosen)


def test_tuned_runs_carry_the_chosen_variants_test_results() -> None:
    """A tuned run's test numbers are those of the run its family chose for that seed."""
    runs = sweep_runs()
    chosen = sweeps.select_variants(runs, FAMILIES, "best_val_loss")

    tuned = sweeps.tuned_runs(runs, chosen, ["test_accuracy", "test_loss"])

    indexed = runs.set_index(["regularizer", "seed"])
    for row in tuned.itertuples():
        assert row.test_accuracy == indexed.loc[(row.variant, row.seed), "test_accuracy"]
    assert list(tuned.columns[: len(sweeps.SELECTION_COLUMNS)]) == list(sweeps.SELECTION_COLUMNS)


def test_tuned_families_are_compared_with_the_baseline_and_each_other() -> None:
    """Two tuned families give three paired comparisons per metric, Holm over the three."""
    runs = sweep_runs()
    tuned = sweeps.tuned_runs(
        runs, sweeps.select_variants(runs, FAMILIES, "best_val_loss"), ["test_accuracy"]
    )

    table = sweeps.compare_tuned(runs, tuned, "none", ["test_accuracy"])

    assert list(zip(table["baseline"], table["regularizer"], strict=True)) == [
        ("none", "l2"),
        ("none", "dropout"),
        ("l2", "dropout"),
    ]
    assert (table["family_size"] == 3).all()
    # l2 chose l2_0.001 on every seed, so tuned l2 against none is l2_0.001 against none.
    assert set(tuned.loc[tuned["family"] == "l2", "variant"]) == {"l2_0.001"}
    direct = stats.compare_to_baseline(runs, "none", ["test_accuracy"]).set_index("regularizer")
    row = table.iloc[0]
    assert row["mean_diff"] == pytest.approx(direct.loc["l2_0.001", "mean_diff"])
    assert row["p_value"] == pytest.approx(direct.loc["l2_0.001", "p_value"])
    assert row["verdict"] == "better"
    assert table.iloc[2]["verdict"] == "worse"  # Tuned dropout against tuned l2.


def test_selection_counts_list_every_strength_and_how_often_it_was_chosen() -> None:
    """Counts cover every variant, the never-chosen ones with zero, and sum to the seeds."""
    runs = sweep_runs()
    chosen = sweeps.select_variants(runs, FAMILIES, "best_val_loss")

    counts = sweeps.selection_counts(chosen, FAMILIES)

    l2 = counts[counts["family"] == "l2"].set_index("variant")["chosen"]
    assert l2.to_dict() == {"l2_0.0001": 0, "l2_0.001": 6, "l2_0.01": 0}
    assert counts.groupby("family")["chosen"].sum().to_dict() == {"dropout": 6, "l2": 6}


def test_aggregation_writes_the_sweep_tables(tmp_path: Path) -> None:
    """The aggregation step writes dose_response.csv, tuned.csv and tuned_comparisons.csv."""
    raw = small_study(
        {"l2": {"kernel": {"l2": [1e-4, 1e-3, 1e-2]}}, "dropout": {"dropout": {"rate": [0.1, 0.3]}}}
    )
    raw["training"]["epochs"] = 20  # Long enough for the fabricated runs to level off.
    study = fabricate_study(tmp_path, raw)

    tables = aggregate_fabricated(tmp_path, study)

    tuned = pd.read_csv(tables / "tuned.csv")
    assert list(tuned.columns[:8]) == list(sweeps.SELECTION_COLUMNS)
    assert len(tuned) == 2 * len(study.config["seeds"])  # One choice per family and seed.
    assert set(tuned["criterion"]) == {"val_loss"}
    assert tuned["converged"].all()  # Whether each chosen run converged travels with it.
    assert tuned["test_accuracy"].notna().all()
    dose = pd.read_csv(tables / "dose_response.csv")
    assert list(dose.columns) == list(sweeps.DOSE_COLUMNS)
    assert set(dose["variant"]) == set(study.config["regularizers"]) - {"none"}
    compared = pd.read_csv(tables / "tuned_comparisons.csv")
    pairs = zip(compared["baseline"], compared["regularizer"], strict=True)
    assert {frozenset(pair) for pair in pairs} == {
        frozenset(("none", "l2")),
        frozenset(("none", "dropout")),
        frozenset(("l2", "dropout")),
    }


# --------------------------------------------------------------------------- figures


def sweep_study_tables(root: Path) -> tuple[Study, Path]:
    """A fabricated small sweep study (l2 at three strengths, dropout at two), aggregated."""
    raw = small_study(
        {"l2": {"kernel": {"l2": [1e-4, 1e-3, 1e-2]}}, "dropout": {"dropout": {"rate": [0.1, 0.3]}}}
    )
    study = fabricate_study(root, raw, effect=0.0)
    return study, aggregate_fabricated(root, study)


def test_dose_response_figure_draws_each_family_against_strength(tmp_path: Path) -> None:
    """One row per family, one column per metric; l2's decades on a log axis, dropout linear."""
    study, tables = sweep_study_tables(tmp_path)
    rows = pd.read_csv(tables / "dose_response.csv")
    settings = figures.FigureSettings.from_json(figure_settings(study.config))

    figure, caption = figures.dose_response(rows, settings)

    axes = figure.axes
    families = list(dict.fromkeys(rows["family"]))
    assert len(axes) == len(families) * 3
    assert [axis.get_title() for axis in axes[:3]] == [
        "test accuracy",
        "test loss",
        "train–test accuracy gap",
    ]
    by_family = {f: axes[3 * i : 3 * i + 3] for i, f in enumerate(families)}
    assert by_family["l2"][0].get_xscale() == "log"
    assert by_family["dropout"][0].get_xscale() == "linear"
    assert by_family["l2"][0].get_xlabel() == "kernel.l2"
    accuracy = rows[(rows["family"] == "l2") & (rows["metric"] == "test_accuracy")]
    best = accuracy[accuracy["best"]].iloc[0]
    filled = [
        line
        for line in by_family["l2"][0].get_lines()
        if line.get_marker() == "o" and line.get_markerfacecolor() == "black"
    ]
    assert [list(line.get_xdata()) for line in filled] == [[best["strength"]]]
    assert list(filled[0].get_ydata()) == pytest.approx([best["mean"] * 100])
    band = by_family["l2"][0].patches[0].get_extents()
    assert band.height > 0  # The baseline's interval, drawn across the panel.
    assert "blobs · mlp" in caption and "none baseline" in caption


def test_sweep_studies_get_a_dose_response_figure_per_cell(tmp_path: Path) -> None:
    """The figure step lists one dose_response figure per dataset · model of a sweep study."""
    study, tables = sweep_study_tables(tmp_path)
    out = tmp_path / "results" / "figures"

    plot_figures(
        str(tables / "runs.csv"),
        str(tables / "comparisons.csv"),
        str(tables / "rankings.csv"),
        figure_settings(study.config),
        str(out),
        root=str(tmp_path),
        dose_response_csv=str(tables / "dose_response.csv"),
    )

    manifest = json.loads((out / "figures.json").read_text("utf-8"))
    doses = [entry for entry in manifest if entry["kind"] == "dose_response"]
    assert [(e["dataset"], e["model"]) for e in doses] == [("blobs", "mlp")]
    assert (out / doses[0]["file"]).is_file()


# --------------------------------------------------------------------------- words and report


def test_strength_sentences_name_the_best_and_what_cannot_be_told_from_it() -> None:
    """Each family's sentence gives the best strength with its interval and its neighbours' fate."""
    runs = sweep_runs()
    dose = sweeps.dose_response(runs, sweep_summary(runs), FAMILIES, "none", ["test_accuracy"])

    sentences = {
        s["family"]: s["sentence"] for s in strength_sentences(dose, "test_accuracy", FAMILIES)
    }

    best = dose[(dose["family"] == "l2") & dose["best"]].iloc[0]
    assert sentences["l2"] == (
        f"Best kernel.l2 by test accuracy: 0.001 ({format_value(best['mean'], 'test_accuracy')}%, "
        f"CI {format_value(best['ci_low'], 'test_accuracy')} to "
        f"{format_value(best['ci_high'], 'test_accuracy')}). "
        "Its neighbours 0.0001 and 0.01 are worse."
    )
    other = dose[(dose["family"] == "dropout") & ~dose["best"]].iloc[0]
    rate = f"{other['strength']:g}"
    assert sentences["dropout"].endswith(f"Its neighbour {rate} is equivalent to it.")


def test_a_family_of_several_keys_is_worded_by_setting() -> None:
    """Settings of several keys read as ``l1 0.01, l2 0``, and the sentence names settings."""
    family = {
        "swept": ["kernel.l1", "kernel.l2"],
        "variants": ["p_l1-0_l2-0.001", "p_l1-0.01_l2-0"],
        "values": {
            "p_l1-0_l2-0.001": {"kernel.l1": 0.0, "kernel.l2": 0.001},
            "p_l1-0.01_l2-0": {"kernel.l1": 0.01, "kernel.l2": 0.0},
        },
    }
    assert strength_label(family, "p_l1-0.01_l2-0") == "l1 0.01, l2 0"
    runs = sweep_runs().replace(
        {"regularizer": {"l2_0.001": "p_l1-0_l2-0.001", "l2_0.01": "p_l1-0.01_l2-0"}}
    )
    dose = sweeps.dose_response(runs, sweep_summary(runs), {"p": family}, "none", ["test_accuracy"])

    (sentence,) = strength_sentences(dose, "test_accuracy", {"p": family})

    assert sentence["sentence"].startswith("Best setting by test accuracy: l1 0, l2 0.001 (")
    assert sentence["sentence"].endswith("Of the others, l1 0.01, l2 0 is worse.")


def test_page_one_sentence_gives_each_tuned_sweep_against_the_baseline_and_each_other() -> None:
    """The tuned sentence states each verdict with its difference in points."""
    runs = sweep_runs()
    tuned = sweeps.tuned_runs(
        runs, sweeps.select_variants(runs, FAMILIES, "best_val_loss"), ["test_accuracy"]
    )
    compared = sweeps.compare_tuned(runs, tuned, "none", ["test_accuracy"])

    sentence = tuned_sentence(compared, "test_accuracy", "none")

    l2 = compared[(compared["regularizer"] == "l2") & (compared["baseline"] == "none")].iloc[0]
    assert sentence.startswith(
        "With each sweep at the strength validation data chose per seed, on test accuracy: "
    )
    assert (
        f"l2 is higher than none ({format_diff(l2['mean_diff'], 'test_accuracy')} points)"
        in sentence
    )
    assert "dropout is lower than l2" in sentence


def test_report_of_a_sweep_study_shows_responses_choices_and_tuned_comparisons(
    tmp_path: Path,
) -> None:
    """The PDF's sweeps section words dose_response.csv, counts tuned.csv and draws the figure."""
    raw = small_study(
        {"l2": {"kernel": {"l2": [1e-4, 1e-3, 1e-2]}}, "dropout": {"dropout": {"rate": [0.1, 0.3]}}}
    )
    raw["seeds"] = [0, 1, 2, 3, 4]
    raw["training"]["epochs"] = 20  # Long enough for the fabricated runs to level off.
    study = fabricate_study(tmp_path, raw)
    # Validation loss that prefers l2 at 0.001 on seeds 0-2 and 0.01 on seeds 3-4.
    for key in study.runs:
        path = tmp_path / key.output("metrics.json")
        metrics = json.loads(path.read_text("utf-8"))
        preferred = "l2_0.001" if key.seed < 3 else "l2_0.01"
        metrics["val_loss"] = 0.3 if key.regularizer == preferred else 0.4
        path.write_text(json.dumps(metrics), "utf-8")

    html, pdf = render_fabricated(tmp_path, study, REPO / "templates")

    text = " ".join(page.extract_text() or "" for page in PdfReader(pdf).pages)
    text = re.sub(r"\s+", " ", text)
    tables = tmp_path / "results" / "tables"
    dose = pd.read_csv(tables / "dose_response.csv")
    for item in strength_sentences(dose, "test_accuracy", study.families):
        assert re.sub(r"\s+", " ", f"{item['family']}: {item['sentence']}") in text
    assert "l2 0.0001: 0, 0.001: 3, 0.01: 2 5" in text
    assert "Response to strength, blobs · mlp" in text
    compared = pd.read_csv(tables / "tuned_comparisons.csv")
    row = compared[(compared["metric"] == "test_accuracy") & (compared["baseline"] == "none")].iloc[
        0
    ]
    assert (
        f"{row['regularizer']} {MINUS} none {format_diff(row['mean_diff'], 'test_accuracy')}"
        in text
    )
    page = html.read_text("utf-8").split('<article id="sweeps">', 1)[1].split("</article>", 1)[0]
    assert page.count('<figure class="dose_response">') == 1
