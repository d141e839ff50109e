"""A residual MLP, a model regbench does not build itself.

regbench calls ``residual_mlp(input_shape, n_classes, **args)`` after
seeding Keras with the run's seed, and trains the model it returns.
"""

from __future__ import annotations

import keras
from keras import layers


def residual_mlp(
    input_shape: tuple[int, ...], n_classes: int, units: int = 32, blocks: int = 2
) -> keras.Model:
    """Dense(units), then ``blocks`` residual blocks x + Dense(units)(x), then the output."""
    inputs = keras.Input(shape=input_shape)
    x = layers.Flatten()(inputs)
    x = layers.Dense(units, activation="relu")(x)
    for _ in range(blocks):
        x = layers.Add()([x, layers.Dense(units, activation="relu")(x)])
    if n_classes == 2:
        outputs = layers.Dense(1, activation="sigmoid")(x)
    else:
        outputs = layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="residual_mlp")
