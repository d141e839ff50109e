"""How much the data split alone moves a result: runs' spread with one split and a split per seed.

A study that runs a dataset both ways has two datasets with the same data and
settings, one whose seeds share a split and one whose seeds draw their own
(``split.vary: seed``; :meth:`regbench.config.Study.split_twins` pairs them).
A seed varies initialization, dropout masks and batch order in both; in the
second it varies the split too. Taking the sources as independent and
additive, the variance with a split per seed is the seed's variance plus the
split's, so the split's own standard deviation is estimated as
``sqrt(max(0, sd_varied**2 - sd_fixed**2))``. The ratio ``sd_varied /
sd_fixed`` gets the F-based confidence interval of a ratio of two normal
samples' standard deviations. Like :mod:`regbench.stats`, this returns
numbers; the report words them. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from regbench.stats import driving_seed, sample_sd

__all__ = ["SURVIVAL_COLUMNS", "VARIANCE_COLUMNS", "split_survival", "split_variance"]

#: One row per dataset run both ways, model and metric, for one regularizer.
VARIANCE_COLUMNS = (
    "dataset",
    "fixed_dataset",
    "model",
    "regularizer",
    "metric",
    *(f"{stat}_{way}" for way in ("fixed", "varied") for stat in ("n", "mean", "sd", "min", "max")),
    "sd_ratio",
    "sd_ratio_low",
    "sd_ratio_high",
    "split_sd",
    "confidence",
)


def split_variance(
    runs: pd.DataFrame,
    twins: Mapping[str, str],
    regularizer: str,
    metrics: Sequence[str],
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The spread of ``regularizer``'s runs with one split and with a split per seed.

    ``twins`` maps each dataset whose seeds draw their own splits to its
    fixed-split twin. Only runs with status ``ok`` count. A ratio needs two
    runs each way and a fixed-split spread above zero; otherwise it is NaN.
    """
    ok = runs[runs["status"] == "ok"]
    rows = []
    for varied, fixed in twins.items():
        for model in sorted(set(ok.loc[ok["dataset"] == varied, "model"])):
            for metric in metrics:
                samples = [
                    ok.loc[
                        (ok["dataset"] == name)
                        & (ok["model"] == model)
                        & (ok["regularizer"] == regularizer),
                        metric,
                    ]
                    .dropna()
                    .to_numpy(dtype=float)
                    for name in (fixed, varied)
                ]
                row = {
                    "dataset": varied,
                    "fixed_dataset": fixed,
                    "model": model,
                    "regularizer": regularizer,
                    "metric": metric,
                    "confidence": confidence,
                }
                for way, values in zip(("fixed", "varied"), samples, strict=True):
                    row.update(_describe(values, way))
                row.update(_ratio(samples[0], samples[1], confidence))
                rows.append(row)
    return pd.DataFrame(rows, columns=list(VARIANCE_COLUMNS))


def _describe(values: np.ndarray, way: str) -> dict[str, float]:
    nan = float("nan")
    empty = len(values) == 0
    return {
        f"n_{way}": len(values),
        f"mean_{way}": nan if empty else float(np.mean(values)),
        f"sd_{way}": sample_sd(values),
        f"min_{way}": nan if empty else float(np.min(values)),
        f"max_{way}": nan if empty else float(np.max(values)),
    }


def _ratio(fixed: np.ndarray, varied: np.ndarray, confidence: float) -> dict[str, float]:
    """sd_varied / sd_fixed with its F-based interval, and the split's own sd."""
    nan = float("nan")
    sd_fixed, sd_varied = sample_sd(fixed), sample_sd(varied)
    if math.isnan(sd_fixed) or math.isnan(sd_varied):
        return {"sd_ratio": nan, "sd_ratio_low": nan, "sd_ratio_high": nan, "split_sd": nan}
    split_sd = math.sqrt(max(0.0, sd_varied**2 - sd_fixed**2))
    if sd_fixed == 0.0:
        return {"sd_ratio": nan, "sd_ratio_low": nan, "sd_ratio_high": nan, "split_sd": split_sd}
    variance_ratio = (sd_varied / sd_fixed) ** 2
    # (s_v² / var_v) / (s_f² / var_f) follows F(n_v - 1, n_f - 1) for normal samples.
    tail = (1.0 - confidence) / 2.0
    dfn, dfd = len(varied) - 1, len(fixed) - 1
    return {
        "sd_ratio": math.sqrt(variance_ratio),
        "sd_ratio_low": math.sqrt(variance_ratio / sps.f.ppf(1.0 - tail, dfn, dfd)),
        "sd_ratio_high": math.sqrt(variance_ratio / sps.f.ppf(tail, dfn, dfd)),
        "split_sd": split_sd,
    }


#: One row per comparison of a dataset run both ways: its verdict with one split and with
#: a split per seed, whether the estimate moved, how the noise changed, and any seed that
#: drives the mean difference (its seed number, per-seed differences and the mean without it).
SURVIVAL_COLUMNS = (
    "dataset",
    "fixed_dataset",
    "model",
    "regularizer",
    "metric",
    "verdict_fixed",
    "verdict_varied",
    "survives",
    *(
        f"{stat}_{way}"
        for way in ("fixed", "varied")
        for stat in ("n_pairs", "mean_diff", "diff_ci_low", "diff_ci_high", "sd_diff")
    ),
    "sd_diff_ratio",
    "shift",
    "shift_ci_low",
    "shift_ci_high",
    "moved",
    *(
        f"{stat}_{way}"
        for way in ("fixed", "varied")
        for stat in ("driving_seed", "without_driver")
    ),
    "seed_diffs_fixed",
    "seed_diffs_varied",
)


def split_survival(
    runs: pd.DataFrame,
    comparisons: pd.DataFrame,
    twins: Mapping[str, str],
    metrics: Sequence[str],
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Whether each comparison's verdict with one split survives a split per seed, and why not.

    For each dataset run both ways (``twins``: varied -> fixed), model,
    regularizer and metric in ``metrics``, the two rows of ``comparisons``
    (:func:`regbench.stats.compare_to_baseline`). ``survives``: the verdicts
    are equal. ``shift`` = varied minus fixed mean difference, with the
    Welch interval at ``confidence`` from both standard errors; ``moved``: it
    excludes 0, so the estimate itself changed; otherwise a changed verdict
    comes from the noise (``sd_diff_ratio`` = varied over fixed sd of the
    paired differences). ``driving_seed_*``: the seed whose paired difference
    drives the mean (:func:`regbench.stats.driving_seed`, with the row's
    smallest effect), with the mean of the others in ``without_driver_*``;
    ``seed_diffs_*`` hold every seed's difference as ``(seed, difference)``.
    """
    ok = runs[runs["status"] == "ok"]
    by_key = comparisons.set_index(["dataset", "model", "regularizer", "metric"])
    rows = []
    for varied, fixed in twins.items():
        chosen = comparisons[
            (comparisons["dataset"] == fixed) & comparisons["metric"].isin(list(metrics))
        ]
        for row in chosen.to_dict("records"):
            key = (varied, row["model"], row["regularizer"], row["metric"])
            if key not in by_key.index:
                continue
            other = by_key.loc[key]
            found: dict[str, object] = {
                "dataset": varied,
                "fixed_dataset": fixed,
                "model": row["model"],
                "regularizer": row["regularizer"],
                "metric": row["metric"],
                "verdict_fixed": row["verdict"],
                "verdict_varied": other["verdict"],
                "survives": row["verdict"] == other["verdict"],
            }
            for way, source in (("fixed", row), ("varied", other)):
                for stat in ("n_pairs", "mean_diff", "diff_ci_low", "diff_ci_high", "sd_diff"):
                    found[f"{stat}_{way}"] = source[stat]
            found.update(_shift(found, confidence))
            for way, dataset in (("fixed", fixed), ("varied", varied)):
                seeds, diffs = _seed_differences(ok, dataset, row)
                driver = driving_seed(diffs, float(row["smallest_effect"]) or 0.0)
                found[f"driving_seed_{way}"] = None if driver is None else int(seeds[driver])
                found[f"without_driver_{way}"] = (
                    float("nan") if driver is None else float(np.mean(np.delete(diffs, driver)))
                )
                found[f"seed_diffs_{way}"] = tuple(
                    (int(seed), float(diff)) for seed, diff in zip(seeds, diffs, strict=True)
                )
            rows.append(found)
    return pd.DataFrame(rows, columns=list(SURVIVAL_COLUMNS))


def _shift(found: Mapping[str, object], confidence: float) -> dict[str, object]:
    """Varied minus fixed mean difference, its Welch interval, and whether it excludes 0."""
    nan = float("nan")
    values = {k: float(found[k]) for k in found if k.startswith(("mean_diff_", "sd_diff_"))}  # type: ignore[arg-type]  # numbers from the comparisons table
    n_fixed, n_varied = int(found["n_pairs_fixed"]), int(found["n_pairs_varied"])  # type: ignore[call-overload]  # counts from the comparisons table
    shift = values["mean_diff_varied"] - values["mean_diff_fixed"]
    sd_fixed, sd_varied = values["sd_diff_fixed"], values["sd_diff_varied"]
    ratio = sd_varied / sd_fixed if sd_fixed > 0 else nan
    if n_fixed < 2 or n_varied < 2 or math.isnan(sd_fixed) or math.isnan(sd_varied):
        return {
            "sd_diff_ratio": ratio,
            "shift": shift,
            "shift_ci_low": nan,
            "shift_ci_high": nan,
            "moved": False,
        }
    se_fixed2, se_varied2 = sd_fixed**2 / n_fixed, sd_varied**2 / n_varied
    se = math.sqrt(se_fixed2 + se_varied2)
    if se == 0.0:
        return {
            "sd_diff_ratio": ratio,
            "shift": shift,
            "shift_ci_low": shift,
            "shift_ci_high": shift,
            "moved": shift != 0.0,
        }
    df = se**4 / (se_fixed2**2 / (n_fixed - 1) + se_varied2**2 / (n_varied - 1))
    half = float(sps.t.isf((1.0 - confidence) / 2.0, df)) * se
    low, high = shift - half, shift + half
    return {
        "sd_diff_ratio": ratio,
        "shift": shift,
        "shift_ci_low": low,
        "shift_ci_high": high,
        "moved": not low <= 0.0 <= high,
    }


def _seed_differences(
    ok: pd.DataFrame, dataset: str, row: Mapping[str, object]
) -> tuple[list[int], np.ndarray]:
    """The seeds both runs of a comparison finished on, and regularized minus baseline there."""
    cell = ok[(ok["dataset"] == dataset) & (ok["model"] == row["model"])]
    metric = str(row["metric"])
    values = {
        name: cell[cell["regularizer"] == row[name]].set_index("seed")[metric].dropna()
        for name in ("baseline", "regularizer")
    }
    paired = pd.concat(values, axis=1, join="inner").sort_index()
    diffs = (paired["regularizer"] - paired["baseline"]).to_numpy(dtype=float)
    return [int(seed) for seed in paired.index], diffs
