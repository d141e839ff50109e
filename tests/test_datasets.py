"""Tests of dataset loading, splitting, scaling, the data card and the prepared-data files."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from regbench.datasets import RawData, data_card, load_prepared, load_raw, prepare, write_prepared

SYNTHETIC: dict[str, Any] = {
    "n_samples": 200,
    "n_features": 6,
    "n_informative": 3,
    "n_redundant": 1,
    "n_classes": 3,
    "class_sep": 1.0,
    "flip_y": 0.0,
    "random_state": 3,
}

# Public facts about the scikit-learn datasets: rows, features, rows per class.
KNOWN = {
    "iris": (150, 4, [50, 50, 50]),
    "wine": (178, 13, [59, 71, 48]),
    "breast_cancer": (569, 30, [212, 357]),
}

ALL_DATASETS = ["iris", "wine", "breast_cancer", "digits", "synthetic"]


def make_spec(
    dataset: str = "iris",
    scaling: str = "standard",
    synthetic: dict[str, Any] | None = None,
    **split: Any,
) -> dict[str, Any]:
    """Return a resolved dataset spec (as load_study would give) with split overrides."""
    spec: dict[str, Any] = {
        "name": dataset,
        "description": f"{dataset} for a test",
        "scaling": scaling,
        "split": {
            "test": 0.2,
            "validation": 0.2,
            "validation_mode": "random",
            "stratify": True,
            "random_state": 42,
            **split,
        },
    }
    if dataset == "synthetic":
        spec.update(source="synthetic", synthetic=dict(synthetic or SYNTHETIC))
    else:
        spec.update(source="sklearn", loader=dataset)
    return spec


@cache
def raw_of(dataset: str) -> RawData:
    """Load a dataset once per test session; tests must not modify the arrays."""
    return load_raw(make_spec(dataset))


def traced_raw(n: int, n_classes: int = 3) -> RawData:
    """A dataset whose single feature is the row index, so every split can be traced."""
    return RawData(
        x=np.arange(n, dtype=np.float64).reshape(n, 1),
        y=np.arange(n, dtype=np.int64) % n_classes,
        feature_names=["row"],
        class_names=[str(c) for c in range(n_classes)],
        source="test rows",
    )


def rows(x: np.ndarray) -> list[int]:
    """The row indices held by a traced split."""
    return [int(v) for v in x.reshape(-1)]


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("dataset", sorted(KNOWN))
def test_sklearn_tabular_loaders_give_the_known_table(dataset: str) -> None:
    """Each tabular loader yields the dataset's known rows, features and class counts."""
    n_rows, n_features, per_class = KNOWN[dataset]

    raw = raw_of(dataset)

    assert raw.x.shape == (n_rows, n_features)
    assert raw.y.dtype == np.int64
    assert np.bincount(raw.y).tolist() == per_class
    assert len(raw.class_names) == len(per_class)
    assert len(raw.feature_names) == n_features


def test_digits_come_as_images() -> None:
    """Digits load as (n, 8, 8, 1) images with ten classes and stay images after preparing."""
    raw = raw_of("digits")

    assert raw.x.shape == (1797, 8, 8, 1)
    assert sorted(set(raw.y.tolist())) == list(range(10))
    data = prepare(make_spec("digits", scaling="max"), raw)
    for x in (data.x_train, data.x_val, data.x_test):
        assert x.shape[1:] == (8, 8, 1)
        assert x.dtype == np.float32


def test_synthetic_follows_its_parameters() -> None:
    """make_classification data has the configured rows, features and classes."""
    raw = raw_of("synthetic")

    assert raw.x.shape == (SYNTHETIC["n_samples"], SYNTHETIC["n_features"])
    assert sorted(set(raw.y.tolist())) == list(range(SYNTHETIC["n_classes"]))
    assert raw.class_names == ["0", "1", "2"]
    assert "make_classification" in raw.source


def test_synthetic_is_reproducible_and_follows_its_random_state() -> None:
    """The same random_state gives the same data; another random_state gives other data."""
    again = load_raw(make_spec("synthetic"))
    other = load_raw(make_spec("synthetic", synthetic={**SYNTHETIC, "random_state": 4}))

    np.testing.assert_array_equal(again.x, raw_of("synthetic").x)
    np.testing.assert_array_equal(again.y, raw_of("synthetic").y)
    assert not np.array_equal(other.x, again.x)


# --------------------------------------------------------------------------- splitting


@pytest.mark.parametrize("dataset", ALL_DATASETS)
def test_split_sizes_follow_the_fractions(dataset: str) -> None:
    """Test is ceil(0.2 n) rows, validation ceil(0.25 of the rest), training what remains."""
    raw = raw_of(dataset)
    n = len(raw.y)
    n_test = math.ceil(0.2 * n)
    n_val = math.ceil(0.25 * (n - n_test))

    data = prepare(make_spec(dataset, scaling="none", validation=0.25), raw)

    assert len(data.y_test) == len(data.x_test) == n_test
    assert len(data.y_val) == len(data.x_val) == n_val
    assert len(data.y_train) == len(data.x_train) == n - n_test - n_val


def test_splits_are_disjoint_and_cover_every_row() -> None:
    """Every row lands in exactly one of train, validation and test."""
    data = prepare(make_spec(scaling="none"), traced_raw(150))

    held = rows(data.x_train) + rows(data.x_val) + rows(data.x_test)

    assert sorted(held) == list(range(150))


def test_split_is_the_same_across_calls() -> None:
    """With a fixed random state, preparing twice gives identical arrays."""
    spec = make_spec("wine")
    first = prepare(spec, raw_of("wine"))
    second = prepare(spec, load_raw(spec))

    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


def test_split_changes_with_the_random_state() -> None:
    """Another random state puts other rows in the test split."""
    first = prepare(make_spec(scaling="none", random_state=42), traced_raw(150))
    second = prepare(make_spec(scaling="none", random_state=43), traced_raw(150))

    assert set(rows(first.x_test)) != set(rows(second.x_test))


@pytest.mark.parametrize("dataset", ["wine", "breast_cancer", "digits"])
def test_stratification_keeps_class_proportions(dataset: str) -> None:
    """Each split's class counts stay within rounding of the whole dataset's proportions."""
    raw = raw_of(dataset)
    proportions = np.bincount(raw.y) / len(raw.y)

    data = prepare(make_spec(dataset, scaling="none"), raw)

    # Stratified splitting rounds each class count to a neighbouring integer once per
    # split, so the test split is within one row, validation two, training three.
    for labels, tolerance in ((data.y_test, 1), (data.y_val, 2), (data.y_train, 3)):
        counts = np.bincount(labels, minlength=len(proportions))
        assert np.all(np.abs(counts - proportions * len(labels)) < tolerance)


def test_validation_mode_last_takes_the_tail_of_the_training_split() -> None:
    """With ``last`` the validation rows are the last quarter of the training split, in order."""
    raw = traced_raw(150)
    training_part, test_part = train_test_split(
        np.arange(150), test_size=0.2, random_state=42, stratify=raw.y
    )

    data = prepare(make_spec(scaling="none", validation=0.25, validation_mode="last"), raw)

    assert rows(data.x_test) == test_part.tolist()
    assert rows(data.x_train) + rows(data.x_val) == training_part.tolist()
    assert len(data.y_val) == 120 // 4


def test_validation_mode_random_holds_out_rows_from_the_same_training_split() -> None:
    """``random`` and ``last`` share the test split and hold out the same number of rows."""
    raw = traced_raw(150)
    last = prepare(make_spec(scaling="none", validation=0.25, validation_mode="last"), raw)
    random = prepare(make_spec(scaling="none", validation=0.25, validation_mode="random"), raw)

    assert rows(random.x_test) == rows(last.x_test)
    assert sorted(rows(random.x_train) + rows(random.x_val)) == sorted(
        rows(last.x_train) + rows(last.x_val)
    )
    assert len(random.y_val) == len(last.y_val)
    assert rows(random.x_val) != rows(last.x_val)


def test_validation_mode_last_never_empties_the_training_split() -> None:
    """A validation fraction too small to round to a row still leaves training and validation."""
    data = prepare(
        make_spec(scaling="none", validation=0.004, validation_mode="last"), traced_raw(150)
    )

    assert len(data.y_train) == 119
    assert len(data.y_val) == 1


def test_validation_mode_last_holds_out_what_keras_validation_split_would() -> None:
    """The ``last`` hold-out has the size Keras's validation_split gives for the same rows."""
    n_training_part = 178 - math.ceil(0.2 * 178)
    # keras/src/trainers/data_adapters/array_slicing.py: train_validation_split.
    keras_train = math.floor(n_training_part * (1.0 - 0.2))

    data = prepare(make_spec(scaling="none", validation_mode="last"), traced_raw(178))

    assert len(data.y_train) == keras_train
    assert len(data.y_val) == n_training_part - keras_train


# --------------------------------------------------------------------------- scaling


def test_standard_scaling_is_fitted_on_the_training_split_only() -> None:
    """Standard scaling centres and scales training to mean 0 / std 1 using its statistics."""
    raw = raw_of("breast_cancer")
    unscaled = prepare(make_spec("breast_cancer", scaling="none"), raw)
    mean = unscaled.x_train.astype(np.float64).mean(axis=0)
    std = unscaled.x_train.astype(np.float64).std(axis=0)

    data = prepare(make_spec("breast_cancer", scaling="standard"), raw)

    assert data.x_train.dtype == np.float32
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1.0, atol=1e-4)
    for scaled, raw_split in ((data.x_val, unscaled.x_val), (data.x_test, unscaled.x_test)):
        np.testing.assert_allclose(scaled, (raw_split - mean) / std, rtol=1e-4, atol=1e-4)
    # Fitted on training alone, the test split is not exactly centred.
    assert np.abs(data.x_test.mean(axis=0)).max() > 1e-3


def test_max_scaling_divides_by_the_training_maximum() -> None:
    """``max`` scaling puts training in [0, 1] and divides every split by the training maximum."""
    raw = raw_of("digits")
    unscaled = prepare(make_spec("digits", scaling="none"), raw)
    top = unscaled.x_train.max()

    data = prepare(make_spec("digits", scaling="max"), raw)

    assert data.x_train.max() == 1.0
    assert data.x_train.min() == 0.0
    np.testing.assert_allclose(data.x_test, unscaled.x_test / top, rtol=1e-6)
    np.testing.assert_allclose(data.x_val, unscaled.x_val / top, rtol=1e-6)


def test_minmax_scaling_maps_training_features_to_unit_range() -> None:
    """``minmax`` maps each training feature to [0, 1] and applies the same map to test."""
    raw = raw_of("wine")
    unscaled = prepare(make_spec("wine", scaling="none"), raw).x_train.astype(np.float64)
    low, high = unscaled.min(axis=0), unscaled.max(axis=0)
    raw_test = prepare(make_spec("wine", scaling="none"), raw).x_test

    data = prepare(make_spec("wine", scaling="minmax"), raw)

    np.testing.assert_allclose(data.x_train.min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(data.x_train.max(axis=0), 1.0, atol=1e-6)
    np.testing.assert_allclose(data.x_test, (raw_test - low) / (high - low), rtol=1e-5, atol=1e-6)


def test_no_scaling_keeps_the_values() -> None:
    """``none`` keeps every row's values as they were loaded, as float32."""
    raw = raw_of("iris")

    data = prepare(make_spec(scaling="none"), raw)

    assert data.x_train.dtype == np.float32
    held = np.concatenate([data.x_train, data.x_val, data.x_test])
    expected = raw.x.astype(np.float32)
    np.testing.assert_array_equal(np.unique(held, axis=0), np.unique(expected, axis=0))
    assert len(held) == len(expected)


# --------------------------------------------------------------------------- card and files


@pytest.mark.parametrize("dataset", sorted(KNOWN))
def test_data_card_describes_a_known_dataset(dataset: str) -> None:
    """The card's rows, features, classes, balance and split sizes match the known dataset."""
    n_rows, n_features, per_class = KNOWN[dataset]
    spec = make_spec(dataset)
    raw = raw_of(dataset)
    data = prepare(spec, raw)

    card = data_card(spec, raw, data)

    assert card["name"] == dataset
    assert card["kind"] == "tabular"
    assert card["rows"] == n_rows
    assert card["features"] == n_features
    assert card["classes"] == len(per_class)
    assert list(card["class_balance"].values()) == pytest.approx(
        [count / n_rows for count in per_class], abs=5e-5
    )
    assert card["split_sizes"] == {
        "train": len(data.y_train),
        "validation": len(data.y_val),
        "test": len(data.y_test),
    }
    assert sum(card["split_sizes"].values()) == n_rows
    assert card["scaling"] == "standard"


def test_data_card_of_images() -> None:
    """The digits card says image, 64 features in an 8 x 8 x 1 shape and ten classes."""
    spec = make_spec("digits", scaling="max")
    raw = raw_of("digits")

    card = data_card(spec, raw, prepare(spec, raw))

    assert card["kind"] == "image"
    assert card["features"] == 64
    assert card["input_shape"] == [8, 8, 1]
    assert card["classes"] == 10
    assert sum(card["class_balance"].values()) == pytest.approx(1.0, abs=1e-3)


def test_prepared_data_round_trips_through_files(tmp_path: Path) -> None:
    """write_prepared then load_prepared gives back the same arrays, and the card as JSON."""
    spec = make_spec("synthetic")
    raw = raw_of("synthetic")
    data = prepare(spec, raw)
    card = data_card(spec, raw, data)

    write_prepared(data, card, tmp_path / "data.npz", tmp_path / "card.json")
    loaded = load_prepared(tmp_path / "data.npz")

    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        original, back = getattr(data, name), getattr(loaded, name)
        assert back.dtype == original.dtype
        np.testing.assert_array_equal(back, original)
    assert loaded.n_classes == SYNTHETIC["n_classes"]
    assert json.loads((tmp_path / "card.json").read_text(encoding="utf-8")) == card
