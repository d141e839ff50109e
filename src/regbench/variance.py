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

from regbench.stats import sample_sd

__all__ = ["VARIANCE_COLUMNS", "split_variance"]

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
