"""Statistics over per-run results: cell descriptions, paired comparisons, rankings.

Every function here takes the tidy runs table (one row per run with the columns
``dataset, model, regularizer, seed, status`` and one numeric column per
metric) or a table computed from it, and returns a new table or a small frozen
value. Numbers are never rounded here; the report layer (:mod:`regbench.findings`)
words and formats them. Nothing here imports TensorFlow.

Runs that share ``(dataset, model, seed)`` share the data split and order, so
regularizers are compared with the baseline on paired differences, one pair
per seed where both runs finished with status ``ok``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

# statsmodels adds an "always" filter for this warning when the module is first
# imported; importing it here, not lazily inside a solver call, lets our local
# "ignore" filters take precedence.
from statsmodels.tools.sm_exceptions import ConvergenceWarning

__all__ = [
    "AUTO_T_BELOW",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CELL_KEYS",
    "COMPARISON_COLUMNS",
    "HIGHER_IS_BETTER",
    "NORMALITY_ALPHA",
    "NORMALITY_MIN_N",
    "NOT_COMPARABLE",
    "RankingResult",
    "compare_to_baseline",
    "describe_cells",
    "higher_is_better",
    "mean_ci",
    "nemenyi_critical_difference",
    "rank_regularizers",
]

#: The columns that identify one cell of the study grid.
CELL_KEYS = ("dataset", "model", "regularizer")

#: Whether a larger value of each metric is the better one.
HIGHER_IS_BETTER: dict[str, bool] = {
    "test_accuracy": True,
    "test_f1_macro": True,
    "test_roc_auc": True,
    "test_loss": False,
    "gap_accuracy": False,
    "gap_loss": False,
    # The other accuracy and loss columns of the runs table, so that they can be compared too.
    "train_eval_accuracy": True,
    "train_eval_loss": False,
    "train_accuracy": True,
    "train_loss": False,
    "val_accuracy": True,
    "val_loss": False,
    "best_val_accuracy": True,
    "best_val_loss": False,
}

#: Seed of the bootstrap resampling, fixed so that tables are reproducible.
BOOTSTRAP_SEED = 20240611

#: The verdict of a comparison that has fewer than two seed pairs.
NOT_COMPARABLE = "not comparable"

#: The columns of :func:`compare_to_baseline`, in order.
COMPARISON_COLUMNS = (
    "dataset",
    "model",
    "regularizer",
    "baseline",
    "metric",
    "higher_is_better",
    "n_baseline",
    "n_regularized",
    "n_pairs",
    "mean_baseline",
    "mean_regularized",
    "mean_diff",
    "sd_diff",
    "confidence",
    "diff_ci_low",
    "diff_ci_high",
    "test",
    "statistic",
    "p_value",
    "p_holm",
    "alpha",
    "significant",
    "cohen_dz",
    "prob_superiority",
    "power",
    "min_detectable_diff",
    "seeds_needed",
    "verdict",
)

_RUN_KEYS = ("dataset", "model", "regularizer", "seed", "status")
#: A cell's interval is a bootstrap one when it has at least this many values and
#: Shapiro-Wilk rejects normality at this level; the paired test checks the same level.
NORMALITY_MIN_N = 8
NORMALITY_ALPHA = 0.05
#: Resamples of each bootstrap interval.
BOOTSTRAP_RESAMPLES = 9999
_TEST_LABELS = {"wilcoxon": "Wilcoxon", "paired_t": "paired t-test"}


def higher_is_better(metric: str) -> bool:
    """Return whether larger values of ``metric`` are better; unknown metrics are an error."""
    try:
        return HIGHER_IS_BETTER[metric]
    except KeyError:
        known = ", ".join(sorted(HIGHER_IS_BETTER))
        raise ValueError(
            f"no direction is known for metric {metric!r}; expected one of: {known}"
        ) from None


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Return the t-based confidence interval of the mean; NaNs when n < 2."""
    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    mean = float(np.mean(values))
    if np.ptp(values) == 0.0:
        return mean, mean
    sem = float(np.std(values, ddof=1)) / np.sqrt(n)
    low, high = sps.t.interval(confidence, df=n - 1, loc=mean, scale=sem)
    return float(low), float(high)


def _bootstrap_ci(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Return the BCa bootstrap interval of the mean, or the percentile one where BCa fails."""
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            # BCa is undefined for some heavily tied samples; we fall back instead.
            warnings.simplefilter("ignore", sps.DegenerateDataWarning)
            result = sps.bootstrap(
                (values,),
                np.mean,
                n_resamples=BOOTSTRAP_RESAMPLES,
                confidence_level=confidence,
                method=method,
                rng=np.random.default_rng(BOOTSTRAP_SEED),
            )
        low = float(result.confidence_interval.low)
        high = float(result.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return low, high
    return float("nan"), float("nan")


def _cell_ci(values: np.ndarray, confidence: float) -> tuple[float, float, str]:
    """Return the interval of the mean and the method that produced it."""
    n = len(values)
    if n < 2:
        return float("nan"), float("nan"), "none"
    if np.ptp(values) == 0.0:
        mean = float(np.mean(values))
        return mean, mean, "t"
    if n >= NORMALITY_MIN_N and sps.shapiro(values).pvalue < NORMALITY_ALPHA:
        low, high = _bootstrap_ci(values, confidence)
        if math.isfinite(low):
            return low, high, "bootstrap"
    low, high = mean_ci(values, confidence)
    return low, high, "t"


def describe_cells(
    runs: pd.DataFrame, metrics: Sequence[str], confidence: float = 0.95
) -> pd.DataFrame:
    """Describe each cell and metric over its successful runs, long format.

    Runs whose status is not ``ok`` are counted in ``n_failed`` /
    ``n_diverged`` and never averaged in.

    The interval of the mean is t-based unless the sample is clearly
    non-normal, which we take to mean at least 8 values and a Shapiro-Wilk
    p < 0.05; then it is a BCa bootstrap interval (9999 resamples, seed
    :data:`BOOTSTRAP_SEED`, percentile interval where BCa is undefined).
    ``ci_method`` says which was used: ``"t"``, ``"bootstrap"``, or ``"none"``
    when n < 2 and no interval exists. A sample without spread gets the
    interval ``[mean, mean]``.
    """
    _require_columns(runs, [*CELL_KEYS, "status", *metrics])
    _check_probability("confidence", confidence)
    rows = []
    for key, cell in runs.groupby(list(CELL_KEYS), sort=True):
        ok = cell[cell["status"] == "ok"]
        for metric in metrics:
            values = ok[metric].dropna().to_numpy(dtype=float)
            n = len(values)
            low, high, ci_method = _cell_ci(values, confidence)
            rows.append(
                {
                    **dict(zip(CELL_KEYS, key, strict=True)),
                    "metric": metric,
                    "n": n,
                    "n_diverged": int((cell["status"] == "diverged").sum()),
                    "n_failed": int((~cell["status"].isin(["ok", "diverged"])).sum()),
                    "mean": float(np.mean(values)) if n else float("nan"),
                    "std": _sd(values),
                    "median": float(np.median(values)) if n else float("nan"),
                    "ci_low": low,
                    "ci_high": high,
                    "ci_method": ci_method,
                }
            )
    columns = [*CELL_KEYS, "metric", "n", "n_diverged", "n_failed", "mean", "std", "median"]
    return pd.DataFrame(rows, columns=[*columns, "ci_low", "ci_high", "ci_method"])


def _sd(values: np.ndarray) -> float:
    """Return the sample standard deviation: NaN below two values, exactly 0 for equal ones."""
    if len(values) < 2:
        return float("nan")
    return 0.0 if np.ptp(values) == 0.0 else float(np.std(values, ddof=1))


def _require_columns(
    table: pd.DataFrame, columns: Sequence[str], name: str = "the runs table"
) -> None:
    """Raise one clear error naming every column the table lacks."""
    missing = [column for column in dict.fromkeys(columns) if column not in table.columns]
    if missing:
        raise ValueError(
            f"{name} lacks column(s) {', '.join(missing)}; "
            f"it has: {', '.join(map(str, table.columns))}"
        )


def _check_probability(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")


def _wilcoxon_min_pairs(alpha: float) -> int:
    """Return the fewest pairs with which the exact two-sided Wilcoxon test can reach p < alpha.

    With n pairs the smallest attainable two-sided p-value is 2 / 2**n.
    """
    n = 2
    while 2.0 / 2.0**n >= alpha:
        n += 1
    return n


def _pairs_needed(effect_size: float, alpha: float, power: float) -> int | None:
    """Return the pairs a two-sided paired t-test needs to detect ``effect_size`` (Cohen's d_z)."""
    if not effect_size > 0.0:
        return None
    analysis = TTestPower()
    # The power of huge effects is NaN and the root finder cannot bracket them; two
    # pairs is the least a t-test can use.
    if not math.isfinite(effect_size) or not analysis.power(effect_size, 2, alpha) < power:
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        nobs = analysis.solve_power(effect_size=effect_size, nobs=None, alpha=alpha, power=power)
    nobs = float(np.asarray(nobs).item())
    if not math.isfinite(nobs):
        return None
    return max(2, math.ceil(nobs - 1e-9))


def _detectable_effect(n_pairs: int, alpha: float, power: float) -> float:
    """Return the smallest Cohen's d_z a two-sided paired t-test detects with ``n_pairs``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        effect = TTestPower().solve_power(effect_size=None, nobs=n_pairs, alpha=alpha, power=power)
    return float(np.asarray(effect).item())


#: Below this many pairs the "auto" test is the paired t-test: the exact Wilcoxon
#: distribution is too coarse (with 5 pairs its smallest two-sided p is 0.0625).
AUTO_T_BELOW = 10


def _auto_test(diffs: np.ndarray) -> str:
    """Paired t for few pairs unless their differences are clearly non-normal, else Wilcoxon."""
    if len(diffs) >= AUTO_T_BELOW:
        return "wilcoxon"
    if len(diffs) >= 3 and np.ptp(diffs) > 0.0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if sps.shapiro(diffs).pvalue < NORMALITY_ALPHA:
                return "wilcoxon"
    return "paired_t"


def _paired_test(diffs: np.ndarray, test: str) -> tuple[str, float, float]:
    """Return (test used, statistic, two-sided p-value) for paired differences, n >= 2."""
    if np.all(diffs == 0.0):
        # Every sign flip of all-zero differences gives the same statistic, so p = 1 exactly.
        return "identical", 0.0, 1.0
    if test == "auto":
        test = _auto_test(diffs)
    if test == "paired_t" and np.ptp(diffs) > 0.0:
        result = sps.ttest_1samp(diffs, 0.0)
        return "paired_t", float(result.statistic), float(result.pvalue)
    with warnings.catch_warnings():
        # Tiny samples and zero differences make scipy warn about its approximation.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sps.wilcoxon(diffs)
    return "wilcoxon", float(result.statistic), float(result.pvalue)


def _compare_pair(
    baseline_values: np.ndarray,
    regularized_values: np.ndarray,
    higher: bool,
    confidence: float,
    alpha: float,
    power: float,
    test: str,
) -> dict[str, Any]:
    """Compute every paired statistic of one regularizer against the baseline."""
    nan = float("nan")
    diffs = regularized_values - baseline_values
    n = len(diffs)
    if n:
        # Differences equal up to rounding error (a constant shift, say) are made exactly
        # equal, so that they count as having no spread rather than a spurious tiny one.
        scale = max(
            1.0, float(np.max(np.abs(baseline_values))), float(np.max(np.abs(regularized_values)))
        )
        tolerance = 64 * np.finfo(float).eps * scale
        if np.ptp(diffs) <= tolerance:
            mean = float(np.mean(diffs))
            diffs = np.full(n, 0.0 if abs(mean) <= tolerance else mean)
    row: dict[str, Any] = {
        "n_pairs": n,
        "mean_baseline": float(np.mean(baseline_values)) if n else nan,
        "mean_regularized": float(np.mean(regularized_values)) if n else nan,
        "mean_diff": float(np.mean(diffs)) if n else nan,
        "sd_diff": _sd(diffs),
        "test": "none",
        "statistic": nan,
        "p_value": nan,
        "cohen_dz": nan,
        "prob_superiority": nan,
        "min_detectable_diff": nan,
        "seeds_needed": None,
    }
    row["diff_ci_low"], row["diff_ci_high"] = mean_ci(diffs, confidence)
    if n:
        better = diffs > 0.0 if higher else diffs < 0.0
        row["prob_superiority"] = (float(np.sum(better)) + 0.5 * float(np.sum(diffs == 0.0))) / n
    if n < 2:
        return row
    row["test"], row["statistic"], row["p_value"] = _paired_test(diffs, test)
    mean_diff, sd_diff = row["mean_diff"], row["sd_diff"]
    if sd_diff > 0.0:
        row["cohen_dz"] = mean_diff / sd_diff
    row["min_detectable_diff"] = _detectable_effect(n, alpha, power) * sd_diff
    if mean_diff != 0.0:
        effect = abs(mean_diff) / sd_diff if sd_diff > 0.0 else math.inf
        needed = _pairs_needed(effect, alpha, power)
        if needed is not None and row["test"] == "wilcoxon":
            needed = max(needed, _wilcoxon_min_pairs(alpha))
        row["seeds_needed"] = needed
    return row


def _verdict(row: pd.Series) -> str:
    if row["n_pairs"] < 2:
        return NOT_COMPARABLE
    if not row["significant"] or row["mean_diff"] == 0.0:
        return "indistinguishable"
    return "better" if (row["mean_diff"] > 0.0) == row["higher_is_better"] else "worse"


def compare_to_baseline(
    runs: pd.DataFrame,
    baseline: str,
    metrics: Sequence[str],
    confidence: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
    test: Literal["auto", "wilcoxon", "paired_t"] = "auto",
) -> pd.DataFrame:
    """Compare every regularizer with ``baseline`` on seed-paired runs, one row per metric.

    One row per dataset x model x non-baseline regularizer x metric, with the
    columns :data:`COMPARISON_COLUMNS`:

    - ``n_baseline`` / ``n_regularized``: successful runs with a value for the
      metric; ``n_pairs``: seeds where both have one. Means, differences
      (regularized - baseline) and everything after are over those pairs only.
    - ``diff_ci_low`` / ``diff_ci_high``: t interval of the mean difference at
      ``confidence`` (NaN with fewer than two pairs).
    - ``test``: the two-sided paired test actually used: ``"wilcoxon"``
      (signed-rank, zero differences dropped, exact for small samples, the
      default), ``"paired_t"`` (when asked for and the differences vary;
      otherwise Wilcoxon is used), ``"identical"`` (all differences are zero:
      statistic 0 and p = 1 exactly) or ``"none"`` (fewer than two pairs).
    - ``p_holm``: Holm-adjusted p over all regularizers of the same dataset x
      model x metric; ``significant`` is ``p_holm < alpha``.
    - ``cohen_dz``: mean / sd of the differences, NaN when they do not vary;
      ``prob_superiority``: share of pairs where the regularized run is better
      in the metric's direction, ties counting half.
    - ``min_detectable_diff``: smallest |mean difference| a two-sided paired
      t-test at ``alpha`` detects with ``power`` given ``n_pairs`` and the
      observed sd (unadjusted alpha). ``seeds_needed``: pairs needed to detect
      the observed mean difference likewise, never fewer than the Wilcoxon test
      needs to reach ``alpha`` at all (6 at 0.05); missing when the difference
      is zero or undefined (nullable integer column).
    - ``verdict``: ``"better"``, ``"worse"`` or ``"indistinguishable"`` in the
      metric's direction, :data:`NOT_COMPARABLE` with fewer than two pairs.
    """
    _require_columns(runs, [*_RUN_KEYS, *metrics])
    directions = {metric: higher_is_better(metric) for metric in metrics}
    for name, value in (("confidence", confidence), ("alpha", alpha), ("power", power)):
        _check_probability(name, value)
    if test not in ("auto", *_TEST_LABELS):
        raise ValueError(f"test must be one of auto, {', '.join(_TEST_LABELS)}, got {test!r}")
    regularizers = set(runs["regularizer"])
    if len(runs) and baseline not in regularizers:
        known = ", ".join(sorted(map(str, regularizers)))
        raise ValueError(f"baseline {baseline!r} is not a regularizer in the runs table: {known}")
    run_keys = ["dataset", "model", "regularizer", "seed"]
    duplicated = runs[runs.duplicated(run_keys, keep=False)]
    if len(duplicated):
        first = duplicated.iloc[0]
        raise ValueError(
            f"the runs table has {len(duplicated)} rows sharing a run key, e.g. "
            + ", ".join(f"{key}={first[key]!r}" for key in run_keys)
            + "; expected one row per run"
        )

    rows = []
    for (dataset, model), group in runs.groupby(["dataset", "model"], sort=True):
        ok = group[group["status"] == "ok"]
        baseline_runs = ok[ok["regularizer"] == baseline].set_index("seed")
        for regularizer in sorted(set(group["regularizer"]) - {baseline}):
            regularized_runs = ok[ok["regularizer"] == regularizer].set_index("seed")
            for metric in metrics:
                baseline_values = baseline_runs[metric].dropna()
                regularized_values = regularized_runs[metric].dropna()
                pairs = pd.concat(
                    {"baseline": baseline_values, "regularized": regularized_values},
                    axis=1,
                    join="inner",
                ).sort_index()
                statistics = _compare_pair(
                    pairs["baseline"].to_numpy(dtype=float),
                    pairs["regularized"].to_numpy(dtype=float),
                    directions[metric],
                    confidence,
                    alpha,
                    power,
                    test,
                )
                rows.append(
                    {
                        "dataset": dataset,
                        "model": model,
                        "regularizer": regularizer,
                        "baseline": baseline,
                        "metric": metric,
                        "higher_is_better": directions[metric],
                        "n_baseline": len(baseline_values),
                        "n_regularized": len(regularized_values),
                        "confidence": confidence,
                        "alpha": alpha,
                        "power": power,
                        **statistics,
                    }
                )

    table = pd.DataFrame(rows, columns=[c for c in COMPARISON_COLUMNS if c not in {"p_holm"}])
    table["p_holm"] = float("nan")
    for _, family in table.groupby(["dataset", "model", "metric"], sort=False):
        tested = family["p_value"].notna()
        if tested.any():
            adjusted = multipletests(family.loc[tested, "p_value"].to_numpy(), method="holm")[1]
            table.loc[family.index[tested.to_numpy()], "p_holm"] = adjusted
    table["significant"] = (table["p_holm"] < alpha).astype(bool)
    table["seeds_needed"] = pd.array(table["seeds_needed"], dtype="Int64")
    table["verdict"] = (
        table.apply(_verdict, axis=1) if len(table) else pd.Series(dtype=object)
    ).astype(object)
    return table.loc[:, list(COMPARISON_COLUMNS)].reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class RankingResult:
    """Average ranks of regularizers across datasets with the Friedman / Nemenyi analysis.

    ``ranks`` has one row per regularizer (``regularizer``, ``average_rank``),
    best first; ``dataset_ranks`` is the dataset x regularizer table of ranks it
    averages. ``statistic`` / ``p_value`` are Friedman's chi-square test and
    ``critical_difference`` the Nemenyi CD at ``alpha``; all three are NaN and
    ``note`` says why when they cannot be computed. ``note`` also names
    datasets or regularizers left out for lack of successful runs.
    """

    metric: str
    model: str
    ranks: pd.DataFrame
    dataset_ranks: pd.DataFrame
    statistic: float
    p_value: float
    critical_difference: float
    n_datasets: int
    n_regularizers: int
    alpha: float
    note: str | None


def nemenyi_critical_difference(n_regularizers: int, n_datasets: int, alpha: float) -> float:
    """Return Demšar's (2006) Nemenyi critical difference of average ranks."""
    k = n_regularizers
    q_alpha = sps.studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0)
    return float(q_alpha * math.sqrt(k * (k + 1) / (6.0 * n_datasets)))


def rank_regularizers(
    runs: pd.DataFrame, metric: str, model: str, alpha: float = 0.05
) -> RankingResult:
    """Rank the regularizers of ``model`` on each dataset and test whether ranks differ.

    Each dataset ranks the regularizers by their mean over successful seeds,
    rank 1 being best in the metric's direction, ties sharing the average
    rank. Regularizers without any successful run are left out, then datasets
    lacking a mean for any remaining regularizer, because the Friedman test
    needs complete blocks. The Friedman statistic is
    :func:`scipy.stats.friedmanchisquare`'s, which corrects for ties (Demšar's
    formula does not, so it is slightly larger with ties). The Nemenyi critical
    difference is ``q_alpha * sqrt(k (k + 1) / (6 N))`` with ``q_alpha`` the
    studentized range quantile over sqrt(2) (Demšar 2006). Both need at least
    3 regularizers and 2 datasets.
    """
    _require_columns(runs, [*_RUN_KEYS, metric])
    higher = higher_is_better(metric)
    _check_probability("alpha", alpha)
    models = set(runs["model"])
    if model not in models:
        known = ", ".join(sorted(map(str, models)))
        raise ValueError(f"model {model!r} has no runs in the runs table; it has: {known}")

    ok = runs[(runs["model"] == model) & (runs["status"] == "ok")]
    all_regularizers = sorted(set(runs.loc[runs["model"] == model, "regularizer"]))
    all_datasets = sorted(set(runs.loc[runs["model"] == model, "dataset"]))
    means = (
        ok.groupby(["dataset", "regularizer"])[metric]
        .mean()
        .unstack("regularizer")
        .reindex(index=all_datasets, columns=all_regularizers)
    )
    notes = []
    empty_regularizers = [r for r in all_regularizers if means[r].isna().all()]
    if empty_regularizers:
        notes.append(f"left out for lack of successful runs: {', '.join(empty_regularizers)}")
    means = means.drop(columns=empty_regularizers)
    if means.shape[1] == 0:
        means = means.iloc[0:0]
    incomplete = means.index[means.isna().any(axis=1)].tolist()
    if incomplete:
        notes.append(f"datasets left out as incomplete: {', '.join(map(str, incomplete))}")
    means = means.dropna(axis=0, how="any")
    dataset_ranks = means.rank(axis=1, method="average", ascending=not higher)
    dataset_ranks.columns.name = "regularizer"
    n_datasets, k = dataset_ranks.shape
    ranks = (
        dataset_ranks.mean(axis=0)
        .rename("average_rank")
        .rename_axis("regularizer")
        .reset_index()
        .sort_values(["average_rank", "regularizer"], kind="stable")
        .reset_index(drop=True)
    )
    if n_datasets == 0:
        ranks = pd.DataFrame({"regularizer": pd.Series(dtype=object), "average_rank": []})

    nan = float("nan")
    statistic = p_value = critical_difference = nan
    if k < 3 or n_datasets < 2:
        notes.append(
            "Friedman test and Nemenyi critical difference need at least 3 regularizers "
            f"and 2 datasets; got {k} and {n_datasets}"
        )
    elif bool((dataset_ranks.nunique(axis=1) == 1).all()):
        notes.append("all regularizers tie on every dataset, so ranks cannot differ")
    else:
        result = sps.friedmanchisquare(*means.to_numpy(dtype=float).T)
        statistic, p_value = float(result.statistic), float(result.pvalue)
        critical_difference = nemenyi_critical_difference(k, n_datasets, alpha)
    return RankingResult(
        metric=metric,
        model=model,
        ranks=ranks,
        dataset_ranks=dataset_ranks,
        statistic=statistic,
        p_value=p_value,
        critical_difference=critical_difference,
        n_datasets=int(n_datasets),
        n_regularizers=int(k),
        alpha=alpha,
        note="; ".join(notes) if notes else None,
    )
