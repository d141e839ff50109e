"""Datasets: load, split and scale reproducibly, then write arrays and a data card."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import datasets as skdatasets
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler, StandardScaler

__all__ = ["PreparedData", "load_prepared", "load_raw", "prepare", "write_prepared"]

SPLITS = ("train", "val", "test")

_SKLEARN_LOADERS = {
    "breast_cancer": skdatasets.load_breast_cancer,
    "iris": skdatasets.load_iris,
    "wine": skdatasets.load_wine,
    "digits": skdatasets.load_digits,
}


@dataclass(frozen=True)
class RawData:
    """Features and integer labels as loaded, before any split."""

    x: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    source: str


@dataclass(frozen=True)
class PreparedData:
    """Split and scaled arrays; ``x_*`` are float32, ``y_*`` integer class indices."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1


def load_raw(spec: Mapping[str, Any]) -> RawData:
    """Load a dataset as its spec describes, images as (n, height, width, channels)."""
    if spec["source"] == "sklearn":
        bunch = _SKLEARN_LOADERS[spec["loader"]]()
        x = bunch.images[..., np.newaxis] if spec["loader"] == "digits" else bunch.data
        return RawData(
            x=np.asarray(x, dtype=np.float64),
            y=np.asarray(bunch.target, dtype=np.int64),
            feature_names=[str(n) for n in getattr(bunch, "feature_names", [])],
            class_names=[str(n) for n in bunch.target_names],
            source=f"scikit-learn load_{spec['loader']}()",
        )
    if spec["source"] == "synthetic":
        params = dict(spec["synthetic"])
        x, y = skdatasets.make_classification(**params)
        return RawData(
            x=x,
            y=y.astype(np.int64),
            feature_names=[f"x{i}" for i in range(x.shape[1])],
            class_names=[str(c) for c in range(params["n_classes"])],
            source="scikit-learn make_classification("
            + ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
            + ")",
        )
    raise ValueError(f"dataset {spec['name']}: unknown source {spec['source']!r}")


def prepare(spec: Mapping[str, Any], raw: RawData) -> PreparedData:
    """Split into train / validation / test with a fixed random state, then scale on train."""
    split = spec["split"]
    indices = np.arange(len(raw.y))
    stratify = raw.y if split["stratify"] else None
    train_idx, test_idx = train_test_split(
        indices, test_size=split["test"], random_state=split["random_state"], stratify=stratify
    )
    if split["validation_mode"] == "last":
        # Keras's validation_split holds out the last fraction, unshuffled.
        n_val = int(round(len(train_idx) * split["validation"]))
        train_idx, val_idx = train_idx[:-n_val], train_idx[-n_val:]
    else:
        train_idx, val_idx = train_test_split(
            train_idx,
            test_size=split["validation"],
            random_state=split["random_state"],
            stratify=raw.y[train_idx] if split["stratify"] else None,
        )
    x_train, x_val, x_test = _scale(
        spec["scaling"], raw.x[train_idx], raw.x[val_idx], raw.x[test_idx]
    )
    return PreparedData(
        x_train=x_train,
        y_train=raw.y[train_idx],
        x_val=x_val,
        y_val=raw.y[val_idx],
        x_test=x_test,
        y_test=raw.y[test_idx],
    )


def _scale(
    method: str, train: np.ndarray, val: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if method == "max":
        top = float(np.abs(train).max()) or 1.0
        return tuple(np.asarray(a / top, dtype=np.float32) for a in (train, val, test))  # type: ignore[return-value]
    if method == "none":
        return tuple(np.asarray(a, dtype=np.float32) for a in (train, val, test))  # type: ignore[return-value]
    scaler = StandardScaler() if method == "standard" else MinMaxScaler()
    shape = train.shape[1:]
    scaler.fit(train.reshape(len(train), -1))
    return tuple(  # type: ignore[return-value]
        scaler.transform(a.reshape(len(a), -1)).reshape((len(a), *shape)).astype(np.float32)
        for a in (train, val, test)
    )


def data_card(spec: Mapping[str, Any], raw: RawData, data: PreparedData) -> dict[str, Any]:
    """A small description of the prepared data for the report."""
    counts = np.bincount(raw.y, minlength=len(raw.class_names))
    return {
        "name": spec["name"],
        "description": spec.get("description", ""),
        "source": raw.source,
        "kind": "image" if raw.x.ndim == 4 else "tabular",
        "rows": int(len(raw.y)),
        "features": int(np.prod(raw.x.shape[1:])),
        "input_shape": [int(d) for d in raw.x.shape[1:]],
        "classes": len(raw.class_names),
        "class_names": raw.class_names,
        "class_balance": {
            name: round(float(c) / len(raw.y), 4)
            for name, c in zip(raw.class_names, counts, strict=True)
        },
        "split_sizes": {
            "train": len(data.y_train),
            "validation": len(data.y_val),
            "test": len(data.y_test),
        },
        "split": dict(spec["split"]),
        "scaling": spec["scaling"],
    }


def write_prepared(data: PreparedData, card: Mapping[str, Any], npz: Path, card_path: Path) -> None:
    """Write the arrays (compressed npz) and the card (JSON)."""
    np.savez_compressed(
        npz,
        **{f"{axis}_{part}": getattr(data, f"{axis}_{part}") for part in SPLITS for axis in "xy"},
    )
    card_path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_prepared(npz: Path) -> PreparedData:
    """Read arrays written by :func:`write_prepared`."""
    with np.load(npz) as arrays:
        return PreparedData(**{name: arrays[name] for name in arrays.files})
