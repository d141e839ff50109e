"""The seed stack runs any Keras model for several seeds at once, each as that seed's own model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from regbench.seedstack import SeedStack


def chain_with_unknown_layers() -> Any:
    """A chain whose middle layers the stack does not batch: they run as each seed's own."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(5,))
    x = layers.Dense(7, activation="tanh", kernel_regularizer=keras.regularizers.L2(0.1))(inputs)
    x = layers.LayerNormalization()(x)
    x = layers.GaussianNoise(0.3)(x)
    x = layers.Dense(6, kernel_constraint=keras.constraints.MaxNorm(1.0))(x)
    x = layers.Dense(4, activity_regularizer=keras.regularizers.L1(0.01))(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def residual() -> Any:
    """A model that is not a chain: the stack runs it whole, as each seed's own model."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(5,))
    hidden = layers.Dense(5, activation="relu", bias_regularizer=keras.regularizers.L1(0.2))(inputs)
    outputs = layers.Dense(1, activation="sigmoid")(layers.Add()([inputs, hidden]))
    return keras.Model(inputs, outputs)


def seeded(builder: Callable[[], Any], seeds: list[int]) -> list[Any]:
    """One model per seed, each built after seeding every generator with its seed."""
    import keras

    models = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        models.append(builder())
    return models


@pytest.mark.parametrize("builder", [chain_with_unknown_layers, residual], ids=["chain", "dag"])
def test_each_seed_gets_its_own_models_outputs_and_penalties(builder: Callable[[], Any]) -> None:
    """In inference, every seed's outputs and summed penalties equal its own Keras model's."""
    import tensorflow as tf

    models = seeded(builder, [0, 1, 2])
    stack = SeedStack(models)
    x = np.random.default_rng(0).normal(size=(3, 9, 5)).astype(np.float32)
    outputs, penalties = stack.forward(tf.constant(x), training=False)
    for seed, model in enumerate(models):
        expected = model(x[seed], training=False)
        np.testing.assert_allclose(outputs[seed], expected, rtol=1e-6, atol=1e-7)
        ours = sum(float(term[seed]) for term in penalties.terms())
        assert ours == pytest.approx(float(sum(model.losses)), rel=1e-6)
    assert len(penalties.terms()) >= 1


def test_a_seed_view_reads_and_writes_only_its_own_seed() -> None:
    """Writing one seed's weights through its view leaves every other seed's weights alone."""
    models = seeded(chain_with_unknown_layers, [0, 1])
    stack = SeedStack(models)
    first, second = stack.view(0), stack.view(1)
    before = second.get_weights()
    first.set_weights([np.zeros_like(w) for w in first.get_weights()])
    assert all(not w.any() for w in first.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(second.get_weights(), before, strict=True))
    kernels = stack.kernels(1)
    assert len(kernels) == 4 and all(k.any() for k in kernels.values())


def test_a_stack_needs_a_model() -> None:
    """An empty stack is refused."""
    with pytest.raises(ValueError, match="at least one model"):
        SeedStack([])


def test_a_confident_outputs_cross_entropy_comes_from_its_logits() -> None:
    """A seed's slice of a stacked sigmoid output keeps its logits, so Keras's cross-entropy of
    a confidently wrong prediction is the unclipped one, as in a Keras model."""
    import keras
    import tensorflow as tf

    from regbench.seedstack import per_seed

    def builder() -> Any:
        inputs = keras.Input(shape=(1,))
        outputs = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones")(inputs)
        return keras.Model(inputs, outputs)

    models = seeded(builder, [0, 1])
    stack = SeedStack(models)
    loss = keras.losses.BinaryCrossentropy()
    x, y = np.full((2, 1, 1), 50.0, np.float32), np.zeros((2, 1, 1), np.float32)

    @tf.function
    def stacked_loss(x: Any, y: Any) -> Any:
        return per_seed(loss, y, stack.forward(x, False)[0])

    @tf.function
    def keras_loss(x: Any, y: Any) -> Any:
        return loss(y, models[0](x))

    ours, theirs = stacked_loss(x, y), keras_loss(x[0], y[0])
    assert float(theirs) == pytest.approx(50.0)  # Not -log(1e-7) = 16.1: from the logit.
    np.testing.assert_array_equal(ours, [theirs, theirs])
