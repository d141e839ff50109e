"""Per-run metrics from predictions and weights (NumPy and scikit-learn, no TensorFlow)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

__all__ = ["NEAR_ZERO", "classification_metrics", "weight_statistics"]

#: A weight whose magnitude is below this counts as zero for sparsity.
NEAR_ZERO = 1e-3


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray
) -> dict[str, float | None]:
    """Accuracy, macro F1 and ROC AUC from class probabilities.

    ``probabilities`` is (n,) or (n, 1) for binary problems (probability of
    class 1) and (n, k) otherwise. ROC AUC is None where it is undefined
    (a class missing from ``y_true``).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 1 or probabilities.shape[1] == 1:
        positive = probabilities.reshape(-1)
        predicted = (positive > 0.5).astype(np.int64)
        scores: np.ndarray = positive
        n_classes = 2
    else:
        predicted = probabilities.argmax(axis=1)
        scores = probabilities
        n_classes = probabilities.shape[1]
    result: dict[str, float | None] = {
        "accuracy": float(skm.accuracy_score(y_true, predicted)),
        "f1_macro": float(
            skm.f1_score(y_true, predicted, average="macro", labels=np.arange(n_classes))
        ),
        "roc_auc": None,
    }
    if len(np.unique(y_true)) == n_classes:
        if n_classes == 2:
            result["roc_auc"] = float(skm.roc_auc_score(y_true, scores))
        else:
            # Softmax rows sum to one up to float32 rounding; scikit-learn checks it strictly.
            scores = scores / scores.sum(axis=1, keepdims=True)
            result["roc_auc"] = float(
                skm.roc_auc_score(y_true, scores, multi_class="ovr", average="macro")
            )
    return result


def weight_statistics(kernels: Sequence[np.ndarray]) -> dict[str, float]:
    """L1 norm, L2 norm and the fraction of near-zero weights over all kernels."""
    flat = np.concatenate([np.ravel(k) for k in kernels]) if kernels else np.zeros(0)
    return {
        "weight_l1": float(np.abs(flat).sum()),
        "weight_l2": float(np.sqrt(np.square(flat, dtype=np.float64).sum())),
        "weight_sparsity": float((np.abs(flat) < NEAR_ZERO).mean()) if flat.size else 0.0,
        "n_weights": int(flat.size),
    }
