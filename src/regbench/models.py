"""Keras model builders with composable regularization pieces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from keras import layers

from regbench.topology import hidden_activations, hidden_layer_kinds, select_layers

__all__ = [
    "accuracy_function",
    "build_model",
    "compile_model",
    "loss_function",
    "make_optimizer",
    "penalty",
]


def penalty(spec: Mapping[str, Any] | None) -> keras.regularizers.Regularizer | None:
    """The Keras regularizer for an ``{l1, l2}`` block, or None when both are zero."""
    if not spec or (spec["l1"] == 0 and spec["l2"] == 0):
        return None
    return keras.regularizers.L1L2(l1=spec["l1"], l2=spec["l2"])


def build_model(
    model: Mapping[str, Any],
    regularizer: Mapping[str, Any],
    input_shape: tuple[int, ...],
    n_classes: int,
) -> keras.Model:
    """Build an MLP or CNN whose hidden layers carry the regularizer's pieces.

    Hidden layers are numbered convolutions first, then dense layers; each
    piece's ``layers`` setting picks which of them it applies to. Batch
    normalization sits between a layer's linear part and its activation;
    dropout follows the activation (and the pooling, for convolutions).
    """
    kinds = hidden_layer_kinds(model)
    where = f"regularizers.{regularizer['name']}"

    def chosen(piece: str) -> set[int]:
        if piece not in regularizer:
            return set()
        return set(select_layers(regularizer[piece]["layers"], kinds, f"{where}.{piece}"))

    with_kernel, with_bias, with_activity = chosen("kernel"), chosen("bias"), chosen("activity")
    with_dropout, with_batch_norm = chosen("dropout"), chosen("batch_norm")
    widths = [*model.get("filters", []), *model["units"]]
    activations = hidden_activations(model)

    inputs = keras.Input(shape=input_shape, name="features")
    x = inputs
    if model["type"] == "mlp" and len(input_shape) > 1:
        x = layers.Flatten(name="flatten_input")(x)
    for index, (kind, width) in enumerate(zip(kinds, widths, strict=True)):
        if kind == "dense" and index > 0 and kinds[index - 1] == "conv":
            x = layers.Flatten(name="flatten")(x)
        options = {
            "kernel_regularizer": penalty(regularizer.get("kernel"))
            if index in with_kernel
            else None,
            "bias_regularizer": penalty(regularizer.get("bias")) if index in with_bias else None,
            "activity_regularizer": (
                penalty(regularizer.get("activity")) if index in with_activity else None
            ),
            "activation": None if index in with_batch_norm else activations[index],
            "name": f"hidden{index}_{kind}",
        }
        if kind == "conv":
            x = layers.Conv2D(width, model["kernel_size"], padding=model["padding"], **options)(x)
        else:
            x = layers.Dense(width, **options)(x)
        if index in with_batch_norm:
            x = layers.BatchNormalization(name=f"hidden{index}_batch_norm")(x)
            x = layers.Activation(activations[index], name=f"hidden{index}_activation")(x)
        if kind == "conv" and model.get("pool", [True] * len(kinds))[index]:
            x = layers.MaxPooling2D(model["pool_size"], name=f"hidden{index}_pool")(x)
        if index in with_dropout:
            x = layers.Dropout(regularizer["dropout"]["rate"], name=f"hidden{index}_dropout")(x)
    if kinds and kinds[-1] == "conv":
        x = layers.Flatten(name="flatten")(x)
    if n_classes == 2:
        outputs = layers.Dense(1, activation="sigmoid", name="output")(x)
    else:
        outputs = layers.Dense(n_classes, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=f"{model['name']}__{regularizer['name']}")


def make_optimizer(training: Mapping[str, Any]) -> keras.optimizers.Optimizer:
    """The optimizer the training spec names, at its learning rate."""
    optimizers = {
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    return optimizers[training["optimizer"]](learning_rate=training["learning_rate"])


def loss_function(n_classes: int) -> keras.losses.Loss:
    """The data loss: binary cross-entropy for two classes, sparse categorical otherwise."""
    if n_classes == 2:
        return keras.losses.BinaryCrossentropy()
    return keras.losses.SparseCategoricalCrossentropy()


def accuracy_function(n_classes: int) -> Any:
    """Keras's per-example accuracy for the output layer :func:`build_model` gives."""
    if n_classes == 2:
        return keras.metrics.binary_accuracy
    return keras.metrics.sparse_categorical_accuracy


def compile_model(model: keras.Model, training: Mapping[str, Any], n_classes: int) -> None:
    """Attach optimizer, loss and accuracy as the training spec says (as a notebook would)."""
    accuracy: keras.metrics.Metric = (
        keras.metrics.BinaryAccuracy(name="accuracy")
        if n_classes == 2
        else keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    )
    model.compile(
        optimizer=make_optimizer(training), loss=loss_function(n_classes), metrics=[accuracy]
    )
