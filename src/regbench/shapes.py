"""What a dataset's examples look like where its spec alone says it, without loading the data.

Loading a study asks this to refuse, before any job runs, a split the data
cannot make (:func:`regbench.datasets.check_split_sizes`) and a model
function that cannot take the data (:func:`regbench.custom.check_all`). A
downloaded CSV or npz file is known only once read. The facts about
scikit-learn's loaders are checked against scikit-learn by
``tests/test_hostile_inputs.py``. The module imports nothing from regbench,
so every layer may ask it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["KnownData", "known_data"]


@dataclass(frozen=True)
class KnownData:
    """One example's shape, the rows, the rows of an official test set (or None), the classes."""

    example_shape: tuple[int, ...]
    rows: int
    test_rows: int | None
    classes: int


_LOADERS = {
    "breast_cancer": KnownData((30,), 569, None, 2),
    "iris": KnownData((4,), 150, None, 3),
    "wine": KnownData((13,), 178, None, 3),
    "digits": KnownData((8, 8, 1), 1797, None, 10),
}
# CIFAR-10's python tarball: its training batches and its official test batch.
_CIFAR = KnownData((32, 32, 3), 50_000, 10_000, 10)


def known_data(dataset: Mapping[str, Any]) -> KnownData | None:
    """What a dataset entry (or spec) says of its data; None where only the data can tell."""
    if dataset["source"] == "sklearn":
        return _LOADERS[dataset["loader"]]
    if dataset["source"] == "synthetic":
        params = dataset["synthetic"]
        return KnownData((params["n_features"],), params["n_samples"], None, params["n_classes"])
    if dataset["source"] == "url" and dataset["format"] == "cifar":
        return _CIFAR
    return None
