"""What each per-run metric measures: its direction, its range, and what a test example is worth.

The config layer validates a study's ``report`` and ``references`` keys against
these names, and the statistics layer compares, bounds and resolves metrics by
them. The module imports nothing from regbench, so every layer may ask it.
"""

from __future__ import annotations

import math

__all__ = [
    "EPOCH_METRICS",
    "HIGHER_IS_BETTER",
    "LOSS_METRICS",
    "PROPORTION_METRICS",
    "REFERENCE_METRICS",
    "TEST_PARTS",
    "TEST_SHARE_METRICS",
    "TUNING_CRITERIA",
    "VALIDATION_METRICS",
    "metric_range",
]

#: Whether a larger value of each metric is the better one: the metrics a study may compare.
#: Losses are the data loss alone (cross-entropy), never the penalized objective.
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

#: Metrics a study may list published values for: every comparable metric, and the
#: objective (data loss + penalties), which is what a notebook's ``model.evaluate`` prints.
REFERENCE_METRICS = (*HIGHER_IS_BETTER, "test_objective")

#: Metrics measured on the validation split alone: what a tuned comparison may choose a
#: sweep's variant by, since no test-set number may influence that choice. The losses are
#: the data loss; the best ones are at the run's best validation epoch.
VALIDATION_METRICS = ("best_val_loss", "best_val_accuracy", "val_loss", "val_accuracy")

#: The validation metrics of the weights that are tested (the last epoch's, or a restored
#: best epoch's): what a tuned comparison picks by, so that the value that picks a
#: variant and the test value reported for it come from the same weights.
TUNING_CRITERIA = ("val_loss", "val_accuracy")

#: Metrics that are shares of the test set's examples (``gap_accuracy`` through its test
#: part), so one test example is worth 1 / n_test of them: exactly for accuracy, as a
#: yardstick for macro-F1 and ROC AUC, which one example moves by a data-dependent amount.
TEST_SHARE_METRICS = frozenset({"test_accuracy", "test_f1_macro", "test_roc_auc", "gap_accuracy"})

#: The test metric each train-test gap is the test side of: a smaller gap is less
#: overfitting only when this metric did not get worse (else the train side fell).
TEST_PARTS = {"gap_accuracy": "test_accuracy", "gap_loss": "test_loss"}

#: Metrics counted in epochs, which lie between 1 and the study's ``training.epochs``.
EPOCH_METRICS = frozenset({"epochs_run", "best_epoch"})

_SHARES = frozenset(
    {
        "test_accuracy",
        "test_f1_macro",
        "test_roc_auc",
        "train_eval_accuracy",
        "train_accuracy",
        "val_accuracy",
        "best_val_accuracy",
        "weight_sparsity",
    }
)
_NON_NEGATIVE = frozenset(
    {
        "test_loss",
        "test_objective",
        "train_eval_loss",
        "train_loss",
        "val_loss",
        "best_val_loss",
        "weight_l1",
        "weight_l2",
        "n_params",
        "train_seconds",
        "job_seconds",
        "max_rss_mb",
    }
)


#: Proportions, whose differences are percentage points (the gap of two shares included).
PROPORTION_METRICS = _SHARES | {"gap_accuracy"}

#: Cross-entropies and their gap, measured in nats.
LOSS_METRICS = frozenset(
    {"test_loss", "train_eval_loss", "train_loss", "val_loss", "best_val_loss", "gap_loss"}
)


def metric_range(metric: str, epochs: int | None = None) -> tuple[float, float]:
    """Return the smallest and largest value ``metric`` can take; infinite where unbounded.

    Shares lie in [0, 1], an accuracy gap in [-1, 1], losses, sizes and times in
    [0, inf), epoch counts in [1, ``epochs``] (``epochs`` None: no upper bound).
    """
    if metric in _SHARES:
        return 0.0, 1.0
    if metric == "gap_accuracy":
        return -1.0, 1.0
    if metric in _NON_NEGATIVE:
        return 0.0, math.inf
    if metric in EPOCH_METRICS:
        return 1.0, math.inf if epochs is None else float(epochs)
    return -math.inf, math.inf
