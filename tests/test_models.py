"""Tests of the Keras model builders: penalties, layer selection, dropout, batch norm, CNN."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from keras import layers

from regbench.models import build_model, compile_model, penalty


def mlp(units: tuple[int, ...] = (3, 2), activation: str = "relu") -> dict[str, Any]:
    """A resolved MLP spec, as load_study gives it."""
    return {
        "name": "mlp",
        "type": "mlp",
        "units": list(units),
        "activation": activation,
        "kernel_size": 3,
        "pool_size": 2,
        "padding": "same",
    }


def cnn(
    filters: tuple[int, ...],
    units: tuple[int, ...] = (5,),
    padding: str = "same",
    pool: list[bool] | None = None,
) -> dict[str, Any]:
    """A resolved CNN spec, as load_study gives it (``pool`` left out means every block pools)."""
    spec = {
        **mlp(units),
        "name": "cnn",
        "type": "cnn",
        "filters": list(filters),
        "padding": padding,
    }
    if pool is not None:
        spec["pool"] = pool
    return spec


def regularizer(**pieces: dict[str, Any]) -> dict[str, Any]:
    """A resolved regularizer spec: penalties get l1 = l2 = 0 and every piece layers = all."""
    body: dict[str, Any] = {"name": "reg"}
    for piece, settings in pieces.items():
        defaults: dict[str, Any] = {"layers": "all"}
        if piece in ("kernel", "bias", "activity"):
            defaults.update(l1=0.0, l2=0.0)
        body[piece] = {**defaults, **settings}
    return body


def dense_layers(model: keras.Model) -> list[layers.Dense]:
    """The model's Dense layers in order: the hidden ones, then the output."""
    return [layer for layer in model.layers if isinstance(layer, layers.Dense)]


def set_known_weights(model: keras.Model, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Give every Dense layer seeded kernel and bias values (biases non-zero); return them."""
    rng = np.random.default_rng(seed)
    weights = []
    for layer in dense_layers(model):
        kernel = rng.normal(size=layer.kernel.shape).astype(np.float32)
        bias = rng.normal(size=layer.bias.shape).astype(np.float32)
        layer.set_weights([kernel, bias])
        weights.append((kernel, bias))
    return weights


def hand_penalty(values: np.ndarray, l1: float, l2: float) -> float:
    """l1 * sum |w| + l2 * sum w^2, in float64."""
    values = values.astype(np.float64)
    return float(l1 * np.abs(values).sum() + l2 * np.square(values).sum())


def total_loss(model: keras.Model) -> float:
    """The sum of the losses Keras adds to the training loss."""
    return float(sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses))


def relu(z: np.ndarray) -> np.ndarray:
    """The rectifier, elementwise."""
    result: np.ndarray = np.maximum(z, 0.0)
    return result


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, elementwise."""
    result: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return result


def softmax(z: np.ndarray) -> np.ndarray:
    """The softmax of each row."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    result: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return result


STRENGTHS = [(0.01, 0.0), (0.0, 0.02), (0.01, 0.02)]
STRENGTH_IDS = ["l1", "l2", "l1_l2"]


# --------------------------------------------------------------------------- penalties


@pytest.mark.parametrize(("l1", "l2"), STRENGTHS, ids=STRENGTH_IDS)
def test_kernel_penalty_equals_hand_computation(l1: float, l2: float) -> None:
    """A kernel penalty adds l1 sum|W| + l2 sum W^2 over the hidden kernels, not the output."""
    model = build_model(mlp(), regularizer(kernel={"l1": l1, "l2": l2}), (4,), 3)
    weights = set_known_weights(model)

    expected = sum(hand_penalty(kernel, l1, l2) for kernel, _ in weights[:-1])

    assert total_loss(model) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("l1", "l2"), STRENGTHS, ids=STRENGTH_IDS)
def test_bias_penalty_equals_hand_computation(l1: float, l2: float) -> None:
    """A bias penalty adds l1 sum|b| + l2 sum b^2 over the hidden biases."""
    model = build_model(mlp(), regularizer(bias={"l1": l1, "l2": l2}), (4,), 3)
    weights = set_known_weights(model)

    expected = sum(hand_penalty(bias, l1, l2) for _, bias in weights[:-1])

    assert total_loss(model) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("l1", "l2"), STRENGTHS, ids=STRENGTH_IDS)
def test_activity_penalty_equals_hand_computation(l1: float, l2: float) -> None:
    """An activity penalty on a known input is the penalty on each hidden output / batch size."""
    model = build_model(mlp(), regularizer(activity={"l1": l1, "l2": l2}), (4,), 3)
    (w0, b0), (w1, b1), _ = set_known_weights(model)
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    h0 = relu(x @ w0 + b0)
    h1 = relu(h0 @ w1 + b1)
    # Keras 3 divides an activity penalty by the batch size (Layer.__call__).
    expected = (hand_penalty(h0, l1, l2) + hand_penalty(h1, l1, l2)) / len(x)

    model(x, training=False)

    assert total_loss(model) == pytest.approx(expected, rel=1e-5)


def test_penalty_applies_only_to_selected_layers() -> None:
    """``layers: [1]`` puts the penalty on the second hidden layer alone."""
    spec = regularizer(kernel={"l2": 0.1, "layers": [1]})
    model = build_model(mlp((3, 2, 2)), spec, (4,), 2)
    weights = set_known_weights(model)

    hidden0, hidden1, hidden2, output = dense_layers(model)

    assert hidden0.kernel_regularizer is None
    assert hidden1.kernel_regularizer is not None
    assert hidden2.kernel_regularizer is None
    assert output.kernel_regularizer is None
    assert total_loss(model) == pytest.approx(hand_penalty(weights[1][0], 0.0, 0.1), rel=1e-5)


def test_penalty_on_conv_layers_only() -> None:
    """``layers: conv`` regularizes the convolution kernels and none of the dense ones."""
    spec = regularizer(kernel={"l2": 0.1, "layers": "conv"})
    model = build_model(cnn((2, 3), units=(4,)), spec, (8, 8, 1), 3)
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    rng = np.random.default_rng(2)
    for conv in convs:
        conv.kernel.assign(rng.normal(size=conv.kernel.shape).astype(np.float32))

    expected = sum(hand_penalty(keras.ops.convert_to_numpy(c.kernel), 0.0, 0.1) for c in convs)

    assert all(conv.kernel_regularizer is not None for conv in convs)
    assert all(dense.kernel_regularizer is None for dense in dense_layers(model))
    assert total_loss(model) == pytest.approx(expected, rel=1e-5)


def test_unregularized_model_adds_no_loss() -> None:
    """An empty regularizer adds nothing to the loss, before or after a forward pass."""
    model = build_model(mlp(), regularizer(), (4,), 3)
    model(np.ones((2, 4), dtype=np.float32))

    assert model.losses == []
    assert all(layer.kernel_regularizer is None for layer in dense_layers(model))


@pytest.mark.parametrize("spec", [None, {}, {"l1": 0, "l2": 0, "layers": "all"}])
def test_penalty_of_zero_strengths_is_none(spec: dict[str, Any] | None) -> None:
    """No block, or a block with l1 = l2 = 0, gives no Keras regularizer at all."""
    assert penalty(spec) is None


def test_penalty_of_a_strength_is_that_penalty() -> None:
    """penalty({l1, l2}) evaluates to l1 sum|w| + l2 sum w^2 on a known array."""
    w = np.array([[1.0, -2.0], [0.5, 0.0]], dtype=np.float32)

    regularizer_ = penalty({"l1": 0.1, "l2": 0.3, "layers": "all"})

    assert regularizer_ is not None
    value = float(keras.ops.convert_to_numpy(regularizer_(keras.ops.convert_to_tensor(w))))
    assert value == pytest.approx(0.1 * 3.5 + 0.3 * 5.25, rel=1e-6)


def test_compiled_loss_includes_the_penalty() -> None:
    """The loss Keras reports is the binary cross-entropy plus the kernel penalty."""
    model = build_model(mlp((3,)), regularizer(kernel={"l2": 0.1}), (4,), 2)
    compile_model(model, {"optimizer": "sgd", "learning_rate": 0.1}, 2)
    (w0, b0), (w1, b1) = set_known_weights(model, seed=3)
    x = np.random.default_rng(4).normal(size=(6, 4)).astype(np.float32)
    y = np.array([0, 1, 1, 0, 1, 0])
    p = sigmoid(relu(x @ w0 + b0) @ w1 + b1).reshape(-1)
    cross_entropy = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))

    loss, _ = model.test_on_batch(x, y)

    assert loss == pytest.approx(cross_entropy + hand_penalty(w0, 0.0, 0.1), rel=1e-4)


# --------------------------------------------------------------------------- dropout


def test_dropout_follows_the_selected_hidden_layers() -> None:
    """``dropout: {rate: 0.3, layers: [1]}`` puts one Dropout(0.3) right after hidden layer 1."""
    spec = regularizer(dropout={"rate": 0.3, "layers": [1]})
    model = build_model(mlp((4, 3, 2)), spec, (5,), 3)
    hidden = dense_layers(model)[:-1]

    dropouts = [layer for layer in model.layers if isinstance(layer, layers.Dropout)]

    assert len(dropouts) == 1
    assert dropouts[0].rate == pytest.approx(0.3)
    position = model.layers.index(dropouts[0])
    assert model.layers[position - 1] is hidden[1]


def test_dropout_on_all_layers_follows_each_hidden_layer() -> None:
    """``layers: all`` puts a Dropout with the configured rate after every hidden layer."""
    model = build_model(mlp((4, 3)), regularizer(dropout={"rate": 0.2}), (5,), 2)

    kinds = [type(layer).__name__ for layer in model.layers]

    assert kinds == ["InputLayer", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert all(
        layer.rate == pytest.approx(0.2)
        for layer in model.layers
        if isinstance(layer, layers.Dropout)
    )


def test_dropout_is_inactive_in_inference_and_active_in_training() -> None:
    """In inference the output is the dropout-free forward pass; in training it varies."""
    keras.utils.set_random_seed(0)
    model = build_model(mlp((64,), "tanh"), regularizer(dropout={"rate": 0.5}), (4,), 2)
    (w0, b0), (w1, b1) = set_known_weights(model)
    x = np.random.default_rng(5).normal(size=(8, 4)).astype(np.float32)
    expected = sigmoid(np.tanh(x @ w0 + b0) @ w1 + b1)

    first = keras.ops.convert_to_numpy(model(x, training=False))
    second = keras.ops.convert_to_numpy(model(x, training=False))
    trained_a = keras.ops.convert_to_numpy(model(x, training=True))
    trained_b = keras.ops.convert_to_numpy(model(x, training=True))

    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(trained_a, first)
    assert not np.allclose(trained_a, trained_b)


# --------------------------------------------------------------------------- batch norm


def test_batch_norm_sits_between_linear_part_and_activation() -> None:
    """A batch-normalized hidden layer is Dense (no activation), BatchNormalization, Activation."""
    spec = regularizer(batch_norm={"layers": [0]})
    model = build_model(mlp((3, 2)), spec, (4,), 3)

    kinds = [type(layer).__name__ for layer in model.layers]
    hidden0, hidden1, _ = dense_layers(model)

    assert kinds == [
        "InputLayer",
        "Dense",
        "BatchNormalization",
        "Activation",
        "Dense",
        "Dense",
    ]
    assert hidden0.activation is keras.activations.linear
    assert model.layers[3].activation is keras.activations.relu
    assert hidden1.activation is keras.activations.relu


def test_batch_norm_output_matches_hand_computation() -> None:
    """In inference the network computes relu(BN(x W + b)), normalizing before the activation."""
    model = build_model(mlp((3,)), regularizer(batch_norm={}), (4,), 3)
    (w0, b0), (w1, b1) = set_known_weights(model)
    gamma = np.array([2.0, 0.5, 1.0], dtype=np.float32)
    beta = np.array([-1.0, 0.5, 0.2], dtype=np.float32)
    mean = np.array([0.5, -0.3, 1.0], dtype=np.float32)
    variance = np.array([4.0, 0.25, 1.5], dtype=np.float32)
    norm = next(layer for layer in model.layers if isinstance(layer, layers.BatchNormalization))
    norm.set_weights([gamma, beta, mean, variance])
    x = np.random.default_rng(6).normal(size=(5, 4)).astype(np.float32)
    z = x @ w0 + b0
    h = relu((z - mean) / np.sqrt(variance + norm.epsilon) * gamma + beta)

    output = keras.ops.convert_to_numpy(model(x, training=False))

    np.testing.assert_allclose(output, softmax(h @ w1 + b1), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- CNN and outputs


def test_cnn_blocks_follow_filters_pool_and_padding() -> None:
    """valid padding shrinks 8x8 by 2 per 3x3 conv; ``pool: [true, false]`` pools the first only."""
    model = build_model(
        cnn((4, 6), units=(5,), padding="valid", pool=[True, False]),
        regularizer(),
        (8, 8, 1),
        10,
    )
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    pools = [layer for layer in model.layers if isinstance(layer, layers.MaxPooling2D)]

    assert [conv.filters for conv in convs] == [4, 6]
    assert all(conv.padding == "valid" for conv in convs)
    # 8x8 -> conv 6x6 -> pool 3x3 -> conv 1x1, no second pool.
    assert [tuple(conv.output.shape[1:]) for conv in convs] == [(6, 6, 4), (1, 1, 6)]
    assert len(pools) == 1
    assert model.layers.index(pools[0]) == model.layers.index(convs[0]) + 1
    assert tuple(pools[0].output.shape[1:]) == (3, 3, 4)
    assert [dense.units for dense in dense_layers(model)] == [5, 10]


def test_cnn_pools_every_block_by_default_with_same_padding() -> None:
    """Without ``pool`` every block pools; same padding keeps each conv's input size."""
    model = build_model(cnn((4, 6), units=(5,)), regularizer(), (8, 8, 1), 10)
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    pools = [layer for layer in model.layers if isinstance(layer, layers.MaxPooling2D)]

    assert [tuple(conv.output.shape[1:]) for conv in convs] == [(8, 8, 4), (4, 4, 6)]
    assert [tuple(pool.output.shape[1:]) for pool in pools] == [(4, 4, 4), (2, 2, 6)]
    x = np.zeros((3, 8, 8, 1), dtype=np.float32)
    assert keras.ops.convert_to_numpy(model(x)).shape == (3, 10)


def test_mlp_flattens_image_input() -> None:
    """An MLP on 8x8x1 images flattens them to 64 inputs for its first dense layer."""
    model = build_model(mlp((3,)), regularizer(), (8, 8, 1), 10)

    assert dense_layers(model)[0].kernel.shape == (64, 3)


def test_binary_problem_gets_one_sigmoid_unit() -> None:
    """Two classes give a single sigmoid output with probabilities in (0, 1)."""
    model = build_model(mlp(), regularizer(), (4,), 2)
    output = dense_layers(model)[-1]
    x = np.random.default_rng(7).normal(size=(5, 4)).astype(np.float32)

    probabilities = keras.ops.convert_to_numpy(model(x))

    assert output.units == 1
    assert output.activation is keras.activations.sigmoid
    assert probabilities.shape == (5, 1)
    assert np.all((probabilities > 0) & (probabilities < 1))


@pytest.mark.parametrize("n_classes", [3, 10])
def test_multiclass_problem_gets_a_softmax_per_class(n_classes: int) -> None:
    """k classes give a k-unit softmax output whose rows sum to one."""
    model = build_model(mlp(), regularizer(), (4,), n_classes)
    output = dense_layers(model)[-1]
    x = np.random.default_rng(8).normal(size=(5, 4)).astype(np.float32)

    probabilities = keras.ops.convert_to_numpy(model(x))

    assert output.units == n_classes
    assert output.activation is keras.activations.softmax
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


# --------------------------------------------------------------------------- compiling


@pytest.mark.parametrize(
    ("name", "optimizer"),
    [
        ("adam", keras.optimizers.Adam),
        ("sgd", keras.optimizers.SGD),
        ("rmsprop", keras.optimizers.RMSprop),
    ],
)
def test_compile_uses_the_configured_optimizer(name: str, optimizer: type) -> None:
    """compile_model picks the named optimizer with the configured learning rate."""
    model = build_model(mlp(), regularizer(), (4,), 3)

    compile_model(model, {"optimizer": name, "learning_rate": 0.05}, 3)

    assert isinstance(model.optimizer, optimizer)
    assert isinstance(model.optimizer, keras.optimizers.Optimizer)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("n_classes", "loss"),
    [(2, keras.losses.BinaryCrossentropy), (4, keras.losses.SparseCategoricalCrossentropy)],
)
def test_compile_picks_the_loss_for_the_number_of_classes(n_classes: int, loss: type) -> None:
    """Binary problems use binary cross-entropy; k classes sparse categorical cross-entropy."""
    model = build_model(mlp(), regularizer(), (4,), n_classes)

    compile_model(model, {"optimizer": "adam", "learning_rate": 0.001}, n_classes)

    assert isinstance(model.loss, loss)
