"""Statistics over per-run results: cells, paired comparisons, rankings, adequacy, references.

Every function here takes the tidy runs table (one row per run with the columns
``dataset, model, regularizer, seed, status`` and one numeric column per
metric), a table computed from it, or a run's history, and returns a new
table, a small frozen value or numbers. Numbers are never rounded here; the
report layer (:mod:`regbench.findings`) words and formats them. Nothing here
imports TensorFlow.

Runs that share ``(dataset, model, seed)`` share the data split and order, so
regularizers are compared with the baseline on paired differences, one pair
per seed where both runs finished with status ``ok``.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from regbench.config import FIXED, PLATEAU
from regbench.measures import (
    HIGHER_IS_BETTER,
    LOSS_METRICS,
    PROPORTION_METRICS,
    TEST_PARTS,
    TEST_SHARE_METRICS,
    metric_range,
)

__all__ = [
    "ADEQUACY_LOSS_FALL",
    "ADEQUACY_MIN_WINDOW",
    "ADEQUACY_WINDOW_FRACTION",
    "AUTO_T_BELOW",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CELL_KEYS",
    "COMPARISON_COLUMNS",
    "CONVERGED",
    "DRIVING_SEED_LEVEL",
    "HIGHER_IS_BETTER",
    "NORMALITY_ALPHA",
    "NORMALITY_MIN_N",
    "NOT_COMPARABLE",
    "PAIR_COLUMNS",
    "PREDICTION_LEVEL",
    "RANKING_MIN_DATASETS",
    "REFERENCE_COLUMNS",
    "SEED_CAP",
    "SMALLEST_EFFECT_EXAMPLES",
    "SMALLEST_EFFECT_LOSS",
    "SMALLEST_EFFECT_POINTS",
    "UNDERTRAINED",
    "VERDICTS",
    "RankingResult",
    "adequacy_window",
    "compare_pairs",
    "compare_to_baseline",
    "compare_to_references",
    "default_smallest_effect",
    "describe_cells",
    "detectable_effect",
    "driving_seed",
    "higher_is_better",
    "iman_davenport",
    "mark_converged",
    "mean_ci",
    "nemenyi_critical_difference",
    "paired_t_power",
    "pairs_needed",
    "prediction_interval",
    "rank_regularizers",
    "run_converged",
    "run_still_improving",
    "sample_sd",
    "saturated_cells",
    "tost_paired",
    "training_adequacy",
    "wilcoxon_min_pairs",
]

#: The columns that identify one cell of the study grid.
CELL_KEYS = ("dataset", "model", "regularizer")

#: Seed of the bootstrap resampling, fixed so that tables are reproducible.
BOOTSTRAP_SEED = 20240611

#: The level of the prediction interval for one new run that ``summary.csv`` gives per cell.
PREDICTION_LEVEL = 0.95

#: The verdict of a comparison that has fewer than two seed pairs.
NOT_COMPARABLE = "not comparable"

#: The verdict of a comparison one of whose paired runs had not converged by the study's
#: training protocol: its difference may be one of training length, not of regularization.
UNDERTRAINED = "undertrained"

#: The runs table's column that says whether a run converged by the training protocol
#: (:func:`run_converged`); a runs table without it is taken as converged throughout.
CONVERGED = "converged"

#: Every verdict a comparison can get, in the order the report lists them (see
#: :func:`compare_to_baseline`): a difference at least the smallest effect of interest in
#: the metric's direction ("better", "worse"); a smaller gap bought with a worse test
#: metric ("underfitting"); a significant difference smaller than the smallest effect
#: ("negligible"); none, shown by TOST to lie within it ("equivalent") or not
#: ("inconclusive"); every run of both cells at the metric's bound ("saturated");
#: fewer than two pairs (:data:`NOT_COMPARABLE`); a pair with a run that had not
#: converged (:data:`UNDERTRAINED`, which withholds any verdict but "saturated").
VERDICTS = (
    "better",
    "worse",
    "underfitting",
    "negligible",
    "equivalent",
    "inconclusive",
    "saturated",
    NOT_COMPARABLE,
    UNDERTRAINED,
)

#: The smallest difference of interest of a proportion when a study declares none
#: (``report.smallest_effect``): one percentage point, or for a share of the test set
#: ``SMALLEST_EFFECT_EXAMPLES`` test examples where that is larger (38 test flowers make
#: one example 2.6 points: a smaller mean difference is not one flower per seed).
SMALLEST_EFFECT_POINTS = 0.01
SMALLEST_EFFECT_EXAMPLES = 1
#: One seed drives a mean paired difference when its own difference lies outside this
#: prediction interval of the other seeds' (see :func:`driving_seed`): 99%, so that with
#: five seeds an ordinary spread is not named by chance more than about once in twenty.
DRIVING_SEED_LEVEL = 0.99

#: The smallest difference of interest of a cross-entropy (nats) when a study declares
#: none. The loss is the mean of -log p(true class), so a fall of 0.01 nats is the
#: probability given to the true class rising by a factor e^0.01, about 1%, on geometric
#: average over the test set: the loss counterpart of one point of accuracy.
SMALLEST_EFFECT_LOSS = 0.01

#: The most paired seeds ``seeds_needed`` reports; beyond it the column is empty and
#: ``beyond_seed_cap`` is true. Fifty is ten times the five seeds a study typically runs,
#: and an effect 50 pairs cannot detect at 80% power is under about half the seed-to-seed
#: standard deviation of the paired differences (d_z 0.40 at alpha 0.05, 0.54 at 0.005):
#: smaller than what reruns of one configuration differ by, so of no practical use.
SEED_CAP = 50

#: Below this many pairs the "auto" test is the paired t-test: the exact Wilcoxon
#: distribution is too coarse (with 5 pairs its smallest two-sided p is 0.0625).
AUTO_T_BELOW = 10

#: Cross-dataset rankings need at least this many datasets: one dataset's order is
#: not a ranking across datasets, and the Friedman test needs two blocks.
RANKING_MIN_DATASETS = 2

#: Training adequacy looks at the last ``ADEQUACY_WINDOW_FRACTION`` of the epochs, and at
#: least the last ``ADEQUACY_MIN_WINDOW`` (see :func:`adequacy_window`).
ADEQUACY_WINDOW_FRACTION = 0.1
ADEQUACY_MIN_WINDOW = 3
#: The relative fall of the training data loss across the window above which it is
#: "still falling" (5%: a converged run's loss moves by a percent or two there).
ADEQUACY_LOSS_FALL = 0.05
#: The columns of :func:`compare_to_baseline` and :func:`compare_pairs`, in order:
#:
#: - ``n_baseline`` / ``n_regularized``: successful runs with a value for the
#:   metric; ``n_pairs``: seeds where both have one. Means, differences
#:   (regularized - baseline) and everything after are over those pairs only;
#:   ``max_abs_diff`` is the largest |difference| of one seed.
#: - ``diff_ci_low`` / ``diff_ci_high``: t interval of the mean difference at
#:   ``confidence`` (NaN with fewer than two pairs).
#: - ``test``: the two-sided paired test actually used. With ``test="auto"``
#:   (the default) it is the paired t-test below :data:`AUTO_T_BELOW` pairs
#:   unless Shapiro-Wilk calls the differences non-normal and the pairs are
#:   enough for Wilcoxon to reach ``alpha`` (:func:`wilcoxon_min_pairs`), and Wilcoxon
#:   signed-rank (zero differences dropped, exact for small samples)
#:   otherwise; ``"paired_t"`` or ``"wilcoxon"`` force one, except that
#:   differences without spread go to Wilcoxon. ``"identical"``: all
#:   differences are zero (statistic 0, p = 1 exactly); ``"none"``: fewer
#:   than two pairs.
#: - ``p_holm``: Holm-adjusted p over the ``family_size`` tested regularizers
#:   of the same dataset x model x metric; ``significant`` is ``p_holm < alpha``.
#: - ``cohen_dz``: mean / sd of the differences, NaN when they do not vary;
#:   ``prob_superiority``: share of pairs where the regularized run is better
#:   in the metric's direction, ties counting half.
#: - ``power_alpha`` = ``alpha / family_size``: a raw p below it is significant
#:   after Holm whatever the other p-values are, so power is computed at it.
#:   ``min_detectable_diff``: the smallest |mean difference| a two-sided paired
#:   t-test at ``power_alpha`` detects with ``power`` given ``n_pairs`` and the
#:   observed sd. ``seeds_needed``: pairs needed to detect the observed mean
#:   difference likewise (:func:`pairs_needed`), never fewer than the Wilcoxon
#:   test needs to reach ``power_alpha`` at all when it is the test used;
#:   empty (nullable integer) with fewer than two pairs or when more than
#:   ``seed_cap`` (:data:`SEED_CAP`) pairs would be needed, and then
#:   ``beyond_seed_cap`` is true: the difference (a zero one included) is not
#:   practically detectable at this size.
#: - For shares of the test set (:data:`regbench.measures.TEST_SHARE_METRICS`)
#:   with a test-set size in ``test_sizes`` (dataset -> examples):
#:   ``one_example`` = 1 / n_test, ``diff_in_examples`` = mean_diff /
#:   one_example (per seed, on average) and ``max_diff_in_examples`` the
#:   largest per seed; ``within_one_example``: |diff_in_examples| <= 1, the
#:   two differ by at most one test example per seed on average. One seed's
#:   accuracy difference is a whole number of examples, so the mean moves in
#:   steps of 1 / (n_pairs n_test), and ``max_diff_in_examples`` <= 1 means
#:   no seed differs by more than a single example. NaN / false for other
#:   metrics.
#: - ``smallest_effect``: the smallest difference of interest, from
#:   ``smallest_effects`` (metric -> value, a study's ``report.smallest_effect``;
#:   ``smallest_effect_source`` ``"declared"``) or
#:   :func:`default_smallest_effect` (``"default"``; ``"none"`` and NaN where
#:   a metric has no default). ``practical``: ``"relevant"`` when
#:   |mean_diff| is at least it, ``"negligible"`` when smaller.
#: - ``tost_p_lower`` / ``tost_p_upper``: the two one-sided paired t-tests
#:   of the mean difference against -smallest_effect and +smallest_effect
#:   (:func:`tost_paired`); ``tost_p`` their maximum, ``tost_p_holm`` it
#:   Holm-adjusted over the same family as ``p_holm``; ``equivalent`` is
#:   ``tost_p_holm < alpha``: the difference lies within +-smallest_effect.
#: - ``saturated``: every successful run of both cells sits at the same bound
#:   of the metric (a gap: of its test side), as 100% test accuracy does.
#: - ``test_part_diff``: for a train-test gap (:data:`TEST_PARTS`), the mean
#:   paired difference of its test side over the same pairs; NaN otherwise.
#: - ``verdict``, one of :data:`VERDICTS`: :data:`NOT_COMPARABLE` with fewer
#:   than two pairs; ``"saturated"``; with ``significant`` and a nonzero
#:   difference, ``"negligible"`` when it is smaller than the smallest effect,
#:   else ``"better"`` or ``"worse"`` in the metric's direction, except that a
#:   smaller gap whose test side got worse by at least that side's smallest
#:   effect is ``"underfitting"``; otherwise ``"equivalent"`` when TOST shows
#:   it within the smallest effect and ``"inconclusive"`` when not.
#: - ``n_unconverged``: compared seed pairs with a run that did not converge by
#:   the training protocol (the runs table's :data:`CONVERGED` column; none
#:   without it).
#:   A ``"saturated"`` comparison keeps that verdict; any other becomes
#:   :data:`UNDERTRAINED` when a compared pair has an unconverged run (the
#:   numbers stay, the verdict is withheld).
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
    "max_abs_diff",
    "confidence",
    "diff_ci_low",
    "diff_ci_high",
    "test",
    "statistic",
    "p_value",
    "family_size",
    "p_holm",
    "alpha",
    "significant",
    "cohen_dz",
    "prob_superiority",
    "power",
    "power_alpha",
    "min_detectable_diff",
    "seeds_needed",
    "seed_cap",
    "beyond_seed_cap",
    "one_example",
    "diff_in_examples",
    "max_diff_in_examples",
    "within_one_example",
    "smallest_effect",
    "smallest_effect_source",
    "practical",
    "tost_p_lower",
    "tost_p_upper",
    "tost_p",
    "tost_p_holm",
    "equivalent",
    "saturated",
    "test_part_diff",
    "n_unconverged",
    "verdict",
)

#: The columns of :func:`compare_to_references`, in order.
REFERENCE_COLUMNS = (
    "dataset",
    "model",
    "regularizer",
    "metric",
    "reference",
    "source",
    "n",
    "mean",
    "prediction_level",
    "pi_low",
    "pi_high",
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


def prediction_interval(values: np.ndarray, level: float = PREDICTION_LEVEL) -> tuple[float, float]:
    """Return the t-based interval that holds one new run's value with probability ``level``.

    ``mean +- t_{n-1} * s * sqrt(1 + 1/n)``: the spread of a single run (s)
    plus the uncertainty of the mean (s / sqrt(n)), assuming the runs' values
    are normal. It is what a single-run notebook's number should fall in.
    NaNs when n < 2; ``[mean, mean]`` when the values do not vary.
    """
    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    mean = float(np.mean(values))
    if np.ptp(values) == 0.0:
        return mean, mean
    half = (
        float(sps.t.isf((1.0 - level) / 2.0, n - 1)) * sample_sd(values) * math.sqrt(1.0 + 1.0 / n)
    )
    return mean - half, mean + half


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


def _describe_values(
    values: np.ndarray, confidence: float, level: float, bounds: tuple[float, float]
) -> dict[str, Any]:
    """Return n, mean, spread and both intervals of one cell's values, clipped to ``bounds``."""
    n = len(values)
    ci_low, ci_high, ci_method = _cell_ci(values, confidence)
    pi_low, pi_high = prediction_interval(values, level)
    low, high = bounds
    return {
        "n": n,
        "mean": float(np.mean(values)) if n else float("nan"),
        "std": sample_sd(values),
        "median": float(np.median(values)) if n else float("nan"),
        "confidence": confidence,
        # np.clip keeps NaN, so cells without an interval stay without one.
        "ci_low": float(np.clip(ci_low, low, high)),
        "ci_high": float(np.clip(ci_high, low, high)),
        "ci_method": ci_method,
        "prediction_level": level,
        "pi_low": float(np.clip(pi_low, low, high)),
        "pi_high": float(np.clip(pi_high, low, high)),
    }


def describe_cells(
    runs: pd.DataFrame,
    metrics: Sequence[str],
    confidence: float = 0.95,
    prediction_level: float = PREDICTION_LEVEL,
    epochs: int | None = None,
) -> pd.DataFrame:
    """Describe each cell and metric over its successful runs, long format.

    Runs whose status is not ``ok`` are counted in ``n_failed`` /
    ``n_diverged`` and never averaged in.

    ``ci_low`` / ``ci_high`` bound the mean at ``confidence``: t-based unless
    the sample is clearly non-normal, which we take to mean at least 8 values
    and a Shapiro-Wilk p < 0.05; then it is a BCa bootstrap interval (9999
    resamples, seed :data:`BOOTSTRAP_SEED`, percentile interval where BCa is
    undefined). ``ci_method`` says which was used: ``"t"``, ``"bootstrap"``,
    or ``"none"`` when n < 2 and no interval exists. ``pi_low`` / ``pi_high``
    are the :func:`prediction_interval` for one new run at
    ``prediction_level``. A sample without spread gets ``[mean, mean]``.

    Both intervals are clipped to the range the metric can take
    (:func:`regbench.measures.metric_range`; epoch counts between 1 and
    ``epochs``): a t interval assumes values on the whole real line, so near
    a bound (an accuracy near 1, early stopping near the last epoch) it
    reaches values no run can have. Clipping only removes impossible values,
    so the interval still covers what it covered.
    """
    _require_columns(runs, [*CELL_KEYS, "status", *metrics])
    _check_probability("confidence", confidence)
    _check_probability("prediction_level", prediction_level)
    rows = []
    for key, cell in runs.groupby(list(CELL_KEYS), sort=True):
        ok = cell[cell["status"] == "ok"]
        for metric in metrics:
            values = ok[metric].dropna().to_numpy(dtype=float)
            description = _describe_values(
                values, confidence, prediction_level, metric_range(metric, epochs)
            )
            rows.append(
                {
                    **dict(zip(CELL_KEYS, key, strict=True)),
                    "metric": metric,
                    "n_diverged": int((cell["status"] == "diverged").sum()),
                    "n_failed": int((~cell["status"].isin(["ok", "diverged"])).sum()),
                    **description,
                }
            )
    columns = [*CELL_KEYS, "metric", "n", "n_diverged", "n_failed", "mean", "std", "median"]
    intervals = ["confidence", "ci_low", "ci_high", "ci_method"]
    predictions = ["prediction_level", "pi_low", "pi_high"]
    return pd.DataFrame(rows, columns=[*columns, *intervals, *predictions])


def sample_sd(values: np.ndarray) -> float:
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


def wilcoxon_min_pairs(alpha: float) -> int:
    """Return the fewest pairs with which the exact two-sided Wilcoxon test can reach p < alpha.

    With n pairs the smallest attainable two-sided p-value is 2 / 2**n.
    """
    n = 2
    while 2.0 / 2.0**n >= alpha:
        n += 1
    return n


def paired_t_power(effect_size: float, n_pairs: int, alpha: float) -> float:
    """Return the power of a two-sided paired t-test at ``alpha`` for Cohen's d_z ``effect_size``.

    The statistic follows a noncentral t with ``n_pairs - 1`` degrees of
    freedom and noncentrality ``d_z * sqrt(n_pairs)``; the power is the mass
    beyond either critical value. Both tails are computed as upper tails (the
    lower one at minus the noncentrality, by symmetry): scipy's ``nct.cdf``
    far in the lower tail returns NaN for large noncentralities, and so does
    statsmodels' ``TTestPower``, which uses it (d_z 7 to 8 with 2 pairs).
    """
    if n_pairs < 2:
        raise ValueError(f"a paired t-test needs at least 2 pairs, got {n_pairs}")
    if math.isinf(effect_size):
        return 1.0
    df = n_pairs - 1
    critical = float(sps.t.isf(alpha / 2.0, df))
    noncentrality = abs(effect_size) * math.sqrt(n_pairs)
    power = float(
        sps.nct.sf(critical, df, noncentrality) + sps.nct.sf(critical, df, -noncentrality)
    )
    if not math.isfinite(power):
        raise ArithmeticError(f"no power for d_z {effect_size}, {n_pairs} pairs, alpha {alpha}")
    return min(1.0, max(0.0, power))


def pairs_needed(effect_size: float, alpha: float, power: float, cap: int = SEED_CAP) -> int | None:
    """Return the fewest pairs (at least 2) with which a paired t-test reaches ``power``.

    For Cohen's d_z ``effect_size`` (``inf`` for a constant nonzero shift) at
    two-sided ``alpha``. None when more than ``cap`` pairs would be needed,
    which includes a zero effect. Power grows with the pairs, so we bisect.
    """
    if not effect_size > 0.0 or paired_t_power(effect_size, cap, alpha) < power:
        return None
    too_few, enough = 1, cap
    while enough - too_few > 1:
        middle = (too_few + enough) // 2
        if paired_t_power(effect_size, middle, alpha) >= power:
            enough = middle
        else:
            too_few = middle
    return enough


@functools.lru_cache(maxsize=4096)
def detectable_effect(n_pairs: int, alpha: float, power: float) -> float:
    """Return the smallest Cohen's d_z a two-sided paired t-test detects with ``n_pairs``.

    The d_z at which :func:`paired_t_power` equals ``power``, found by
    Brent's method; it needs ``power > alpha`` (at d_z 0 the power is alpha).
    """
    if not power > alpha:
        raise ValueError(f"power ({power}) must exceed alpha ({alpha})")
    high = 1.0
    while paired_t_power(high, n_pairs, alpha) < power:
        high *= 2.0
    root = optimize.brentq(
        lambda d: paired_t_power(d, n_pairs, alpha) - power, 0.0, high, xtol=1e-12, rtol=1e-12
    )
    return float(root)


def _auto_test(diffs: np.ndarray, alpha: float) -> str:
    """Paired t for few pairs unless their differences are clearly non-normal, else Wilcoxon.

    Never a Wilcoxon test that cannot reach ``alpha`` with this many pairs (with 5
    pairs its smallest p is 0.0625): that would decide "inconclusive" before
    looking at the differences, however far from zero they all lie.
    """
    if len(diffs) >= AUTO_T_BELOW:
        return "wilcoxon"
    if len(diffs) >= wilcoxon_min_pairs(alpha) and np.ptp(diffs) > 0.0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if sps.shapiro(diffs).pvalue < NORMALITY_ALPHA:
                return "wilcoxon"
    return "paired_t"


def _paired_test(diffs: np.ndarray, test: str, alpha: float) -> tuple[str, float, float]:
    """Return (test used, statistic, two-sided p-value) for paired differences, n >= 2."""
    if np.all(diffs == 0.0):
        # Every sign flip of all-zero differences gives the same statistic, so p = 1 exactly.
        return "identical", 0.0, 1.0
    if test == "auto":
        test = _auto_test(diffs, alpha)
    if test == "paired_t" and np.ptp(diffs) > 0.0:
        result = sps.ttest_1samp(diffs, 0.0)
        return "paired_t", float(result.statistic), float(result.pvalue)
    with warnings.catch_warnings():
        # Tiny samples and zero differences make scipy warn about its approximation.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sps.wilcoxon(diffs)
    return "wilcoxon", float(result.statistic), float(result.pvalue)


def _paired_differences(baseline_values: np.ndarray, regularized_values: np.ndarray) -> np.ndarray:
    """Return regularized - baseline, with differences equal up to rounding made exactly equal.

    A constant shift computed in floating point varies in its last bits; it
    must count as having no spread rather than a spurious tiny one.
    """
    diffs: np.ndarray = regularized_values - baseline_values
    n = len(diffs)
    if n:
        scale = max(
            1.0, float(np.max(np.abs(baseline_values))), float(np.max(np.abs(regularized_values)))
        )
        tolerance = 64 * np.finfo(float).eps * scale
        if np.ptp(diffs) <= tolerance:
            mean = float(np.mean(diffs))
            diffs = np.full(n, 0.0 if abs(mean) <= tolerance else mean)
    return diffs


def _compare_pair(
    baseline_values: np.ndarray,
    regularized_values: np.ndarray,
    higher: bool,
    confidence: float,
    alpha: float,
    test: str,
) -> dict[str, Any]:
    """Compute the paired statistics of one regularizer against the baseline on one metric."""
    nan = float("nan")
    diffs = _paired_differences(baseline_values, regularized_values)
    n = len(diffs)
    row: dict[str, Any] = {
        "n_pairs": n,
        "mean_baseline": float(np.mean(baseline_values)) if n else nan,
        "mean_regularized": float(np.mean(regularized_values)) if n else nan,
        "mean_diff": float(np.mean(diffs)) if n else nan,
        "sd_diff": sample_sd(diffs),
        "max_abs_diff": float(np.max(np.abs(diffs))) if n else nan,
        "test": "none",
        "statistic": nan,
        "p_value": nan,
        "cohen_dz": nan,
        "prob_superiority": nan,
    }
    row["diff_ci_low"], row["diff_ci_high"] = mean_ci(diffs, confidence)
    if n:
        better = diffs > 0.0 if higher else diffs < 0.0
        row["prob_superiority"] = (float(np.sum(better)) + 0.5 * float(np.sum(diffs == 0.0))) / n
    if n >= 2:
        row["test"], row["statistic"], row["p_value"] = _paired_test(diffs, test, alpha)
        if row["sd_diff"] > 0.0:
            row["cohen_dz"] = row["mean_diff"] / row["sd_diff"]
    return row


def _check_comparison(
    runs: pd.DataFrame,
    metrics: Sequence[str],
    probabilities: Mapping[str, float],
    test: str,
) -> None:
    """Raise one clear error for a runs table or setting that cannot be compared."""
    _require_columns(runs, [*_RUN_KEYS, *metrics])
    for metric in metrics:
        higher_is_better(metric)
    for name, value in probabilities.items():
        _check_probability(name, value)
    if test not in ("auto", *_TEST_LABELS):
        raise ValueError(f"test must be one of auto, {', '.join(_TEST_LABELS)}, got {test!r}")
    run_keys = ["dataset", "model", "regularizer", "seed"]
    duplicated = runs[runs.duplicated(run_keys, keep=False)]
    if len(duplicated):
        first = duplicated.iloc[0]
        raise ValueError(
            f"the runs table has {len(duplicated)} rows sharing a run key, e.g. "
            + ", ".join(f"{key}={first[key]!r}" for key in run_keys)
            + "; expected one row per run"
        )


#: The columns of the ``pairs`` table :func:`compare_pairs` takes: what to compare with what.
PAIR_COLUMNS = ("dataset", "model", "baseline", "regularizer", "metric")


def _baseline_pairs(runs: pd.DataFrame, baseline: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Every regularizer against the baseline, per dataset x model and metric."""
    rows = [
        (dataset, model, baseline, regularizer, metric)
        for (dataset, model), group in runs.groupby(["dataset", "model"], sort=True)
        for regularizer in sorted(set(group["regularizer"]) - {baseline})
        for metric in metrics
    ]
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS))


def _paired_statistics(
    runs: pd.DataFrame,
    pairs: pd.DataFrame,
    settings: tuple[float, float, str],
    declared: Mapping[str, float],
    test_sizes: Mapping[str, int],
) -> pd.DataFrame:
    """Pair each row's regularizer's successful runs with its baseline's by seed; compare them.

    ``settings`` is (confidence, alpha, test). Each row also gets its smallest
    effect of interest and the two one-sided tests against it, whether both
    cells sit at the metric's bound, for a gap the paired difference of its
    test side, and how many of its pairs have a run that did not converge.
    """
    confidence, alpha, test = settings
    ok = runs[runs["status"] == "ok"]
    cells = {key: cell.set_index("seed") for key, cell in ok.groupby(list(CELL_KEYS), sort=False)}
    empty = ok.iloc[0:0].set_index("seed")
    rows = []
    for pair in pairs.itertuples(index=False):
        metric = str(pair.metric)
        both = (
            cells.get((pair.dataset, pair.model, pair.baseline), empty),
            cells.get((pair.dataset, pair.model, pair.regularizer), empty),
        )
        matched, bounded = _matched(both, metric, set(ok.columns))
        statistics = _compare_pair(
            matched["baseline"].to_numpy(dtype=float),
            matched["regularized"].to_numpy(dtype=float),
            higher_is_better(metric),
            confidence,
            alpha,
            test,
        )
        rows.append(
            {
                **pair._asdict(),
                "higher_is_better": higher_is_better(metric),
                "n_baseline": int(both[0][metric].notna().sum()),
                "n_regularized": int(both[1][metric].notna().sum()),
                "confidence": confidence,
                **statistics,
                **_practical(
                    str(pair.dataset), metric, matched, both, bounded, declared, test_sizes
                ),
                "n_unconverged": _unconverged_pairs(
                    cells,
                    empty,
                    pair.dataset,
                    pair.model,
                    (pair.baseline, pair.regularizer),
                    matched.index,
                ),
            }
        )
    columns_out = COMPARISON_COLUMNS[: COMPARISON_COLUMNS.index("p_value") + 1]
    extra = ["cohen_dz", "prob_superiority", "tost_p_lower", "tost_p_upper", "smallest_effect"]
    extra += ["smallest_effect_source", "saturated", "test_part_diff", "_test_part_effect"]
    extra += ["n_unconverged"]
    return pd.DataFrame(rows, columns=[*columns_out, *extra])


def _matched(
    both: tuple[pd.DataFrame, pd.DataFrame], metric: str, available: set[str]
) -> tuple[pd.DataFrame, str]:
    """The seeds where both cells have ``metric``: its values, and for a gap its test side's.

    Also returns the column whose bound says whether the cells are saturated: the
    gap's test side where the runs have it, else the metric itself.
    """
    part = TEST_PARTS.get(metric, metric)
    bounded = part if metric in TEST_PARTS and part in available else metric
    matched = pd.concat(
        {
            "baseline": both[0][metric].dropna(),
            "regularized": both[1][metric].dropna(),
            "baseline_part": both[0][bounded],
            "regularized_part": both[1][bounded],
        },
        axis=1,
        join="inner",
    ).sort_index()
    return matched.dropna(subset=["baseline", "regularized"]), bounded


def _practical(
    dataset: str,
    metric: str,
    matched: pd.DataFrame,
    both: tuple[pd.DataFrame, pd.DataFrame],
    bounded: str,
    declared: Mapping[str, float],
    test_sizes: Mapping[str, int],
) -> dict[str, Any]:
    """A comparison's smallest effect, its two one-sided tests, saturation and gap side."""
    margin = _smallest_effect(metric, dataset, declared, test_sizes)
    diffs = _paired_differences(
        matched["baseline"].to_numpy(dtype=float), matched["regularized"].to_numpy(dtype=float)
    )
    lower, upper = tost_paired(diffs, margin)
    has_part = bounded != metric
    return {
        "tost_p_lower": lower,
        "tost_p_upper": upper,
        "smallest_effect": margin,
        "smallest_effect_source": (
            "declared" if metric in declared else ("default" if math.isfinite(margin) else "none")
        ),
        "saturated": len(matched) > 0
        and all(_at_bound(cell[bounded].dropna().to_numpy(dtype=float), bounded) for cell in both),
        "test_part_diff": (
            float((matched["regularized_part"] - matched["baseline_part"]).mean())
            if has_part and len(matched)
            else float("nan")
        ),
        # For reading a gap (see _verdict); not a column of the result.
        "_test_part_effect": (
            _smallest_effect(TEST_PARTS[metric], dataset, declared, test_sizes)
            if metric in TEST_PARTS
            else float("nan")
        ),
    }


def _unconverged_pairs(
    cells: Mapping[Any, pd.DataFrame],
    empty: pd.DataFrame,
    dataset: Any,
    model: Any,
    regularizers: tuple[Any, Any],
    seeds: pd.Index,
) -> int:
    """How many of the compared seed pairs have a run that did not converge."""
    unconverged = pd.Series(False, index=seeds)
    for regularizer in regularizers:
        cell = cells.get((dataset, model, regularizer), empty)
        if CONVERGED in cell.columns:
            converged = cell[CONVERGED].reindex(seeds).fillna(True).astype(bool)
            unconverged |= ~converged
    return int(unconverged.sum())


def _adjust_for_multiplicity(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Add Holm-adjusted p-values over each dataset x model x metric family, and its size."""
    table["family_size"] = 0
    table["p_holm"] = float("nan")
    for _, family in table.groupby(["dataset", "model", "metric"], sort=False):
        tested = family["p_value"].notna()
        table.loc[family.index, "family_size"] = int(tested.sum())
        if tested.any():
            adjusted = multipletests(family.loc[tested, "p_value"].to_numpy(), method="holm")[1]
            table.loc[family.index[tested.to_numpy()], "p_holm"] = adjusted
    table["alpha"] = alpha
    table["significant"] = (table["p_holm"] < alpha).astype(bool)
    return table


def _seeds_needed(row: Any, power: float) -> int | None:
    """Return the pairs needed to detect a row's observed difference, None beyond the cap."""
    if row.mean_diff == 0.0:
        return None
    effect = abs(row.mean_diff) / row.sd_diff if row.sd_diff > 0.0 else math.inf
    needed = pairs_needed(effect, row.power_alpha, power)
    if needed is not None and row.test == "wilcoxon":
        needed = max(needed, wilcoxon_min_pairs(row.power_alpha))
    return needed if needed is not None and needed <= SEED_CAP else None


def _power_columns(table: pd.DataFrame, power: float) -> pd.DataFrame:
    """Add the detectable difference and the seeds needed at the level Holm demands."""
    table["power"] = power
    # Holm's adjusted p is at most m times the raw p, so p < alpha / m is significant
    # whatever the family's other p-values are: the level that guarantees a verdict.
    table["power_alpha"] = table["alpha"] / table["family_size"].clip(lower=1)
    detectable: list[float] = []
    needed: list[int | None] = []
    beyond: list[bool] = []
    for row in table.itertuples(index=False):
        if row.n_pairs < 2:
            detectable.append(float("nan"))
            needed.append(None)
            beyond.append(False)
            continue
        detectable.append(detectable_effect(row.n_pairs, row.power_alpha, power) * row.sd_diff)
        needed.append(_seeds_needed(row, power))
        beyond.append(needed[-1] is None)
    table["min_detectable_diff"] = detectable
    table["seeds_needed"] = pd.array(needed, dtype="Int64")
    table["seed_cap"] = SEED_CAP
    table["beyond_seed_cap"] = beyond
    return table


def _resolution_columns(table: pd.DataFrame, test_sizes: Mapping[str, int]) -> pd.DataFrame:
    """Express differences of test-set shares in test examples (1 / n_test each)."""
    shares = table["metric"].isin(list(TEST_SHARE_METRICS))
    n_test = table["dataset"].map(lambda d: test_sizes.get(d, float("nan"))).astype(float)
    table["one_example"] = (1.0 / n_test).where(shares)
    table["diff_in_examples"] = table["mean_diff"] / table["one_example"]
    table["max_diff_in_examples"] = table["max_abs_diff"] / table["one_example"]
    # Accuracy differences are whole examples / n_test, so the ratio is computed with a
    # rounding-error allowance: a mean of exactly one example must count as within it.
    within = table["diff_in_examples"].abs() <= 1.0 + 1e-9
    table["within_one_example"] = within & table["diff_in_examples"].notna()
    return table


def default_smallest_effect(metric: str, n_test: float | None = None) -> float:
    """Return the smallest difference of interest of ``metric`` when a study declares none.

    :data:`SMALLEST_EFFECT_POINTS` of a proportion, or for a share of the test
    set :data:`SMALLEST_EFFECT_EXAMPLES` test examples (of ``n_test``) where
    that is larger; :data:`SMALLEST_EFFECT_LOSS` nats of a loss; NaN for other
    metrics (epochs, sizes), which then get no practical-size judgement.
    """
    if metric in PROPORTION_METRICS:
        examples = 0.0
        if metric in TEST_SHARE_METRICS and n_test is not None and n_test > 0:
            examples = SMALLEST_EFFECT_EXAMPLES / float(n_test)
        return max(SMALLEST_EFFECT_POINTS, examples)
    if metric in LOSS_METRICS:
        return SMALLEST_EFFECT_LOSS
    return float("nan")


def tost_paired(diffs: np.ndarray, margin: float) -> tuple[float, float]:
    """Return the two one-sided paired t-tests' p-values against ``-margin`` and ``+margin``.

    ``(p_lower, p_upper)``: ``p_lower`` tests H0 mean <= -margin against
    mean > -margin (``t.sf((mean + margin) / se, n - 1)``), ``p_upper`` H0
    mean >= margin against mean < margin (``t.cdf((mean - margin) / se, n - 1)``),
    se = sd / sqrt(n). The mean difference lies within +-margin at level alpha
    when both are below alpha (Schuirmann's TOST; its p-value is the larger).
    Differences without spread give 0 for a bound their mean lies strictly
    inside of and 1 otherwise; NaNs below two pairs or without a margin.
    """
    n = len(diffs)
    if n < 2 or not margin > 0.0:
        return float("nan"), float("nan")
    mean, sd = float(np.mean(diffs)), sample_sd(diffs)
    if sd == 0.0:
        return (0.0 if mean > -margin else 1.0), (0.0 if mean < margin else 1.0)
    se = sd / math.sqrt(n)
    p_lower = float(sps.t.sf((mean + margin) / se, n - 1))
    p_upper = float(sps.t.cdf((mean - margin) / se, n - 1))
    return p_lower, p_upper


def driving_seed(diffs: np.ndarray, smallest_effect: float = 0.0) -> int | None:
    """Return the position of the one paired difference that drives the mean, or None.

    The difference farthest from the mean of the others is the candidate; it
    drives the mean when it lies outside the :data:`DRIVING_SEED_LEVEL`
    prediction interval of the others (:func:`prediction_interval`, which
    needs three of them with some spread, or equal others) and at least
    ``smallest_effect`` from their mean, so a tiny departure from identical
    differences is not named.
    """
    n = len(diffs)
    if n < 4:
        return None
    far = [abs(float(diffs[i]) - float(np.mean(np.delete(diffs, i)))) for i in range(n)]
    index = int(np.argmax(far))
    others = np.delete(diffs, index)
    if far[index] < smallest_effect or far[index] == 0.0:
        return None
    low, high = prediction_interval(others, DRIVING_SEED_LEVEL)
    return index if not low <= float(diffs[index]) <= high else None


def _at_bound(values: np.ndarray, metric: str) -> bool:
    """Whether every value sits at the same finite bound of ``metric``'s range."""
    if not len(values):
        return False
    return any(math.isfinite(b) and bool(np.all(values == b)) for b in metric_range(metric))


def saturated_cells(summary: pd.DataFrame) -> pd.DataFrame:
    """The cells of ``summary`` whose every successful run sits at the metric's bound.

    One row per such cell and metric (``dataset, model, regularizer, metric,
    n, bound``): its mean equals a finite bound of the metric's range and its
    runs do not vary, as 100% test accuracy on every seed. A comparison of two
    such cells cannot tell them apart on this test set, however many seeds.
    """
    _require_columns(summary, [*CELL_KEYS, "metric", "n", "mean", "std"], "the summary table")
    rows = []
    for row in summary.itertuples(index=False):
        if int(row.n) < 1 or not (row.std == 0.0 or int(row.n) == 1):
            continue
        for bound in metric_range(str(row.metric)):
            if math.isfinite(bound) and float(row.mean) == bound:
                rows.append(
                    {
                        **{key: getattr(row, key) for key in (*CELL_KEYS, "metric")},
                        "n": int(row.n),
                        "bound": bound,
                    }
                )
    return pd.DataFrame(rows, columns=[*CELL_KEYS, "metric", "n", "bound"])


def _smallest_effect(
    metric: str, dataset: str, declared: Mapping[str, float], test_sizes: Mapping[str, int]
) -> float:
    """A metric's declared smallest effect of interest, else its default for the dataset."""
    if metric in declared:
        return float(declared[metric])
    return default_smallest_effect(metric, test_sizes.get(dataset))


def _equivalence_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Add the practical-size judgement, the TOST p-value and its Holm adjustment per family."""

    size = table["mean_diff"].abs()
    known = table["smallest_effect"].notna() & table["mean_diff"].notna()
    practical = np.where(size >= table["smallest_effect"], "relevant", "negligible")
    table["practical"] = pd.Series(practical, index=table.index).where(known, "")
    table["tost_p"] = table[["tost_p_lower", "tost_p_upper"]].max(axis=1, skipna=False)
    table["tost_p_holm"] = float("nan")
    for _, family in table.groupby(["dataset", "model", "metric"], sort=False):
        tested = family["tost_p"].notna()
        if tested.any():
            adjusted = multipletests(family.loc[tested, "tost_p"].to_numpy(), method="holm")[1]
            table.loc[family.index[tested.to_numpy()], "tost_p_holm"] = adjusted
    table["equivalent"] = (table["tost_p_holm"] < table["alpha"]).astype(bool)
    return table


def _verdict(row: pd.Series) -> str:
    """One comparison's verdict, from :data:`VERDICTS` (see :func:`compare_to_baseline`)."""
    if row["n_pairs"] < 2:
        return NOT_COMPARABLE
    # The bound comes first: however long the runs trained, this test set cannot tell them apart.
    if row["saturated"]:
        return "saturated"
    if row["n_unconverged"] > 0:
        return UNDERTRAINED
    if row["significant"] and row["mean_diff"] != 0.0:
        if row["practical"] == "negligible":
            return "negligible"
        better = (row["mean_diff"] > 0.0) == row["higher_is_better"]
        if better and row["metric"] in TEST_PARTS:
            # A smaller gap is less overfitting only if the test side did not get worse.
            part = TEST_PARTS[row["metric"]]
            worse_by = -row["test_part_diff"] if HIGHER_IS_BETTER[part] else row["test_part_diff"]
            threshold = row["_test_part_effect"]
            if worse_by > 0.0 and not worse_by < (threshold if math.isfinite(threshold) else 0.0):
                return "underfitting"
        return "better" if better else "worse"
    return "equivalent" if row["equivalent"] else "inconclusive"


def compare_to_baseline(
    runs: pd.DataFrame,
    baseline: str,
    metrics: Sequence[str],
    confidence: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
    test: Literal["auto", "wilcoxon", "paired_t"] = "auto",
    test_sizes: Mapping[str, int] | None = None,
    smallest_effects: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Compare every regularizer with ``baseline`` on seed-paired runs, one row per metric.

    One row per dataset x model x non-baseline regularizer x metric, with the
    columns :data:`COMPARISON_COLUMNS`, each described there.
    """
    probabilities = {"confidence": confidence, "alpha": alpha, "power": power}
    _check_comparison(runs, metrics, probabilities, test)
    regularizers = set(runs["regularizer"])
    if len(runs) and baseline not in regularizers:
        known = ", ".join(sorted(map(str, regularizers)))
        raise ValueError(f"baseline {baseline!r} is not a regularizer in the runs table: {known}")
    pairs = _baseline_pairs(runs, baseline, metrics)
    return _compare(runs, pairs, confidence, alpha, power, test, test_sizes, smallest_effects)


def compare_pairs(
    runs: pd.DataFrame,
    pairs: pd.DataFrame,
    confidence: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
    test: Literal["auto", "wilcoxon", "paired_t"] = "auto",
    test_sizes: Mapping[str, int] | None = None,
    smallest_effects: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Compare any regularizers of the runs table pairwise, as :func:`compare_to_baseline` does.

    ``pairs`` has the columns :data:`PAIR_COLUMNS`, one row per comparison:
    ``regularizer`` against ``baseline`` (the reference of that row, which
    need not be the study's) on ``metric`` in ``dataset`` x ``model``. The
    result has :data:`COMPARISON_COLUMNS`, one row per pair in order, and
    every column means what it means there; Holm's correction runs over the
    rows of each dataset x model x metric, whatever their references.
    """
    metrics = sorted(set(pairs["metric"]))
    _check_comparison(
        runs, metrics, {"confidence": confidence, "alpha": alpha, "power": power}, test
    )
    _require_columns(pairs, PAIR_COLUMNS, "the pairs table")
    return _compare(runs, pairs, confidence, alpha, power, test, test_sizes, smallest_effects)


def _compare(
    runs: pd.DataFrame,
    pairs: pd.DataFrame,
    confidence: float,
    alpha: float,
    power: float,
    test: str,
    test_sizes: Mapping[str, int] | None,
    smallest_effects: Mapping[str, float] | None,
) -> pd.DataFrame:
    table = _paired_statistics(
        runs,
        pairs.loc[:, list(PAIR_COLUMNS)],
        (confidence, alpha, test),
        smallest_effects or {},
        test_sizes or {},
    )
    table = _adjust_for_multiplicity(table, alpha)
    table = _power_columns(table, power)
    table = _resolution_columns(table, test_sizes or {})
    table = _equivalence_columns(table)
    table["verdict"] = (
        table.apply(_verdict, axis=1) if len(table) else pd.Series(dtype=object)
    ).astype(object)
    return table.loc[:, list(COMPARISON_COLUMNS)].reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class RankingResult:
    """Average ranks of regularizers across datasets with the Friedman / Nemenyi analysis.

    ``ranks`` has one row per regularizer (``regularizer``, ``average_rank``),
    best first, and is empty with fewer than :data:`RANKING_MIN_DATASETS`
    complete datasets; ``dataset_ranks`` is the dataset x regularizer table of
    ranks it averages. ``statistic`` / ``p_value`` are Friedman's chi-square
    test, ``iman_davenport_f`` / ``iman_davenport_p`` its F form
    (:func:`iman_davenport`), ``critical_difference`` the Nemenyi CD at
    ``alpha``. What the test could detect: ``max_rank_difference`` (best
    minus worst average rank), whether the CD is reachable at all
    (``cd_reachable``: CD <= k - 1, the largest possible difference) and
    ``datasets_needed`` for the largest observed difference to reach the CD.
    Statistics are NaN and ``note`` says why when they cannot be computed;
    ``note`` also names datasets or regularizers left out.
    """

    metric: str
    model: str
    ranks: pd.DataFrame
    dataset_ranks: pd.DataFrame
    statistic: float
    p_value: float
    iman_davenport_f: float
    iman_davenport_p: float
    critical_difference: float
    max_rank_difference: float
    cd_reachable: bool
    datasets_needed: float
    n_datasets: int
    n_regularizers: int
    alpha: float
    note: str | None


def _studentized_q(n_regularizers: int, alpha: float) -> float:
    """Return Demšar's q_alpha: the studentized range quantile over sqrt(2)."""
    return float(sps.studentized_range.ppf(1.0 - alpha, n_regularizers, np.inf) / math.sqrt(2.0))


def nemenyi_critical_difference(n_regularizers: int, n_datasets: int, alpha: float) -> float:
    """Return Demšar's (2006) Nemenyi critical difference of average ranks."""
    k = n_regularizers
    return _studentized_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n_datasets))


def iman_davenport(chi2: float, n_datasets: int, n_regularizers: int) -> tuple[float, float]:
    """Return Iman and Davenport's F and its p-value from Friedman's chi-square.

    ``F = (N - 1) chi2 / (N (k - 1) - chi2)`` with k - 1 and (k - 1)(N - 1)
    degrees of freedom (Demšar 2006, eq. 2): less conservative than the
    chi-square, which Demšar recommends it over. Rankings that agree on every
    dataset make the denominator zero: F is infinite and p is 0.
    """
    n, k = n_datasets, n_regularizers
    denominator = n * (k - 1) - chi2
    if denominator <= 0.0:
        return math.inf, 0.0
    f = (n - 1) * chi2 / denominator
    return float(f), float(sps.f.sf(f, k - 1, (k - 1) * (n - 1)))


def _complete_means(runs: pd.DataFrame, metric: str, model: str) -> tuple[pd.DataFrame, list[str]]:
    """Return the dataset x regularizer means over successful runs that form complete blocks.

    Regularizers without any successful run are left out, then datasets
    lacking a mean for any remaining one; the notes name both.
    """
    of_model = runs[runs["model"] == model]
    ok = of_model[of_model["status"] == "ok"]
    means = (
        ok.groupby(["dataset", "regularizer"])[metric]
        .mean()
        .unstack("regularizer")
        .reindex(
            index=sorted(set(of_model["dataset"])), columns=sorted(set(of_model["regularizer"]))
        )
    )
    notes = []
    empty = [r for r in means.columns if means[r].isna().all()]
    if empty:
        notes.append(f"left out for lack of successful runs: {', '.join(empty)}")
    means = means.drop(columns=empty)
    if means.shape[1] == 0:
        means = means.iloc[0:0]
    incomplete = means.index[means.isna().any(axis=1)].tolist()
    if incomplete:
        notes.append(f"datasets left out as incomplete: {', '.join(map(str, incomplete))}")
    return means.dropna(axis=0, how="any"), notes


def _average_ranks(means: pd.DataFrame, higher: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank regularizers within each dataset (1 = best, ties averaged) and average the ranks."""
    dataset_ranks = means.rank(axis=1, method="average", ascending=not higher)
    dataset_ranks.columns.name = "regularizer"
    ranks = (
        dataset_ranks.mean(axis=0)
        .rename("average_rank")
        .rename_axis("regularizer")
        .reset_index()
        .sort_values(["average_rank", "regularizer"], kind="stable")
        .reset_index(drop=True)
    )
    if len(means) < RANKING_MIN_DATASETS:
        ranks = pd.DataFrame({"regularizer": pd.Series(dtype=object), "average_rank": []})
    return dataset_ranks, ranks


def _rank_tests(
    means: pd.DataFrame, ranks: pd.DataFrame, alpha: float, notes: list[str]
) -> dict[str, Any]:
    """Friedman and Iman-Davenport tests, the Nemenyi CD and what it lets the ranks show."""
    n_datasets, k = means.shape
    nan = float("nan")
    tests: dict[str, Any] = dict.fromkeys(
        ("statistic", "p_value", "iman_davenport_f", "iman_davenport_p", "critical_difference"),
        nan,
    )
    tests.update(max_rank_difference=nan, cd_reachable=False, datasets_needed=nan)
    if n_datasets < RANKING_MIN_DATASETS:
        notes.append(
            f"ranking across datasets needs at least {RANKING_MIN_DATASETS} datasets with "
            f"every regularizer; got {n_datasets}"
        )
        return tests
    spread = float(ranks["average_rank"].max() - ranks["average_rank"].min())
    tests["max_rank_difference"] = spread
    if k < 3:
        notes.append(
            f"Friedman test and Nemenyi critical difference need at least 3 regularizers; got {k}"
        )
    elif bool((means.nunique(axis=1) == 1).all()):
        notes.append("all regularizers tie on every dataset, so ranks cannot differ")
    else:
        result = sps.friedmanchisquare(*means.to_numpy(dtype=float).T)
        tests["statistic"], tests["p_value"] = float(result.statistic), float(result.pvalue)
        f, p = iman_davenport(tests["statistic"], n_datasets, k)
        tests["iman_davenport_f"], tests["iman_davenport_p"] = f, p
        cd = nemenyi_critical_difference(k, n_datasets, alpha)
        tests["critical_difference"], tests["cd_reachable"] = cd, cd <= k - 1
        if spread > 0.0:
            # The CD shrinks as 1 / sqrt(N): solve CD(N) <= spread for N.
            ratio = _studentized_q(k, alpha) ** 2 * k * (k + 1) / (6.0 * spread**2)
            tests["datasets_needed"] = float(max(n_datasets, math.ceil(ratio - 1e-9)))
    return tests


def rank_regularizers(
    runs: pd.DataFrame, metric: str, model: str, alpha: float = 0.05
) -> RankingResult:
    """Rank the regularizers of ``model`` on each dataset and test whether ranks differ.

    Each dataset ranks the regularizers by their mean over successful seeds,
    rank 1 being best in the metric's direction, ties sharing the average
    rank, over complete blocks only (the Friedman test needs them). Fewer
    than :data:`RANKING_MIN_DATASETS` datasets give no ranking. The Friedman
    statistic is :func:`scipy.stats.friedmanchisquare`'s, which corrects for
    ties (Demšar's formula does not, so it is slightly larger with ties), and
    the Iman-Davenport F is computed from it. The Nemenyi critical difference
    is ``q_alpha * sqrt(k (k + 1) / (6 N))`` with ``q_alpha`` the studentized
    range quantile over sqrt(2) (Demšar 2006). The tests need at least 3
    regularizers.
    """
    _require_columns(runs, [*_RUN_KEYS, metric])
    higher = higher_is_better(metric)
    _check_probability("alpha", alpha)
    models = set(runs["model"])
    if model not in models:
        known = ", ".join(sorted(map(str, models)))
        raise ValueError(f"model {model!r} has no runs in the runs table; it has: {known}")
    means, notes = _complete_means(runs, metric, model)
    dataset_ranks, ranks = _average_ranks(means, higher)
    tests = _rank_tests(means, ranks, alpha, notes)
    return RankingResult(
        metric=metric,
        model=model,
        ranks=ranks,
        dataset_ranks=dataset_ranks,
        n_datasets=int(means.shape[0]),
        n_regularizers=int(means.shape[1]),
        alpha=alpha,
        note="; ".join(notes) if notes else None,
        **tests,
    )


def adequacy_window(epochs: int) -> int:
    """Return how many final epochs training adequacy looks at (never more than ``epochs``)."""
    share = math.ceil(ADEQUACY_WINDOW_FRACTION * epochs)
    return min(epochs, max(ADEQUACY_MIN_WINDOW, share))


def run_still_improving(
    history: pd.DataFrame, best_epoch: float, epochs_run: float, epochs: int
) -> dict[str, bool]:
    """Return whether one run was still improving when its training ended, and why.

    Over the last :func:`adequacy_window` epochs: ``best_late``, its best
    validation epoch lies in them; ``loss_falling``, its training data loss
    (history column ``loss``) fell by more than :data:`ADEQUACY_LOSS_FALL` of
    its value from the window's first epoch to its last while the validation
    data loss (``val_loss``) did not rise, so more epochs would have helped
    (a falling training loss with a rising validation loss is overfitting,
    which more epochs would not cure). ``still_improving`` is either. A run
    that stopped before ``epochs`` (early stopping) is not still improving:
    its stop says its monitored quantity had stopped improving.
    """
    window = adequacy_window(epochs)
    if not epochs_run >= epochs or len(history) < window:
        return {"best_late": False, "loss_falling": False, "still_improving": False}
    best_late = bool(best_epoch > epochs - window)
    loss = history["loss"].to_numpy(dtype=float)[-window:]
    val_loss = history["val_loss"].to_numpy(dtype=float)[-window:]
    fell = bool(loss[0] - loss[-1] > ADEQUACY_LOSS_FALL * abs(loss[0]))
    loss_falling = fell and bool(val_loss[-1] <= val_loss[0])
    return {
        "best_late": best_late,
        "loss_falling": loss_falling,
        "still_improving": best_late or loss_falling,
    }


def run_converged(
    protocol: str,
    stopped_by: Any,
    history: pd.DataFrame | None,
    best_epoch: float,
    epochs_run: float,
    epochs: int,
) -> bool:
    """Return whether one successful run converged by the study's training protocol.

    A run converged when a stop rule (the plateau protocol's patience, or an
    early-stopping piece) ended it before its budget: its validation loss had
    stopped improving. Otherwise, under protocol ``plateau`` it did not, and
    under ``fixed`` it converged unless it was still improving at its end
    (:func:`run_still_improving`); a run without a history counts as converged.
    """
    if _stopped(stopped_by, epochs_run, epochs):
        return True
    if protocol == PLATEAU:
        return False
    if history is None:
        return True
    return not run_still_improving(history, best_epoch, epochs_run, epochs)["still_improving"]


def _stopped(stopped_by: Any, epochs_run: float, epochs: int) -> bool:
    """Whether a stop rule ended a run before its budget (runs from before ``stopped_by``
    was recorded: whether it ran fewer epochs than the budget)."""
    return (isinstance(stopped_by, str) and bool(stopped_by)) or epochs_run < epochs


def mark_converged(
    runs: pd.DataFrame,
    histories: Mapping[tuple[str, str, str, int], pd.DataFrame],
    protocol: str,
    epochs: int,
) -> pd.DataFrame:
    """The runs table with its :data:`CONVERGED` column (empty for runs that did not succeed)."""
    _require_columns(runs, [*_RUN_KEYS, "best_epoch", "epochs_run"])
    stopped = runs["stopped_by"] if "stopped_by" in runs.columns else pd.Series(None, runs.index)
    flags: list[bool | None] = []
    for run, stop in zip(runs.itertuples(index=False), stopped, strict=True):
        if run.status != "ok":
            flags.append(None)
            continue
        history = histories.get((run.dataset, run.model, run.regularizer, int(run.seed)))
        flags.append(run_converged(protocol, stop, history, run.best_epoch, run.epochs_run, epochs))
    return runs.assign(**{CONVERGED: pd.Series(flags, index=runs.index, dtype=object)})


def training_adequacy(
    runs: pd.DataFrame,
    histories: Mapping[tuple[str, str, str, int], pd.DataFrame],
    epochs: int,
    protocol: str = FIXED,
) -> pd.DataFrame:
    """Per cell: how many of its runs converged by the training protocol, and why not.

    Per cell, over its successful runs (``histories`` is keyed by dataset,
    model, regularizer, seed): ``n_runs``, ``n_stopped_early`` (ended by a
    stop rule before ``epochs``), ``n_converged`` (:func:`run_converged`),
    and, for runs with a history, how many had a late best epoch
    (``n_best_late``), a still-falling training loss (``n_loss_falling``) and
    either (``n_still_improving``), as :func:`run_still_improving` defines
    them over the last ``window`` epochs. ``converged`` is true when every run
    converged; when one did not, a difference the cell shows may be one of
    training length rather than of regularization, and no comparison resting
    on that run is judged.
    """
    # The aggregation job marks its runs once (runs.csv); a bare runs table is marked here.
    marked = (
        runs if CONVERGED in runs.columns else mark_converged(runs, histories, protocol, epochs)
    )
    rows = []
    for key, cell in marked.groupby(list(CELL_KEYS), sort=True):
        counts = {"n_runs": 0, "n_stopped_early": 0, "n_converged": 0}
        counts |= {"n_best_late": 0, "n_loss_falling": 0, "n_still_improving": 0}
        for run in cell[cell["status"] == "ok"].itertuples(index=False):
            counts["n_runs"] += 1
            counts["n_converged"] += int(bool(getattr(run, CONVERGED)))
            stopped = _stopped(getattr(run, "stopped_by", None), run.epochs_run, epochs)
            counts["n_stopped_early"] += int(stopped)
            history = histories.get((*key, int(run.seed)))
            if history is None:
                continue
            flags = run_still_improving(history, run.best_epoch, run.epochs_run, epochs)
            for flag, value in flags.items():
                counts[f"n_{flag}"] += int(value)
        converged = counts["n_converged"] == counts["n_runs"]
        rows.append(
            {
                **dict(zip(CELL_KEYS, key, strict=True)),
                "protocol": protocol,
                "epochs": epochs,
                "window": adequacy_window(epochs),
                **counts,
                "converged": converged,
            }
        )
    columns = [*CELL_KEYS, "protocol", "epochs", "window", "n_runs", "n_stopped_early"]
    columns += ["n_converged", "n_best_late", "n_loss_falling", "n_still_improving"]
    return pd.DataFrame(rows, columns=[*columns, "converged"])


def compare_to_references(
    summary: pd.DataFrame, references: Sequence[Mapping[str, Any]]
) -> pd.DataFrame:
    """Place published single-run values against their cells' prediction intervals.

    ``references`` holds one mapping per value: ``dataset``, ``model``,
    ``regularizer``, ``metric``, ``value`` and ``source``. A single run of the
    cell falls in its prediction interval (``pi_low`` / ``pi_high`` of
    :func:`describe_cells`) with probability ``prediction_level``, so a value
    inside it is ``"consistent"`` with this study's runs and one outside it
    ``"outside"``; ``"no interval"`` when the cell has fewer than two runs.
    Columns: :data:`REFERENCE_COLUMNS`.
    """
    _require_columns(
        summary,
        [*CELL_KEYS, "metric", "n", "mean", "prediction_level", "pi_low", "pi_high"],
        "the summary table",
    )
    described = summary.set_index([*CELL_KEYS, "metric"])
    rows = []
    for reference in references:
        where = tuple(reference[key] for key in (*CELL_KEYS, "metric"))
        cell = described.loc[where] if where in described.index else None
        row = {key: reference[key] for key in (*CELL_KEYS, "metric", "source")}
        row["reference"] = float(reference["value"])
        for column in ("mean", "prediction_level", "pi_low", "pi_high"):
            row[column] = float("nan") if cell is None else float(cell[column])
        row["n"] = 0 if cell is None else int(cell["n"])
        if not (row["n"] >= 2 and math.isfinite(row["pi_low"])):
            row["verdict"] = "no interval"
        else:
            inside = row["pi_low"] <= row["reference"] <= row["pi_high"]
            row["verdict"] = "consistent" if inside else "outside"
        rows.append(row)
    return pd.DataFrame(rows, columns=list(REFERENCE_COLUMNS))
