"""The compiled training loop: faithful to model.fit, deterministic, failures visible."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from regbench import training
from regbench.datasets import PreparedData
from regbench.training import (
    TIMING_FIELDS,
    configure_tensorflow,
    select_device,
    train,
)

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


def fit_like_a_notebook(spec: dict[str, Any], data: PreparedData, callbacks: list[Any]) -> Any:
    """The same model trained by model.fit on the same seed, batches in order."""
    import keras

    from regbench.models import build_model, compile_model

    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(spec["seed"])
    model = build_model(spec["model"], spec["regularizer"], data.x_train.shape[1:], data.n_classes)
    compile_model(model, spec["training"], data.n_classes)
    labels = "float32" if data.n_classes == 2 else "int64"
    history = model.fit(
        data.x_train,
        data.y_train.astype(labels),
        batch_size=spec["training"]["batch_size"],
        epochs=spec["training"]["epochs"],
        validation_data=(data.x_val, data.y_val.astype(labels)),
        shuffle=False,
        callbacks=callbacks,
        verbose=0,
    )
    return model, history.history


def in_order(epoch: int, n_rows: int) -> np.ndarray:
    """The batch order of fit(shuffle=False): rows as they come."""
    return np.arange(n_rows)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_per_epoch_history_matches_model_fit(n_classes: int) -> None:
    """With every regularizer piece and fit's batch order, every epoch's metrics equal fit's."""
    data = make_data(n_classes)
    spec = make_spec(ALL_PIECES, epochs=4)
    ours = train(spec, data, device="CPU", log=lambda line: None, batch_order=in_order)
    model, reference = fit_like_a_notebook(spec, data, callbacks=[])
    for column in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(
            ours.history[column].to_numpy(), reference[column], rtol=1e-5, atol=1e-6, err_msg=column
        )
    for name, kernel in ours.kernels.items():
        np.testing.assert_allclose(
            kernel, model.get_layer(name).kernel.numpy(), rtol=1e-4, atol=1e-6
        )


def test_early_stopping_stops_and_restores_like_model_fit() -> None:
    """Early stopping ends on the same epoch as fit's and restores the same best weights."""
    import keras

    stopping = {
        "monitor": "val_loss",
        "patience": 2,
        "min_delta": 0.0,
        "restore_best_weights": True,
    }
    data = make_data(rows=120, features=12, seed=1)
    spec = make_spec({"name": "early", "early_stopping": stopping}, epochs=60, learning_rate=0.05)
    ours = train(spec, data, device="CPU", log=lambda line: None, batch_order=in_order)
    callback = keras.callbacks.EarlyStopping(**stopping)
    model, reference = fit_like_a_notebook(spec, data, callbacks=[callback])
    assert ours.metrics["epochs_run"] < 60, "the test needs a run that stops early"
    assert ours.metrics["epochs_run"] == len(reference["loss"])
    assert ours.metrics["best_epoch"] == callback.best_epoch + 1
    for name, kernel in ours.kernels.items():
        np.testing.assert_allclose(
            kernel, model.get_layer(name).kernel.numpy(), rtol=1e-4, atol=1e-6
        )


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


def test_a_run_does_not_depend_on_earlier_runs_in_the_process() -> None:
    """Training A, then B, then A again gives A's metrics twice: no state leaks between runs."""
    data = make_data()
    first = train(make_spec(ALL_PIECES, seed=5), data, log=lambda line: None).metrics
    train(
        make_spec({"name": "drop", "dropout": {"rate": 0.5, "layers": "all"}}, seed=9),
        data,
        log=lambda line: None,
    )
    again = train(make_spec(ALL_PIECES, seed=5), data, log=lambda line: None).metrics
    assert without_timings(first) == without_timings(again)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (ALL_PIECES, ALL_PIECES),
        ({"name": "none"}, {"name": "early", "early_stopping": EARLY_STOPPING}),
    ],
    ids=["same-pieces-other-seed", "early-stopping-shares-the-graph"],
)
def test_a_reused_compiled_model_trains_like_a_fresh_one(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    """A run on a compiled model kept from an earlier run gives exactly a fresh build's result."""
    data = make_data()
    training._compiled.clear()
    train(make_spec(first, seed=5, epochs=6), data, log=lambda line: None, reuse_compiled=True)
    reused = train(
        make_spec(second, seed=6, epochs=6), data, log=lambda line: None, reuse_compiled=True
    )
    assert len(training._compiled) == 1, "the second run should have reused the first's model"
    fresh = train(make_spec(second, seed=6, epochs=6), data, log=lambda line: None)
    assert without_timings(reused.metrics) == without_timings(fresh.metrics)
    assert reused.history.equals(fresh.history)
    for name, kernel in fresh.kernels.items():
        assert np.array_equal(reused.kernels[name], kernel), name


def without_timings(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics with the wall-clock fields removed."""
    return {key: value for key, value in metrics.items() if key not in TIMING_FIELDS}


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
    spec = json.dumps(make_spec(ALL_PIECES, epochs=3, seed=11), sort_keys=True)
    # Fresh interpreters in folders without a worker pool: jobs.train_run trains in-process.
    script = (
        "import sys; from regbench.jobs import train_run; "
        "train_run(sys.argv[1], sys.argv[2], 'metrics.json', 'history.csv', 'weights.npz', 1)"
    )
    outputs = [tmp_path / "a", tmp_path / "b"]
    processes = []
    for run_dir in outputs:
        run_dir.mkdir()
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", script, spec, str(tmp_path / "data.npz")],
                cwd=run_dir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    for process in processes:
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 0, output[-3000:]
    first, second = (json.loads((d / "metrics.json").read_text("utf-8")) for d in outputs)
    assert set(TIMING_FIELDS) <= set(first)
    for timing in TIMING_FIELDS:
        first.pop(timing), second.pop(timing)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert (outputs[0] / "history.csv").read_bytes() == (outputs[1] / "history.csv").read_bytes()
    with np.load(outputs[0] / "weights.npz") as a, np.load(outputs[1] / "weights.npz") as b:
        assert all(np.array_equal(a[name], b[name]) for name in a.files)


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
