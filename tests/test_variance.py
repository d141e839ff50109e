"""Whether a comparison's verdict with one split survives a split per seed, and why not."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats as sps

from regbench import stats
from regbench.findings import survival_rows, survival_sentence
from regbench.variance import split_survival
from regbench.wording import MINUS


def runs_both_ways(
    fixed: dict[str, list[float]], varied: dict[str, list[float]], metric: str = "test_loss"
) -> pd.DataFrame:
    """Runs of one model on a fixed-split dataset and its split-per-seed twin."""
    rows = []
    for dataset, values in (("iris", fixed), ("iris_split", varied)):
        for regularizer, per_seed in values.items():
            for seed, value in enumerate(per_seed):
                rows.append(
                    {
                        "dataset": dataset,
                        "model": "mlp",
                        "regularizer": regularizer,
                        "seed": seed,
                        "status": "ok",
                        metric: value,
                    }
                )
    return pd.DataFrame(rows)


def test_a_verdict_lost_to_noise_alone_says_so() -> None:
    """Study C-like: the same +0.001 rise, seven times the paired sd: only the noise grew."""
    base = [0.050, 0.052, 0.049, 0.051, 0.053]
    rise = [0.0009, 0.0008, 0.0010, 0.0009, 0.0011]
    fixed = {"none": base, "act": [b + d for b, d in zip(base, rise, strict=True)]}
    noise = [0.0025, -0.0008, 0.0031, -0.0004, 0.0006]
    varied = {"none": base, "act": [b + d for b, d in zip(base, noise, strict=True)]}
    runs = runs_both_ways(fixed, varied)
    comparisons = stats.compare_to_baseline(
        runs, "none", ["test_loss"], smallest_effects={"test_loss": 0.0005}
    )
    table = split_survival(runs, comparisons, {"iris_split": "iris"}, ["test_loss"])
    row = table.iloc[0]
    assert (row["verdict_fixed"], row["verdict_varied"]) == ("worse", "inconclusive")
    assert not row["survives"] and not row["moved"]
    # The shift's Welch interval, by hand.
    se_f = row["sd_diff_fixed"] ** 2 / 5
    se_v = row["sd_diff_varied"] ** 2 / 5
    df = (se_f + se_v) ** 2 / (se_f**2 / 4 + se_v**2 / 4)
    half = sps.t.isf(0.025, df) * (se_f + se_v) ** 0.5
    assert row["shift_ci_high"] == pytest.approx(row["shift"] + half)
    assert row["sd_diff_ratio"] == pytest.approx(row["sd_diff_varied"] / row["sd_diff_fixed"])
    why = survival_rows(table)[0]["why"]
    assert why.startswith("the estimate did not move") and "the paired sd grew" in why
    assert survival_sentence(table).startswith(
        "With a split per seed, the verdict holds for 0 of 1 comparison; changed: act on test "
        "loss (worse → inconclusive: the estimate did not move"
    )


def test_the_seed_that_drives_a_mean_difference_is_named_with_every_seed() -> None:
    """Study D-like: one seed at 73% accuracy drives batch norm's mean; the report names it."""
    base = [0.965, 0.977, 0.953, 0.965, 0.942]
    drop = [-0.012, -0.023, 0.0, -0.012, -0.233]
    varied = {"none": base, "bn": [b + d for b, d in zip(base, drop, strict=True)]}
    fixed = {"none": base, "bn": [b - 0.047 + 0.002 * i for i, b in enumerate(base)]}
    runs = runs_both_ways(fixed, varied, metric="test_accuracy")
    comparisons = stats.compare_to_baseline(runs, "none", ["test_accuracy"])
    table = split_survival(runs, comparisons, {"iris_split": "iris"}, ["test_accuracy"])
    row = table.iloc[0]
    assert row["driving_seed_varied"] == 4 and row["driving_seed_fixed"] is None
    assert row["without_driver_varied"] == pytest.approx(sum(drop[:4]) / 4)
    assert [seed for seed, _ in row["seed_diffs_varied"]] == [0, 1, 2, 3, 4]
    why = survival_rows(table)[0]["why"]
    assert "seed 4 drives the mean" in why and f"4: {MINUS}23.3" in why
