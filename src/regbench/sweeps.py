"""Statistics of sweep families: the response to strength, and each family at its best.

A sweep family (``Study.families``) is one regularizer declared at several
strengths; each strength is a variant, an ordinary regularizer of the runs
table. This module returns numbers only, as :mod:`regbench.stats` does, and
uses its paired comparisons:

- :func:`dose_response`: per family, dataset x model and metric, each
  variant's mean and confidence interval (from ``summary.csv``), the
  baseline's beside it, the best variant by its mean, and every other
  variant compared with the best on seed-paired runs (Holm over the family's
  comparisons): the strengths that cannot be told apart from the best.
- :func:`select_variants`: per family, dataset x model and seed, the variant
  a validation metric prefers. It reads nothing but that metric, so no
  test-set number can influence a choice.
- :func:`tuned_runs` and :func:`compare_tuned`: the chosen variants' test
  results as one run per seed of each family ("tuned"), compared with the
  baseline and with each other family on the same seeds.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from regbench.stats import (
    CELL_KEYS,
    CONVERGED,
    PAIR_COLUMNS,
    compare_pairs,
    higher_is_better,
)

__all__ = [
    "DOSE_COLUMNS",
    "SELECTION_COLUMNS",
    "TUNED_KEYS",
    "compare_tuned",
    "dose_response",
    "select_variants",
    "selection_counts",
    "strength",
    "tuned_runs",
]

#: A family as ``Study.families`` holds it: ``swept`` keys, ``variants`` by strength, ``values``.
Family = Mapping[str, Any]

#: The columns of :func:`dose_response`, in order.
DOSE_COLUMNS = (
    "family",
    "dataset",
    "model",
    "metric",
    "variant",
    "position",
    "strength",
    "n",
    "mean",
    "ci_low",
    "ci_high",
    "baseline",
    "baseline_mean",
    "baseline_ci_low",
    "baseline_ci_high",
    "best",
    "neighbour",
    "n_pairs",
    "diff_from_best",
    "diff_ci_low",
    "diff_ci_high",
    "p_holm",
    "vs_best",
)

#: The columns that identify one tuned run: a family's choice for one seed of one cell.
TUNED_KEYS = ("dataset", "model", "family", "seed")

#: The columns of :func:`select_variants`, in order.
SELECTION_COLUMNS = (*TUNED_KEYS, "criterion", "criterion_value", "variant", "strength")

_RUN_KEYS = ["dataset", "model", "regularizer", "seed"]


def strength(family: Family, variant: str) -> float:
    """A variant's strength where its family sweeps one key; NaN where it sweeps several."""
    values = family["values"][variant]
    return float(next(iter(values.values()))) if len(values) == 1 else float("nan")


def dose_response(
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    families: Mapping[str, Family],
    baseline: str,
    metrics: Sequence[str],
) -> pd.DataFrame:
    """Each variant of each family against strength, and against the family's best variant.

    One row per family, dataset x model, metric and variant (columns
    :data:`DOSE_COLUMNS`). ``position`` orders the variants by strength;
    ``strength`` is the swept value (NaN where a family sweeps several keys).
    ``n``, ``mean``, ``ci_low`` and ``ci_high`` are the variant's cell in
    ``summary``, ``baseline_*`` the baseline's. ``best`` marks the variant with
    the best mean in the metric's direction (the first by strength on a tie).
    Every other variant is compared with it on seed-paired runs
    (:func:`regbench.stats.compare_pairs`, Holm over the family's variants of
    one dataset x model x metric): ``diff_from_best`` (variant minus best),
    its interval, ``p_holm`` and ``vs_best``, the verdict (one of
    :data:`regbench.stats.VERDICTS`: mostly ``"worse"``, ``"negligible"``,
    ``"equivalent"`` or ``"inconclusive"``, rarely ``"better"`` where pairing
    leaves out seeds; ``"best"`` for the best itself). ``neighbour``: the
    variant is next to the best by strength, in a family that sweeps one key.
    """
    described = summary.set_index([*CELL_KEYS, "metric"])
    rows: list[dict[str, Any]] = []
    for name, family in families.items():
        variants = list(family["variants"])
        of_family = runs[runs["regularizer"].isin(variants)]
        for (dataset, model), _ in of_family.groupby(["dataset", "model"], sort=True):
            for metric in metrics:
                rows += _dose_rows(
                    name, family, (str(dataset), str(model)), metric, described, baseline
                )
    table = pd.DataFrame(rows, columns=[c for c in DOSE_COLUMNS if c not in _VS_BEST])
    return _against_best(runs, table).loc[:, list(DOSE_COLUMNS)]


_VS_BEST = ("n_pairs", "diff_from_best", "diff_ci_low", "diff_ci_high", "p_holm", "vs_best")


def _dose_rows(
    name: str,
    family: Family,
    cell: tuple[str, str],
    metric: str,
    described: pd.DataFrame,
    baseline: str,
) -> list[dict[str, Any]]:
    """One family's variants in one cell on one metric, the best marked."""
    nan = float("nan")

    def cell_of(regularizer: str) -> Mapping[str, Any]:
        key = (*cell, regularizer, metric)
        empty = {"n": 0, "mean": nan, "ci_low": nan, "ci_high": nan}
        return described.loc[key] if key in described.index else empty

    base = cell_of(baseline)
    rows = []
    for position, variant in enumerate(family["variants"]):
        found = cell_of(variant)
        rows.append(
            {
                "family": name,
                "dataset": cell[0],
                "model": cell[1],
                "metric": metric,
                "variant": variant,
                "position": position,
                "strength": strength(family, variant),
                **{column: found[column] for column in ("n", "mean", "ci_low", "ci_high")},
                "baseline": baseline,
                **{f"baseline_{c}": base[c] for c in ("mean", "ci_low", "ci_high")},
            }
        )
    means = pd.Series([float(r["mean"]) for r in rows])
    best = _best_position(means, higher_is_better(metric))
    single = len(family["swept"]) == 1
    for row in rows:
        row["best"] = row["position"] == best
        row["neighbour"] = single and best is not None and abs(row["position"] - best) == 1
    return rows


def _best_position(means: pd.Series, higher: bool) -> int | None:
    """The position of the best finite mean, the first on a tie; None when there is none."""
    finite = means[np.isfinite(means.to_numpy(dtype=float))]
    if finite.empty:
        return None
    target = finite.max() if higher else finite.min()
    return int(finite[finite == target].index[0])


def _against_best(runs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Compare every variant with its family's best, per cell and metric (Holm per family)."""
    found = []
    for family, rows in table.groupby("family", sort=False):
        best = rows[rows["best"].astype(bool)]
        pairs = rows.loc[
            ~rows["best"].astype(bool), ["dataset", "model", "metric", "variant"]
        ].merge(
            best.loc[:, ["dataset", "model", "metric", "variant"]],
            on=["dataset", "model", "metric"],
            suffixes=("", "_best"),
        )
        if pairs.empty:
            continue
        pairs = pairs.rename(columns={"variant_best": "baseline", "variant": "regularizer"})
        variants = set(pairs["baseline"]) | set(pairs["regularizer"])
        compared = compare_pairs(runs[runs["regularizer"].isin(variants)], pairs)
        found.append(compared.assign(family=family))
    columns = ["n_pairs", "mean_diff", "diff_ci_low", "diff_ci_high", "p_holm", "verdict"]
    keys = ["family", "dataset", "model", "metric", "variant"]
    results = (
        pd.concat(found, ignore_index=True).rename(columns={"regularizer": "variant"})
        if found
        else pd.DataFrame(columns=[*keys, *columns])
    )
    merged = table.merge(results.loc[:, [*keys, *columns]], on=keys, how="left")
    merged = merged.rename(columns={"mean_diff": "diff_from_best", "verdict": "vs_best"})
    merged["vs_best"] = merged["vs_best"].astype(object).where(~merged["best"].astype(bool), "best")
    return merged


def select_variants(
    runs: pd.DataFrame, families: Mapping[str, Family], criterion: str
) -> pd.DataFrame:
    """Per family, dataset x model and seed: the variant the validation ``criterion`` prefers.

    Among the family's runs of that seed that succeeded with a finite value,
    the one with the best value in the criterion's direction; on a tie, the
    first by strength. Only the run keys, ``status`` and ``criterion`` are
    read, so no other column (no test metric) can influence a choice. Columns:
    :data:`SELECTION_COLUMNS`; a seed without an eligible run has no row.
    """
    higher = higher_is_better(criterion)
    eligible = runs.loc[runs["status"] == "ok", [*_RUN_KEYS, criterion]]
    eligible = eligible[np.isfinite(eligible[criterion].to_numpy(dtype=float))]
    chosen = []
    for name, family in families.items():
        order = {variant: position for position, variant in enumerate(family["variants"])}
        candidates = eligible[eligible["regularizer"].isin(order)]
        candidates = candidates.assign(
            family=name,
            position=candidates["regularizer"].map(order),
            score=-candidates[criterion] if higher else candidates[criterion],
        )
        best = candidates.sort_values(["score", "position"], kind="stable").groupby(
            ["dataset", "model", "seed"], sort=False
        )
        chosen.append(best.head(1))
    if not chosen:
        return pd.DataFrame(columns=list(SELECTION_COLUMNS))
    table = pd.concat(chosen, ignore_index=True).rename(
        columns={"regularizer": "variant", criterion: "criterion_value"}
    )
    table["criterion"] = criterion
    table["strength"] = [
        strength(families[f], v) for f, v in zip(table["family"], table["variant"], strict=True)
    ]
    order = {name: index for index, name in enumerate(families)}
    table = table.sort_values(
        ["dataset", "model", "family", "seed"],
        key=lambda c: c.map(order) if c.name == "family" else c,
    )
    return table.loc[:, list(SELECTION_COLUMNS)].reset_index(drop=True)


def tuned_runs(
    runs: pd.DataFrame, selections: pd.DataFrame, metrics: Sequence[str]
) -> pd.DataFrame:
    """The chosen variants' results, one row per family, cell and seed (``tuned.csv``).

    ``selections`` is :func:`select_variants`; ``metrics`` are the runs
    table's columns to carry over (the test metrics the comparison judges).
    """
    columns = [*SELECTION_COLUMNS, *metrics]
    if selections.empty:
        return pd.DataFrame(columns=columns)
    results = runs.loc[:, [*_RUN_KEYS, *metrics]].rename(columns={"regularizer": "variant"})
    chosen = selections.merge(results, on=["dataset", "model", "variant", "seed"], how="left")
    return chosen.loc[:, columns]


def compare_tuned(
    runs: pd.DataFrame,
    tuned: pd.DataFrame,
    baseline: str,
    metrics: Sequence[str],
    test_sizes: Mapping[str, int] | None = None,
    smallest_effects: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Each tuned family against the baseline and against each other family, paired by seed.

    The tuned runs (``tuned``, :func:`tuned_runs`) stand in the runs table as
    regularizers named after their families, beside the baseline's runs. Rows
    compare each family with the baseline (``baseline`` is the study's), then
    each later family with each earlier one (``baseline`` is the earlier
    family), with the columns of :data:`regbench.stats.COMPARISON_COLUMNS`;
    Holm's correction runs over all of one dataset x model x metric's rows.
    """
    families = list(dict.fromkeys(tuned["family"]))
    stand_in = tuned.rename(columns={"family": "regularizer"}).assign(status="ok")
    base = runs[runs["regularizer"] == baseline]
    # Whether each run converged travels with it, so that a tuned comparison resting on an
    # unconverged run is withheld as undertrained, as any other comparison is.
    carried = [*_RUN_KEYS, "status", *metrics]
    if CONVERGED in base.columns and CONVERGED in stand_in.columns:
        carried.append(CONVERGED)
    table = pd.concat([base.loc[:, carried], stand_in.loc[:, carried]], ignore_index=True)
    pairs = [
        (dataset, model, reference, family, metric)
        for (dataset, model), _ in tuned.groupby(["dataset", "model"], sort=True)
        for reference, family in [
            *((baseline, f) for f in families),
            *itertools.combinations(families, 2),
        ]
        for metric in metrics
    ]
    return compare_pairs(
        table,
        pd.DataFrame(pairs, columns=list(PAIR_COLUMNS)),
        test_sizes=test_sizes,
        smallest_effects=smallest_effects,
    )


def selection_counts(selections: pd.DataFrame, families: Mapping[str, Family]) -> pd.DataFrame:
    """How often each variant was chosen per family and dataset x model, never-chosen ones too.

    Columns: ``dataset, model, family, variant, position, strength, chosen,
    n_seeds`` (the seeds with a choice).
    """
    rows = []
    for (dataset, model, name), chosen in selections.groupby(
        ["dataset", "model", "family"], sort=False
    ):
        family = families[str(name)]
        counts = chosen["variant"].value_counts()
        for position, variant in enumerate(family["variants"]):
            rows.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "family": name,
                    "variant": variant,
                    "position": position,
                    "strength": strength(family, variant),
                    "chosen": int(counts.get(variant, 0)),
                    "n_seeds": len(chosen),
                }
            )
    columns = ["dataset", "model", "family", "variant", "position", "strength", "chosen", "n_seeds"]
    return pd.DataFrame(rows, columns=columns)
