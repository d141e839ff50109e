"""Tests of per-run metrics against hand computations on small arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from regbench.metrics import NEAR_ZERO, classification_metrics, weight_statistics


def pairwise_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the share of (positive, negative) pairs ranked right, ties counting half."""
    pos, neg = scores[positive], scores[~positive]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def macro_f1(y_true: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Macro F1 from per-class counts: 2 TP / (2 TP + FP + FN), 0 where undefined."""
    scores = []
    for c in range(n_classes):
        tp = int(np.sum((predicted == c) & (y_true == c)))
        fp = int(np.sum((predicted == c) & (y_true != c)))
        fn = int(np.sum((predicted != c) & (y_true == c)))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(scores) / n_classes


BINARY_Y = np.array([0, 0, 1, 1, 1, 0, 1, 0])
BINARY_P = np.array([0.1, 0.6, 0.8, 0.4, 0.9, 0.3, 0.7, 0.2])


@pytest.mark.parametrize("shape", [(8,), (8, 1)], ids=["flat", "column"])
def test_binary_metrics_match_hand_computation(shape: tuple[int, ...]) -> None:
    """Binary accuracy, macro F1 and AUC from (n,) or (n, 1) probabilities match by hand."""
    # Threshold 0.5 predicts 0 1 1 0 1 0 1 0: rows 1 and 3 are wrong.
    # Class 1: TP 3, FP 1, FN 1 -> F1 6/8; class 0: TP 3, FP 1, FN 1 -> F1 6/8.
    # AUC: positives 0.8 0.4 0.9 0.7 against negatives 0.1 0.6 0.3 0.2 win 4+3+4+4 of 16.
    result = classification_metrics(BINARY_Y, BINARY_P.reshape(shape))

    assert result["accuracy"] == pytest.approx(6 / 8)
    assert result["f1_macro"] == pytest.approx(6 / 8)
    assert result["roc_auc"] == pytest.approx(15 / 16)


def test_binary_metrics_agree_with_independent_helpers() -> None:
    """On a larger random binary problem the metrics agree with the pairwise helpers."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=60)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, size=60), 0, 1)
    predicted = (p > 0.5).astype(int)

    result = classification_metrics(y, p)

    assert result["accuracy"] == pytest.approx(np.mean(predicted == y))
    assert result["f1_macro"] == pytest.approx(macro_f1(y, predicted, 2))
    assert result["roc_auc"] == pytest.approx(pairwise_auc(y == 1, p))


def test_probability_exactly_one_half_predicts_class_zero() -> None:
    """A probability of exactly 0.5 is not above the threshold, so it predicts class 0."""
    result = classification_metrics(np.array([0, 1]), np.array([0.5, 0.9]))

    assert result["accuracy"] == 1.0


def test_multiclass_metrics_match_hand_computation() -> None:
    """Multiclass accuracy, macro F1 and one-vs-rest macro AUC match the hand computation."""
    y = np.array([0, 1, 2, 2, 1, 0, 2])
    probabilities = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.1, 0.5, 0.4],
            [0.2, 0.3, 0.5],
            [0.1, 0.6, 0.3],
            [0.3, 0.4, 0.3],
            [0.4, 0.35, 0.25],
            [0.05, 0.15, 0.8],
        ]
    )
    predicted = np.array([0, 1, 2, 1, 1, 0, 2])  # Row argmaxes, read off the table.
    expected_auc = np.mean([pairwise_auc(y == c, probabilities[:, c]) for c in range(3)])

    result = classification_metrics(y, probabilities)

    assert result["accuracy"] == pytest.approx(6 / 7)
    # Class 0: TP 2 FP 0 FN 0 -> F1 1; class 1: TP 2 FP 1 FN 0 -> 4/5;
    # class 2: TP 2 FP 0 FN 1 -> 4/5.
    assert result["f1_macro"] == pytest.approx((1 + 4 / 5 + 4 / 5) / 3)
    assert result["f1_macro"] == pytest.approx(macro_f1(y, predicted, 3))
    assert result["roc_auc"] == pytest.approx(expected_auc)


def test_multiclass_auc_accepts_float32_softmax_rows() -> None:
    """float32 softmax rows that do not sum to exactly one still give the AUC."""
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 10)
    logits = rng.normal(size=(40, 4)) + 1.5 * np.eye(4)[y]
    exp = np.exp(logits).astype(np.float32)
    probabilities = exp / exp.sum(axis=1, keepdims=True)
    expected_auc = np.mean([pairwise_auc(y == c, probabilities[:, c]) for c in range(4)])

    result = classification_metrics(y, probabilities)

    assert result["roc_auc"] == pytest.approx(expected_auc, abs=1e-6)
    assert result["accuracy"] == pytest.approx(np.mean(probabilities.argmax(axis=1) == y))


def test_binary_auc_is_none_when_a_class_is_missing() -> None:
    """With only class 1 in y_true the AUC is undefined and None; the rest is still computed."""
    y = np.array([1, 1, 1])

    result = classification_metrics(y, np.array([0.9, 0.8, 0.2]))

    assert result["roc_auc"] is None
    assert result["accuracy"] == pytest.approx(2 / 3)
    # Class 0: TP 0, FP 1, FN 0 -> 0; class 1: TP 2, FP 0, FN 1 -> 4/5.
    assert result["f1_macro"] == pytest.approx((0 + 4 / 5) / 2)


def test_multiclass_auc_is_none_when_a_class_is_missing() -> None:
    """With class 2 absent from y_true the one-vs-rest AUC is None."""
    y = np.array([0, 1, 1, 0])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.5, 0.2, 0.3]])

    result = classification_metrics(y, probabilities)

    assert result["roc_auc"] is None
    assert result["accuracy"] == pytest.approx(3 / 4)


def test_weight_statistics_match_hand_values() -> None:
    """L1, L2, sparsity and count over several kernels match the hand computation."""
    kernels = [
        np.array([[1.0, -2.0], [0.0, 0.0005]], dtype=np.float32),
        np.array([3.0, -0.002, NEAR_ZERO]),
    ]

    result = weight_statistics(kernels)

    assert result["weight_l1"] == pytest.approx(1 + 2 + 0 + 0.0005 + 3 + 0.002 + 0.001, rel=1e-6)
    assert result["weight_l2"] == pytest.approx(
        math.sqrt(1 + 4 + 0 + 0.0005**2 + 9 + 0.002**2 + 0.001**2), rel=1e-6
    )
    # Below NEAR_ZERO: 0.0 and 0.0005; 0.001 itself is not below it.
    assert result["weight_sparsity"] == pytest.approx(2 / 7)
    assert result["n_weights"] == 7


@pytest.mark.parametrize("kernels", [[], [np.zeros((0, 3))]], ids=["no-kernels", "empty-kernel"])
def test_weight_statistics_of_no_weights(kernels: list[np.ndarray]) -> None:
    """No weights at all give zero norms, zero sparsity and a count of zero."""
    result = weight_statistics(kernels)

    assert result == {"weight_l1": 0.0, "weight_l2": 0.0, "weight_sparsity": 0.0, "n_weights": 0}
