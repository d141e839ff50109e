"""The modern pieces and a study's own functions train as Keras's own layers, optimizer and loss
do under model.fit, and every seed of a cell trains bit for bit as it does alone."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_training import (
    CNN_MODEL,
    FIT_NAMES,
    cell_of,
    fit_like_a_notebook,
    image_data,
    in_order,
    make_data,
    make_spec,
    without_timings,
)

from regbench import custom
from regbench.datasets import PreparedData
from regbench.training import train, train_cell

REPO = Path(__file__).resolve().parents[1]

#: The example package's orthogonality penalty (examples/custom_regularizer).
EXAMPLE = REPO / "examples" / "custom_regularizer"


@pytest.fixture(autouse=True)
def example_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's package importable as a study beside it would make it."""
    monkeypatch.setenv(custom.STUDY_PATH_ENV, "")
    monkeypatch.setattr(sys, "path", list(sys.path))
    custom.use_study_path([EXAMPLE])


def quiet(line: str) -> None:
    """A training log that keeps nothing."""


def example_digest(module: str) -> str:
    """The digest a study's spec records for one of the example package's modules."""
    return hashlib.sha256((EXAMPLE / "ortho" / f"{module}.py").read_bytes()).hexdigest()[:16]


def own_penalty(penalizes: str = "kernel", layers: Any = "all") -> dict[str, Any]:
    """The custom piece for the example's orthogonality penalty, as a cell spec holds it."""
    return {
        "function": "ortho.penalties:orthogonality",
        "args": {"strength": 1.0e-2},
        "penalizes": penalizes,
        "layers": layers,
        "code": example_digest("penalties"),
    }


def assert_like_fit(spec: dict[str, Any], data: PreparedData, seeds: list[int], **reference: Any):
    """Each seed of a cell matches model.fit's history epoch by epoch and its final kernels."""
    cell = train_cell(cell_of(spec), seeds, data, log=lambda line: None, batch_order=in_order)
    for seed, ours in cell.items():
        model, history = fit_like_a_notebook({**spec, "seed": seed}, data, **reference)
        for column, name in FIT_NAMES.items():
            np.testing.assert_allclose(
                ours.history[column].to_numpy(),
                history[name],
                rtol=1e-5,
                atol=1e-6,
                err_msg=f"seed {seed}: {column}",
            )
        kernels = {layer.name: layer for layer in model.layers if hasattr(layer, "kernel")}
        for name, kernel in ours.kernels.items():
            np.testing.assert_allclose(kernel, kernels[name].kernel.numpy(), rtol=1e-4, atol=1e-6)
    return cell


def keras_decay(rate: float, layer: str) -> Callable[[Any], Any]:
    """Keras's own Adam with weight_decay, excluding every variable but one layer's kernel."""

    def optimizer(model: Any) -> Any:
        import keras

        adam = keras.optimizers.Adam(learning_rate=0.01, weight_decay=rate)
        decayed = model.get_layer(layer).kernel
        adam.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if v is not decayed]
        )
        return adam

    return optimizer


def test_weight_decay_is_keras_optimizers_decoupled_decay() -> None:
    """Weight decay on chosen layers trains as Keras's Adam(weight_decay) limited to those
    kernels, adds nothing to the objective, and shrinks the decayed kernel."""
    data = make_data(n_classes=3)
    decay = {"name": "decay", "weight_decay": {"rate": 0.5, "layers": [0]}}
    spec = make_spec(decay, epochs=4)
    cell = assert_like_fit(spec, data, [3, 8], optimizer=keras_decay(0.5, "hidden0_dense"))
    plain = train_cell(cell_of(make_spec({"name": "none"}, epochs=4)), [3], data, log=print)
    assert cell[3].history["objective"].equals(cell[3].history["loss"])
    decayed, undecayed = cell[3].kernels["hidden0_dense"], plain[3].kernels["hidden0_dense"]
    assert np.linalg.norm(decayed) < np.linalg.norm(undecayed)


@pytest.mark.parametrize(("optimizer", "same"), [("sgd", True), ("adam", False)])
def test_weight_decay_equals_half_its_rate_of_l2_only_under_plain_sgd(
    optimizer: str, same: bool
) -> None:
    """As the Method section says: with plain SGD a weight decay rate r trains the kernels an L2
    penalty of r/2 does, while Adam rescales the L2 gradient and not the decay."""
    data = make_data(n_classes=3)
    decay = {"name": "decay", "weight_decay": {"rate": 0.2, "layers": "all"}}
    l2 = {"name": "l2", "kernel": {"l1": 0.0, "l2": 0.1, "layers": "all"}}
    runs = [
        train(make_spec(one, epochs=3, optimizer=optimizer, learning_rate=0.05), data, log=quiet)
        for one in (decay, l2)
    ]
    kernels = [run.kernels["hidden0_dense"] for run in runs]
    assert np.allclose(*kernels, rtol=1e-4, atol=1e-6) == same
    assert runs[0].history["objective"].equals(runs[0].history["loss"])
    assert (runs[1].history["objective"] > runs[1].history["loss"]).all()


def test_max_norm_is_keras_constraint_and_bounds_every_unit() -> None:
    """A max-norm piece trains as Keras's MaxNorm constraint, and leaves no unit's incoming
    weights (a dense kernel's column, a convolution's filter) above the bound."""
    spec = make_spec({"name": "mn", "max_norm": {"value": 0.5, "layers": "all"}}, epochs=3)
    spec["model"] = CNN_MODEL
    spec["training"].update(optimizer="sgd", learning_rate=0.1)
    cell = assert_like_fit(spec, image_data(), [1, 2])
    for ours in cell.values():
        for name, kernel in ours.kernels.items():
            if name.startswith("hidden"):
                norms = np.sqrt(np.sum(kernel**2, axis=tuple(range(kernel.ndim - 1))))
                assert norms.max() <= 0.5 + 1e-6, name


@pytest.mark.parametrize(
    ("regularizer", "images"),
    [
        ({"name": "noise_in", "gaussian_noise": {"stddev": 0.3, "layers": "inputs"}}, False),
        ({"name": "noise", "gaussian_noise": {"stddev": 0.3, "layers": "all"}}, False),
        (
            {"name": "augment", "augmentation": {"flip": "horizontal", "translate": 0.2}},
            True,
        ),
        ({"name": "turn", "augmentation": {"rotate": 0.1, "zoom": 0.2}}, True),
        ({"name": "spatial", "spatial_dropout": {"rate": 0.3, "layers": "conv"}}, True),
        ({"name": "mine", "custom": own_penalty()}, False),
        ({"name": "mine_activity", "custom": own_penalty("activity", [1])}, False),
    ],
    ids=[
        "input-noise",
        "hidden-noise",
        "flip-translate",
        "rotate-zoom",
        "spatial",
        "own",
        "own-act",
    ],
)
def test_random_layers_and_own_penalties_train_as_model_fit(
    regularizer: dict[str, Any], images: bool
) -> None:
    """Noise, augmentation and spatial dropout draw as Keras's layers do (training only, from
    each seed's own generator), and the study's own penalty counts as a Keras regularizer."""
    spec = make_spec(regularizer, epochs=3)
    if images:
        spec["model"] = CNN_MODEL
    assert_like_fit(spec, image_data() if images else make_data(n_classes=3), [4, 0])


@pytest.mark.parametrize("n_classes", [2, 3])
def test_label_smoothing_trains_on_kerass_smoothed_loss(n_classes: int) -> None:
    """With label smoothing the objective is Keras's smoothed cross-entropy, as fit trains on
    it, while the history's data loss stays the unsmoothed cross-entropy."""
    import keras

    loss = (
        keras.losses.BinaryCrossentropy(label_smoothing=0.2)
        if n_classes == 2
        else keras.losses.CategoricalCrossentropy(label_smoothing=0.2)
    )
    spec = make_spec({"name": "smooth", "label_smoothing": {"amount": 0.2}}, epochs=3)
    cell = assert_like_fit(spec, make_data(n_classes=n_classes), [5, 6], loss=loss)
    assert (cell[5].history["objective"] != cell[5].history["loss"]).all()


def test_test_loss_stays_the_unsmoothed_cross_entropy() -> None:
    """Under label smoothing, test_loss is the plain cross-entropy of the test predictions and
    test_objective the smoothed one, both as Keras computes them on fit's model."""
    import keras

    data = make_data(n_classes=3)
    spec = make_spec({"name": "smooth", "label_smoothing": {"amount": 0.3}}, epochs=3)
    result = train(spec, data, log=lambda line: None, batch_order=in_order)
    smoothing = keras.losses.CategoricalCrossentropy(label_smoothing=0.3)
    model, _ = fit_like_a_notebook(spec, data, loss=smoothing)
    probabilities = model.predict(data.x_test, verbose=0)
    plain = keras.losses.SparseCategoricalCrossentropy()(data.y_test, probabilities)
    smoothed = smoothing(np.eye(3, dtype="float32")[data.y_test], probabilities)
    assert result.metrics["test_loss"] == pytest.approx(float(plain), rel=1e-5)
    assert result.metrics["test_objective"] == pytest.approx(float(smoothed), rel=1e-5)
    assert result.metrics["test_objective"] != pytest.approx(result.metrics["test_loss"])


def residual_model(units: int = 8) -> dict[str, Any]:
    """The example's residual MLP as a cell spec names a custom model."""
    return {
        "name": "residual",
        "type": "custom",
        "function": "ortho.nets:residual_mlp",
        "args": {"units": units, "blocks": 1},
        "input": "any",
        "code": example_digest("nets"),
    }


def modern_cells() -> list[tuple[dict[str, Any], dict[str, Any] | None, bool]]:
    """(regularizer, model, images): every new piece on regbench's MLP and CNN and on a
    custom model, composed with classic pieces."""
    mlp = {
        "name": "modern_mlp",
        "kernel": {"l1": 0.0, "l2": 1.0e-3, "layers": "all"},
        "dropout": {"rate": 0.2, "layers": [0]},
        "weight_decay": {"rate": 0.1, "layers": [1]},
        "max_norm": {"value": 1.0, "layers": "all"},
        "gaussian_noise": {"stddev": 0.2, "layers": "all"},
        "label_smoothing": {"amount": 0.1},
        "custom": own_penalty(layers="dense"),
    }
    cnn = {
        "name": "modern_cnn",
        "augmentation": {"flip": "horizontal", "rotate": 0.05, "zoom": 0.1, "translate": 0.1},
        "gaussian_noise": {"stddev": 0.1, "layers": "inputs"},
        "spatial_dropout": {"rate": 0.2, "layers": "conv"},
        "batch_norm": {"layers": [0]},
        "max_norm": {"value": 2.0, "layers": "all"},
        "weight_decay": {"rate": 0.05, "layers": "all"},
    }
    own = {
        "name": "on_own_model",
        "kernel": {"l1": 0.0, "l2": 1.0e-3, "layers": "all"},
        "max_norm": {"value": 1.0, "layers": "dense"},
        "gaussian_noise": {"stddev": 0.2, "layers": "inputs"},
        "weight_decay": {"rate": 0.1, "layers": [0]},
        "custom": own_penalty("bias"),
    }
    return [(mlp, None, False), (cnn, CNN_MODEL, True), (own, residual_model(), False)]


@pytest.mark.parametrize(
    ("regularizer", "model", "images"), modern_cells(), ids=["mlp", "cnn", "custom-model"]
)
def test_each_seed_with_the_new_pieces_is_bit_identical_to_training_it_alone(
    regularizer: dict[str, Any], model: dict[str, Any] | None, images: bool
) -> None:
    """With every new piece at once, each seed's metrics, history and kernels in a cell of three
    equal, bit for bit, those of the seed trained alone."""
    data = image_data() if images else make_data(n_classes=3)
    spec = make_spec(regularizer, epochs=4, learning_rate=0.05)
    if model is not None:
        spec["model"] = model
    together = train_cell(cell_of(spec), [4, 0, 9], data, log=lambda line: None)
    for seed, ours in together.items():
        alone = train({**spec, "seed": seed}, data, log=lambda line: None)
        assert ours.metrics["status"] == "ok"
        assert without_timings(ours.metrics) == without_timings(alone.metrics), seed
        assert ours.history.equals(alone.history), seed
        assert ours.kernels.keys() == alone.kernels.keys()
        for layer, kernel in alone.kernels.items():
            assert np.array_equal(ours.kernels[layer], kernel), (seed, layer)


def native_residual(l2: float, max_norm: float) -> Any:
    """The example's residual MLP with the penalty and constraint given to Keras's layers."""
    import keras
    from keras import layers

    options = {
        "kernel_regularizer": keras.regularizers.L2(l2),
        "kernel_constraint": keras.constraints.MaxNorm(max_norm),
    }
    inputs = keras.Input(shape=(6,))
    x = layers.Flatten()(inputs)
    x = layers.Dense(8, activation="relu", **options)(x)
    x = layers.Add()([x, layers.Dense(8, activation="relu", **options)(x)])
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(x))


def test_a_custom_model_gets_the_pieces_as_if_keras_had_built_it_with_them() -> None:
    """The study's own model with a kernel penalty and a max-norm piece trains as the same model
    built with Keras's kernel_regularizer and kernel_constraint, under model.fit."""
    spec = make_spec(
        {
            "name": "l2_max_norm",
            "kernel": {"l1": 0.0, "l2": 1.0e-2, "layers": "all"},
            "max_norm": {"value": 0.8, "layers": "all"},
        },
        epochs=3,
    )
    spec["model"] = residual_model()
    assert_like_fit(
        spec, make_data(n_classes=3), [2, 7], builder=lambda: native_residual(1e-2, 0.8)
    )


BAD_NETS = """
import keras


def logits(input_shape, n_classes):
    inputs = keras.Input(shape=input_shape)
    return keras.Model(inputs, keras.layers.Dense(n_classes)(inputs))


def number(input_shape, n_classes):
    return 3
"""


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (
            "logits",
            r"models\.bad\.function: bad_nets:logits built a model whose output is \(None, 3\) "
            r"from a Dense layer; expected one input of shape \(6,\) and 3 softmax output\(s\)",
        ),
        ("number", r"models\.bad\.function: bad_nets:number returned int, not a Keras model"),
    ],
)
def test_a_custom_model_that_breaks_the_contract_fails_clearly(
    tmp_path: Path, function: str, message: str
) -> None:
    """A model function returning no model, or one without probabilities out, is named."""
    from regbench.models import build_model

    (tmp_path / "bad_nets.py").write_text(BAD_NETS, "utf-8")
    custom.use_study_path([tmp_path])
    model = {
        "name": "bad",
        "type": "custom",
        "function": f"bad_nets:{function}",
        "args": {},
        "code": custom.module_digest("bad_nets"),
    }
    with pytest.raises(ValueError, match=message):
        build_model(model, {"name": "none"}, (6,), 3)


def test_a_changed_module_is_refused_at_training() -> None:
    """A run whose spec names other source than the module's file now holds is not trained."""
    spec = make_spec({"name": "mine", "custom": {**own_penalty(), "code": "0123456789abcdef"}})
    with pytest.raises(ValueError, match=r"the source of ortho\.penalties changed since the study"):
        train(spec, make_data(), log=lambda line: None)
