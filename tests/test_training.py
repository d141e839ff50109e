"""Cells of seeds trained together: each seed faithful to model.fit and to training it alone."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from regbench.datasets import PreparedData
from regbench.training import (
    TIMING_FIELDS,
    configure_tensorflow,
    select_device,
    train,
    train_cell,
)
from regbench.worker import SOCKET_ENV

GPU = "/physical_device:GPU:0"

EARLY_STOPPING = {
    "monitor": "val_loss",
    "patience": 2,
    "min_delta": 0.0,
    "restore_best_weights": True,
}

#: Every piece whose semantics the loop must keep: penalties on kernels,
#: biases and activations, dropout (training only) and batch norm (moving stats).
ALL_PIECES: dict[str, Any] = {
    "name": "everything",
    "kernel": {"l1": 1.0e-3, "l2": 1.0e-3, "layers": "all"},
    "bias": {"l1": 0.0, "l2": 1.0e-3, "layers": "all"},
    "activity": {"l1": 1.0e-3, "l2": 0.0, "layers": [0]},
    "dropout": {"rate": 0.3, "layers": "all"},
    "batch_norm": {"layers": [1]},
}


def make_data(
    n_classes: int = 2, rows: int = 230, features: int = 6, seed: int = 0
) -> PreparedData:
    """A small classification problem whose training split ends in a partial batch."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows,
        n_features=features,
        n_informative=4,
        n_classes=n_classes,
        flip_y=0.1,
        random_state=seed,
    )
    x = x.astype(np.float32)
    n_train, n_val = int(rows * 0.6), int(rows * 0.2)
    return PreparedData(
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_val=x[n_train : n_train + n_val],
        y_val=y[n_train : n_train + n_val],
        x_test=x[n_train + n_val :],
        y_test=y[n_train + n_val :],
    )


def make_spec(
    regularizer: dict[str, Any], *, epochs: int = 4, seed: int = 3, **training: Any
) -> dict[str, Any]:
    """A fully resolved run spec for an MLP with two hidden layers."""
    return {
        "dataset": {"name": "toy"},
        "model": {"name": "mlp", "type": "mlp", "units": [16, 8], "activation": "relu"},
        "regularizer": regularizer,
        "training": {
            "epochs": epochs,
            "batch_size": 32,
            "optimizer": "adam",
            "learning_rate": 0.01,
            "validation_fraction": 0.2,
            "device": "cpu",
            **training,
        },
        "seed": seed,
    }


@pytest.fixture(scope="module", autouse=True)
def tensorflow_on_cpu() -> str:
    """TensorFlow set up as the jobs set it up: one thread, deterministic, CPU."""
    return configure_tensorflow(1, "cpu")


def cell_of(spec: dict[str, Any]) -> dict[str, Any]:
    """The cell spec of a run spec: everything but the seed."""
    return {key: value for key, value in spec.items() if key != "seed"}


def fit_like_a_notebook(
    spec: dict[str, Any],
    data: PreparedData,
    callbacks: Sequence[Any] = (),
    *,
    optimizer: Callable[[Any], Any] | None = None,
    loss: Any = None,
    builder: Callable[[], Any] | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """The seed's model trained by Keras's model.fit, batches in order, with ``callbacks``.

    ``optimizer(model)`` gives the optimizer (default: the spec's, plain); ``loss`` the
    objective's loss (default: the data loss), taking one-hot targets when it is Keras's
    categorical cross-entropy; ``builder`` the model (default: regbench's for the spec).
    The history's "ce" is the unsmoothed data loss, as a Keras metric computes it.
    """
    import keras

    from regbench.models import build_model, loss_function, make_optimizer

    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(spec["seed"])
    shape, n_classes = data.x_train.shape[1:], data.n_classes
    model = (
        builder() if builder else build_model(spec["model"], spec["regularizer"], shape, n_classes)
    )
    binary = n_classes == 2
    one_hot = isinstance(loss, keras.losses.CategoricalCrossentropy)

    def labels(y: np.ndarray) -> np.ndarray:
        if binary:
            return y.astype("float32").reshape(-1, 1)
        return np.eye(n_classes, dtype="float32")[y] if one_hot else y.astype("int64")

    metrics = (
        [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.BinaryCrossentropy(name="ce")]
        if binary
        else [
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.CategoricalCrossentropy(name="ce"),
        ]
        if one_hot
        else [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(name="ce"),
        ]
    )
    model.compile(
        optimizer=optimizer(model) if optimizer else make_optimizer(spec["training"]),
        loss=loss or loss_function(n_classes),
        metrics=metrics,
    )
    history = model.fit(
        data.x_train,
        labels(data.y_train),
        batch_size=spec["training"]["batch_size"],
        epochs=spec["training"]["epochs"],
        validation_data=(data.x_val, labels(data.y_val)),
        shuffle=False,
        callbacks=list(callbacks),
        verbose=0,
    )
    return model, history.history


def in_order(seed: int, epoch: int, n_rows: int) -> np.ndarray:
    """The batch order of fit(shuffle=False): rows as they come."""
    return np.arange(n_rows)


#: Our history columns and what model.fit calls the same numbers.
FIT_NAMES = {
    "objective": "loss",
    "loss": "ce",
    "accuracy": "accuracy",
    "val_objective": "val_loss",
    "val_loss": "val_ce",
    "val_accuracy": "val_accuracy",
}


#: Every piece but batch norm, for Adam (see the comparison with fit below).
ALL_BUT_BATCH_NORM = {k: v for k, v in ALL_PIECES.items() if k != "batch_norm"}


@pytest.mark.parametrize(
    ("n_classes", "regularizer", "optimizer", "learning_rate"),
    [
        (2, ALL_PIECES, "sgd", 0.1),
        (3, ALL_PIECES, "rmsprop", 0.01),
        (2, ALL_BUT_BATCH_NORM, "adam", 0.01),
        (3, ALL_BUT_BATCH_NORM, "adam", 0.01),
    ],
    ids=["binary-sgd", "3-classes-rmsprop", "binary-adam", "3-classes-adam"],
)
def test_every_seed_of_a_cell_trains_as_model_fit_does(
    n_classes: int, regularizer: dict[str, Any], optimizer: str, learning_rate: float
) -> None:
    """With the regularizer pieces and fit's batch order, each seed of a cell matches fit's
    history epoch by epoch (data loss, objective, accuracies) and its final kernels.

    Adam is compared without batch norm: the gradient of the bias of a layer followed by a
    batch norm is zero in exact arithmetic, so what a step computes is rounding noise, and
    Adam, which divides a gradient by its own magnitude, turns any noise into full-size steps.
    Two correct implementations then drift apart in that bias and the batch norm's moving
    mean (about 1e-5 relative on validation losses after a few epochs); SGD and RMSprop keep
    them within 2e-7.
    """
    data = make_data(n_classes)
    spec = make_spec(regularizer, epochs=4, optimizer=optimizer, learning_rate=learning_rate)
    cell = train_cell(cell_of(spec), [3, 8], data, log=lambda line: None, batch_order=in_order)
    for seed, ours in cell.items():
        model, reference = fit_like_a_notebook({**spec, "seed": seed}, data, callbacks=[])
        for column, name in FIT_NAMES.items():
            np.testing.assert_allclose(
                ours.history[column].to_numpy(),
                reference[name],
                rtol=1e-5,
                atol=1e-6,
                err_msg=f"seed {seed}: {column}",
            )
        for layer, kernel in ours.kernels.items():
            np.testing.assert_allclose(
                kernel, model.get_layer(layer).kernel.numpy(), rtol=1e-4, atol=1e-6
            )


def test_early_stopping_acts_per_seed_like_model_fit() -> None:
    """Seeds of one cell stop at their own epochs, each where fit stops that seed, and restore
    the same best weights."""
    import keras

    stopping = {
        "monitor": "val_loss",
        "patience": 2,
        "min_delta": 0.0,
        "restore_best_weights": True,
    }
    data = make_data(rows=120, features=12, seed=1)
    spec = make_spec({"name": "early", "early_stopping": stopping}, epochs=60, learning_rate=0.05)
    seeds = [1, 2, 5, 7]
    cell = train_cell(cell_of(spec), seeds, data, log=lambda line: None, batch_order=in_order)
    stopped = {seed: cell[seed].metrics["epochs_run"] for seed in seeds}
    assert max(stopped.values()) < 60, "the test needs seeds that stop early"
    assert len(set(stopped.values())) > 1, "the test needs seeds that stop at different epochs"
    for seed in seeds:
        callback = keras.callbacks.EarlyStopping(**stopping)
        model, reference = fit_like_a_notebook({**spec, "seed": seed}, data, [callback])
        assert stopped[seed] == len(reference["loss"])
        assert cell[seed].metrics["best_epoch"] == callback.best_epoch + 1
        for layer, kernel in cell[seed].kernels.items():
            np.testing.assert_allclose(
                kernel, model.get_layer(layer).kernel.numpy(), rtol=1e-4, atol=1e-6
            )


def plateau_spec(epochs: int, patience: int) -> dict[str, Any]:
    """An unregularized run spec under protocol plateau, any improvement counting."""
    return make_spec(
        {"name": "none"},
        epochs=epochs,
        learning_rate=0.05,
        protocol="plateau",
        patience=patience,
        min_delta=0.0,
    )


def test_the_plateau_protocol_stops_each_seed_of_a_cell_as_it_would_alone() -> None:
    """Under protocol plateau every seed of a cell stops at its own epoch, when its validation
    data loss has not improved for `patience` epochs, is tested with its best epoch's weights,
    and equals, bit for bit, that seed trained alone; more budget changes nothing for it."""
    data = make_data(rows=120, features=12, seed=1)
    spec = plateau_spec(epochs=80, patience=3)
    seeds = [1, 2, 5, 7]
    cell = train_cell(cell_of(spec), seeds, data, log=lambda line: None)
    stopped = {seed: cell[seed].metrics["epochs_run"] for seed in seeds}
    assert max(stopped.values()) < 80, "the test needs seeds that stop before the budget"
    assert len(set(stopped.values())) > 1, "the test needs seeds that stop at different epochs"
    doubled = {**spec, "training": {**spec["training"], "epochs": 160}}
    longer = train_cell(cell_of(doubled), seeds, data, log=lambda line: None)
    for seed in seeds:
        metrics, history = cell[seed].metrics, cell[seed].history
        assert metrics["stopped_by"] == "plateau"
        val_loss = history["val_loss"].to_numpy()
        best = int(np.argmin(val_loss))
        # The rule: the best epoch, then `patience` epochs without a lower validation loss.
        assert len(history) == best + 1 + 3
        assert metrics["tested_epoch"] == metrics["best_epoch"] == best + 1
        # Validation values are the tested weights': the best epoch's, not the last's.
        assert metrics["val_loss"] == metrics["best_val_loss"] == float(val_loss[best])
        alone = train({**spec, "seed": seed}, data, log=lambda line: None)
        assert without_timings(metrics) == without_timings(alone.metrics), seed
        assert history.equals(alone.history), seed
        for layer, kernel in alone.kernels.items():
            assert np.array_equal(cell[seed].kernels[layer], kernel), (seed, layer)
        # A converged run is the same whatever the budget, once the budget is not reached.
        unbudgeted = {"spec": None}  # The spec names its budget; nothing else may differ.
        assert (
            without_timings(longer[seed].metrics) | unbudgeted
            == without_timings(metrics) | unbudgeted
        )


def test_the_plateau_protocol_tests_the_best_epochs_weights_when_the_budget_ends_first() -> None:
    """A seed the budget ends before its plateau is not stopped by the rule and is tested
    with the weights of its best validation epoch, as Keras's EarlyStopping restores them."""
    import keras

    data = make_data(rows=120, features=12, seed=1)
    spec = plateau_spec(epochs=6, patience=50)
    result = train({**spec, "seed": 2}, data, log=lambda line: None, batch_order=in_order)
    assert result.metrics["stopped_by"] is None and result.metrics["epochs_run"] == 6
    callback = keras.callbacks.EarlyStopping(patience=50, restore_best_weights=True)
    # The data loss is what fit calls val_loss for a model without penalties.
    model, _ = fit_like_a_notebook({**spec, "seed": 2}, data, [callback])
    assert result.metrics["tested_epoch"] == callback.best_epoch + 1
    for layer, kernel in result.kernels.items():
        np.testing.assert_allclose(
            kernel, model.get_layer(layer).kernel.numpy(), rtol=1e-4, atol=1e-6
        )


@pytest.mark.parametrize(
    ("regularizer", "training"),
    [
        ({"name": "none"}, {}),
        ({"name": "early", "early_stopping": EARLY_STOPPING}, {}),
        ({"name": "none"}, {"protocol": "plateau", "patience": 3, "min_delta": 0.0}),
    ],
    ids=["fixed", "fixed-early-stopping", "plateau"],
)
def test_tunings_validation_value_is_the_tested_weights(
    regularizer: dict[str, Any], training: dict[str, Any]
) -> None:
    """The validation loss a tuned comparison picks a variant by (``val_loss``) is that of the
    weights the run is tested with: model.fit's model, left with the same weights, scores it
    on the validation split, and the history records it at the tested epoch."""
    import keras

    data = make_data(rows=120, features=12, seed=1)
    spec = make_spec(regularizer, epochs=30, learning_rate=0.05, **training)
    result = train({**spec, "seed": 5}, data, log=lambda line: None, batch_order=in_order)
    if "early_stopping" in regularizer:
        callbacks = [keras.callbacks.EarlyStopping(**EARLY_STOPPING)]
    elif training:
        callbacks = [keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)]
    else:
        callbacks = []
    model, _ = fit_like_a_notebook({**spec, "seed": 5}, data, callbacks)
    tested = result.metrics["tested_epoch"]
    assert (tested < result.metrics["epochs_run"]) == bool(callbacks)
    history = result.history.set_index("epoch")
    assert result.metrics["val_loss"] == history.loc[tested, "val_loss"]
    scores = model.evaluate(data.x_val, data.y_val.reshape(-1, 1), verbose=0, return_dict=True)
    assert result.metrics["val_loss"] == pytest.approx(scores["ce"], rel=1e-5, abs=1e-6)


#: A small CNN on 6x6 images: convolutions (run per seed), pooling and flattening (folded).
CNN_MODEL = {
    "name": "cnn",
    "type": "cnn",
    "filters": [3, 4],
    "kernel_size": 3,
    "pool_size": 2,
    "padding": "same",
    "pool": [True, False],
    "units": [5],
    "activation": "relu",
}


def image_data() -> PreparedData:
    """A 3-class problem on 6x6 one-channel images."""
    data = make_data(n_classes=3, rows=150, features=36, seed=2)
    return PreparedData(
        *(
            array.reshape(-1, 6, 6, 1) if axis == "x" else array
            for axis, array in (
                ("x", data.x_train),
                ("y", data.y_train),
                ("x", data.x_val),
                ("y", data.y_val),
                ("x", data.x_test),
                ("y", data.y_test),
            )
        )
    )


@pytest.mark.parametrize(
    ("regularizer", "model", "images"),
    [
        (ALL_PIECES, None, False),
        ({"name": "early", "early_stopping": EARLY_STOPPING}, None, False),
        ({"name": "bn_drop", **{k: ALL_PIECES[k] for k in ("batch_norm", "dropout")}}, None, False),
        ({"name": "everything_cnn", **ALL_PIECES, "batch_norm": {"layers": [0]}}, CNN_MODEL, True),
    ],
    ids=["all-pieces", "early-stopping", "batch-norm-dropout", "cnn"],
)
def test_each_seed_of_a_cell_is_bit_identical_to_training_it_alone(
    regularizer: dict[str, Any], model: dict[str, Any] | None, images: bool
) -> None:
    """Metrics, history and kernels of every seed of a cell equal, bit for bit, those of a
    cell of that seed alone, whatever seeds share the cell."""
    data = image_data() if images else make_data(n_classes=3)
    spec = make_spec(regularizer, epochs=8, learning_rate=0.05)
    if model is not None:
        spec["model"] = model
    together = train_cell(cell_of(spec), [4, 0, 9], data, log=lambda line: None)
    for seed, ours in together.items():
        alone = train({**spec, "seed": seed}, data, log=lambda line: None)
        assert without_timings(ours.metrics) == without_timings(alone.metrics), seed
        assert ours.history.equals(alone.history), seed
        assert ours.kernels.keys() == alone.kernels.keys()
        for layer, kernel in alone.kernels.items():
            assert np.array_equal(ours.kernels[layer], kernel), (seed, layer)


def own_split(data: PreparedData, seed: int, keep_test: bool = False) -> PreparedData:
    """``data`` split anew by ``seed``: parts of the same sizes holding other rows (with
    ``keep_test``, the test part stays, as an official test set does)."""
    parts = ("train", "val") if keep_test else ("train", "val", "test")
    sizes = [len(getattr(data, f"y_{part}")) for part in parts]
    x = np.concatenate([getattr(data, f"x_{part}") for part in parts])
    y = np.concatenate([getattr(data, f"y_{part}") for part in parts])
    rows = np.split(np.random.default_rng(seed).permutation(len(y)), np.cumsum(sizes)[:-1])
    arrays = {"x_test": data.x_test, "y_test": data.y_test}
    for part, chosen in zip(parts, rows, strict=True):
        arrays.update({f"x_{part}": x[chosen], f"y_{part}": y[chosen]})
    return PreparedData(**arrays)


@pytest.mark.parametrize(
    ("model", "keep_test"),
    [(None, False), (None, True), (CNN_MODEL, False)],
    ids=["mlp", "mlp-official-test-set", "cnn"],
)
def test_a_seed_of_a_cell_of_own_splits_is_bit_identical_to_training_it_alone(
    model: dict[str, Any] | None, keep_test: bool
) -> None:
    """With one split per seed (split.vary: seed), metrics, history and kernels of every seed
    of a cell equal, bit for bit, those of that seed trained alone on its own split."""
    base = make_data(n_classes=3) if model is None else image_data()
    regularizer = ALL_PIECES if model is None else {**ALL_PIECES, "batch_norm": {"layers": [0]}}
    spec = make_spec(regularizer, epochs=6, learning_rate=0.05)
    if model is not None:
        spec["model"] = model
    seeds = [4, 0, 9]
    splits = [own_split(base, seed, keep_test) for seed in seeds]
    together = train_cell(cell_of(spec), seeds, splits, log=lambda line: None)
    for seed, split in zip(seeds, splits, strict=True):
        alone = train({**spec, "seed": seed}, split, log=lambda line: None)
        ours = together[seed]
        assert without_timings(ours.metrics) == without_timings(alone.metrics), seed
        assert ours.history.equals(alone.history), seed
        for layer, kernel in alone.kernels.items():
            assert np.array_equal(ours.kernels[layer], kernel), (seed, layer)
    # Each seed trained on its own split: on the shared one it would have scored otherwise.
    shared = train_cell(cell_of(spec), seeds, base, log=lambda line: None)
    assert all(not shared[s].history.equals(together[s].history) for s in seeds)


def test_seeds_splits_of_other_sizes_are_refused() -> None:
    """A cell refuses per-seed data whose splits differ in size, naming the part."""
    spec = make_spec({"name": "none"})
    data = make_data()
    shorter = PreparedData(
        data.x_train[:-1], data.y_train[:-1], data.x_val, data.y_val, data.x_test, data.y_test
    )
    with pytest.raises(ValueError, match="train splits differ in shape"):
        train_cell(cell_of(spec), [0, 1], [data, shorter], log=lambda line: None)
    with pytest.raises(ValueError, match="one data set per seed, not 1"):
        train_cell(cell_of(spec), [0, 1], [data], log=lambda line: None)


def test_a_diverging_seed_leaves_the_other_seeds_untouched() -> None:
    """A seed whose loss becomes NaN stops as diverged while the cell's other seed trains on,
    exactly as it does alone."""
    data = make_data()
    data.x_train[5] = np.nan  # A row that makes every loss NaN once a seed trains on it.

    def order(seed: int, epoch: int, n_rows: int) -> np.ndarray:
        rows = np.arange(n_rows)
        # Seed 1 meets the poisoned row in its third epoch; seed 2 never does.
        return rows if seed == 1 and epoch >= 3 else np.where(rows == 5, 0, rows)

    spec = make_spec({"name": "none"}, epochs=6)
    cell = train_cell(cell_of(spec), [1, 2], data, log=lambda line: None, batch_order=order)
    assert cell[1].metrics["status"] == "diverged" and cell[1].metrics["diverged_epoch"] == 3
    assert cell[2].metrics["status"] == "ok" and cell[2].metrics["epochs_run"] == 6
    for seed in (1, 2):
        alone = train({**spec, "seed": seed}, data, log=lambda line: None, batch_order=order)
        assert without_timings(cell[seed].metrics) == without_timings(alone.metrics), seed
        assert cell[seed].history.equals(alone.history), seed


def test_test_loss_is_the_data_loss_and_the_objective_adds_the_penalty() -> None:
    """Without a penalty test_objective equals test_loss; kernel L1 or L2 makes it larger, in
    the history too."""
    data = make_data()
    losses = {}
    for name, kernel in (
        ("none", None),
        ("l1", {"l1": 0.01, "l2": 0.0}),
        ("l2", {"l1": 0.0, "l2": 0.01}),
    ):
        regularizer = (
            {"name": name}
            if kernel is None
            else {"name": name, "kernel": {**kernel, "layers": "all"}}
        )
        result = train(make_spec(regularizer, epochs=3), data, log=lambda line: None)
        losses[name] = result.metrics
        history = result.history
        if kernel is None:
            assert result.metrics["test_objective"] == result.metrics["test_loss"]
            assert history["objective"].equals(history["loss"])
        else:
            assert result.metrics["test_objective"] > result.metrics["test_loss"]
            assert (history["val_objective"] > history["val_loss"]).all()
        assert result.metrics["gap_loss"] == pytest.approx(
            result.metrics["test_loss"] - result.metrics["train_eval_loss"]
        )
    assert losses["l1"]["test_loss"] != losses["none"]["test_loss"]


@pytest.mark.parametrize(
    ("regularizer", "training"),
    [
        ({"name": "huge_l1", "kernel": {"l1": 1.0e38, "l2": 0.0, "layers": "all"}}, {}),
        ({"name": "none"}, {"learning_rate": 1.0e12, "optimizer": "sgd"}),
    ],
    ids=["huge-l1", "absurd-learning-rate"],
)
def test_divergence_is_recorded_not_raised(
    regularizer: dict[str, Any], training: dict[str, Any]
) -> None:
    """A loss that becomes NaN or infinite stops the run with status diverged and the epoch."""
    result = train(
        make_spec(regularizer, epochs=20, **training), make_data(), log=lambda line: None
    )
    assert result.metrics["status"] == "diverged"
    assert 1 <= result.metrics["diverged_epoch"] == result.metrics["epochs_run"] < 20
    assert "test_accuracy" not in result.metrics
    json.dumps(result.metrics, allow_nan=False)  # NaN never reaches metrics.json.


def test_a_cell_does_not_depend_on_earlier_cells_in_the_process() -> None:
    """Training A, then B, then A again gives A's metrics twice: no state leaks between cells."""
    data = make_data()
    first = train(make_spec(ALL_PIECES, seed=5), data, log=lambda line: None).metrics
    train(
        make_spec({"name": "drop", "dropout": {"rate": 0.5, "layers": "all"}}, seed=9),
        data,
        log=lambda line: None,
    )
    again = train(make_spec(ALL_PIECES, seed=5), data, log=lambda line: None).metrics
    assert without_timings(first) == without_timings(again)


def test_a_cell_needs_distinct_seeds() -> None:
    """A cell given no seed, or one seed twice, is refused with the seeds named."""
    with pytest.raises(ValueError, match=r"a cell needs distinct seeds, not \[1, 1\]"):
        train_cell(cell_of(make_spec({"name": "none"})), [1, 1], make_data())


def without_timings(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics with the wall-clock fields, and the list of seeds trained alongside, removed."""
    return {
        key: value
        for key, value in metrics.items()
        if key not in TIMING_FIELDS and key != "cell_seeds"
    }


def test_metrics_are_bit_identical_across_processes(tmp_path: Path) -> None:
    """Two fresh processes write identical metrics.json (timings aside), history and weights."""
    data = make_data()
    np.savez_compressed(
        tmp_path / "data.npz",
        **{
            f"{axis}_{part}": getattr(data, f"{axis}_{part}")
            for part in ("train", "val", "test")
            for axis in "xy"
        },
    )
    cell = json.dumps(cell_of(make_spec(ALL_PIECES, epochs=3)), sort_keys=True)
    # Fresh interpreters without a worker pool: jobs.train_cell trains in its own process.
    script = (
        "import sys; from regbench.jobs import train_cell; "
        "train_cell(sys.argv[1], '[11, 12]', sys.argv[2], ['m11.json', 'm12.json'], "
        "['h11.csv', 'h12.csv'], ['w11.npz', 'w12.npz'], 1, 'any')"
    )
    outputs = [tmp_path / "a", tmp_path / "b"]
    processes = []
    for run_dir in outputs:
        run_dir.mkdir()
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", script, cell, str(tmp_path / "data.npz")],
                cwd=run_dir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={k: v for k, v in os.environ.items() if k != SOCKET_ENV},
            )
        )
    for process in processes:
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 0, output[-3000:]
    for seed in (11, 12):
        first, second = (json.loads((d / f"m{seed}.json").read_text("utf-8")) for d in outputs)
        assert "train_seconds" in first
        for timing in TIMING_FIELDS:
            first.pop(timing, None), second.pop(timing, None)
        assert first["spec"]["seed"] == seed
        assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
        a, b = (d / f"h{seed}.csv" for d in outputs)
        assert a.read_bytes() == b.read_bytes()
        with np.load(outputs[0] / f"w{seed}.npz") as x, np.load(outputs[1] / f"w{seed}.npz") as y:
            assert all(np.array_equal(x[name], y[name]) for name in x.files)


@pytest.mark.parametrize(
    ("setting", "gpus", "expected"),
    [
        ("auto", [], "cpu"),
        ("auto", [GPU], "gpu"),
        ("cpu", [GPU], "cpu"),
        ("cpu", [], "cpu"),
        ("gpu", [GPU], "gpu"),
    ],
)
def test_device_selection(setting: str, gpus: list[str], expected: str) -> None:
    """auto takes a GPU where one is visible, cpu never does, gpu always does."""
    assert select_device(setting, gpus) == expected


def test_gpu_setting_without_a_gpu_is_a_clear_error() -> None:
    """Asking for a GPU on a machine without one names the setting and the problem."""
    with pytest.raises(RuntimeError, match=r"training\.device is 'gpu' but TensorFlow sees no GPU"):
        select_device("gpu", [])
    with pytest.raises(ValueError, match=r"training\.device must be one of auto, cpu, gpu"):
        select_device("tpu", [GPU])


def test_tensorflow_set_up_twice() -> None:
    """Setting TensorFlow up again to the same effect is harmless; another way is refused."""
    import tensorflow as tf

    assert configure_tensorflow(1, "cpu") == "CPU"
    if not tf.config.list_physical_devices("GPU"):
        assert configure_tensorflow(1, "auto") == "CPU"
    with pytest.raises(RuntimeError, match=r"runs 1 thread\(s\) on cpu; it cannot switch to 2"):
        configure_tensorflow(2, "cpu")


def test_spec_is_not_modified() -> None:
    """Training leaves the spec it was given as it was."""
    spec = make_spec({"name": "none"}, epochs=1)
    before = copy.deepcopy(spec)
    train(spec, make_data(), log=lambda line: None)
    assert spec == before
