"""Model topology without TensorFlow: hidden layers, their kinds, and which ones a piece touches.

The config layer asks these questions to validate a study and skip what makes
no sense; :mod:`regbench.models` asks the same ones to build the model. Their
answers decide a run's arithmetic, so this module is part of the training-code
digest (:data:`regbench.fingerprint.TRAINING_MODULES`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regbench.inputs import quote

__all__ = [
    "CONV_ONLY",
    "IMAGE_FORMATS",
    "IMAGE_LOADERS",
    "INPUTS",
    "INSERTED",
    "PIECES",
    "hidden_activations",
    "hidden_layer_kinds",
    "is_image_dataset",
    "select_layers",
]

#: A dataset is image-shaped when its loader or file format yields images; the CNN needs them.
IMAGE_LOADERS = frozenset({"digits"})
IMAGE_FORMATS = frozenset({"cifar"})

#: The regularizer pieces that act on chosen hidden layers (``layers: all | dense | conv | [i]``).
PIECES = (
    "kernel",
    "bias",
    "activity",
    "dropout",
    "batch_norm",
    "weight_decay",
    "max_norm",
    "gaussian_noise",
    "spatial_dropout",
    "custom",
)

#: Pieces that add layers of their own after a hidden layer. regbench cannot place them
#: inside a custom model, whose layers the study's own function builds.
INSERTED = frozenset({"dropout", "batch_norm", "gaussian_noise", "spatial_dropout"})

#: Pieces that only make sense on convolutional layers (they drop whole feature maps).
CONV_ONLY = frozenset({"spatial_dropout"})

#: The ``layers`` setting of ``gaussian_noise`` that puts the noise on the model's inputs.
INPUTS = "inputs"


def hidden_layer_kinds(model: Mapping[str, Any]) -> list[str]:
    """The kind ("conv" or "dense") of each hidden layer, in order."""
    return ["conv"] * len(model.get("filters", [])) + ["dense"] * len(model["units"])


def hidden_activations(model: Mapping[str, Any]) -> list[str]:
    """The activation of each hidden layer, in order."""
    activation = model["activation"]
    n_hidden = len(hidden_layer_kinds(model))
    return [activation] * n_hidden if isinstance(activation, str) else list(activation)


def select_layers(scope: str | list[int], kinds: list[str], where: str) -> list[int]:
    """Resolve a ``layers`` setting to hidden-layer indices; ValueError names ``where``.

    ``inputs`` (noise on the model's inputs) chooses no hidden layer.
    """
    if scope == INPUTS:
        return []
    if scope == "all":
        return list(range(len(kinds)))
    if isinstance(scope, str):
        return [i for i, kind in enumerate(kinds) if kind == scope]
    bad = [i for i in scope if i >= len(kinds)]
    if bad:
        raise ValueError(
            f"{where}.layers: hidden layer index {quote(bad[0])} does not exist; "
            f"the model has {len(kinds)} hidden layer(s) ({', '.join(kinds) or 'none'})"
        )
    return sorted(scope)


def is_image_dataset(dataset: Mapping[str, Any]) -> bool:
    """Whether a dataset's samples are images (height x width x channels)."""
    if dataset["source"] == "sklearn":
        return dataset["loader"] in IMAGE_LOADERS
    if dataset["source"] == "url":
        return dataset["format"] in IMAGE_FORMATS
    return False
