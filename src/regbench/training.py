"""Train one run: a compiled per-epoch loop that keeps Keras's semantics.

``model.fit`` spends most of a small model's epoch in per-epoch framework
overhead (iterators, callbacks, a fresh validation pass set-up). Here each
epoch's batches run inside one ``tf.function`` that calls the model's own
``train_step``, and validation likewise calls ``test_step``: losses,
regularization penalties, dropout and batch-norm updates are exactly Keras's.
Early stopping is Keras's own callback. This is the only module (with
:mod:`regbench.models`) that imports TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["RunResult", "configure_tensorflow", "train", "write_result"]

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class RunResult:
    """What one run produced: metrics, per-epoch history and final kernels."""

    metrics: dict[str, Any]
    history: pd.DataFrame
    kernels: dict[str, np.ndarray] = field(default_factory=dict)


def configure_tensorflow(threads: int, device: str) -> str:
    """Fix thread counts, determinism and the device; return the device used.

    Must run before TensorFlow executes its first operation.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise RuntimeError("training.device is 'gpu' but TensorFlow sees no GPU on this machine")
    if device == "cpu" or not gpus:
        tf.config.set_visible_devices([], "GPU")
        return "CPU"
    for gpu in gpus:
        # Parallel jobs share a card: take memory as needed, not all of it up front.
        tf.config.experimental.set_memory_growth(gpu, True)
    return f"GPU:0 ({gpus[0].name})"


def train(
    spec: Mapping[str, Any],
    data: Any,
    *,
    device: str = "CPU",
    log: Callable[[str], None] = print,
) -> RunResult:
    """Train the run ``spec`` describes on prepared ``data`` and measure it."""
    import keras
    import tensorflow as tf

    from regbench.metrics import classification_metrics, weight_statistics
    from regbench.models import build_model, compile_model

    training = spec["training"]
    seed = int(spec["seed"])
    keras.utils.set_random_seed(seed)
    n_classes = data.n_classes
    model = build_model(spec["model"], spec["regularizer"], data.x_train.shape[1:], n_classes)
    compile_model(model, training, n_classes)
    model.optimizer.build(model.trainable_variables)

    label_dtype = "float32" if n_classes == 2 else "int64"
    x_train = tf.constant(data.x_train)
    y_train = tf.constant(data.y_train.astype(label_dtype))
    batch_size = int(training["batch_size"])
    loop = _EpochLoop(model, batch_size)
    early = _early_stopping(keras, model, spec["regularizer"])
    order = np.random.default_rng(seed)

    rows: list[dict[str, float]] = []
    status, diverged_epoch = "ok", None
    started = time.perf_counter()
    for epoch in range(1, int(training["epochs"]) + 1):
        permutation = order.permutation(len(data.y_train)).astype(np.int32)
        train_logs = loop.train_epoch(x_train, y_train, tf.constant(permutation))
        val_logs = loop.evaluate(data.x_val, data.y_val.astype(label_dtype))
        row = {
            "epoch": epoch,
            "loss": train_logs["loss"],
            "accuracy": train_logs["accuracy"],
            "val_loss": val_logs["loss"],
            "val_accuracy": val_logs["accuracy"],
        }
        rows.append(row)
        if epoch == 1 or epoch % 50 == 0:
            log(
                f"epoch {epoch}/{training['epochs']}: loss {row['loss']:.4f} "
                f"val_loss {row['val_loss']:.4f} val_accuracy {row['val_accuracy']:.4f}"
            )
        if not all(math.isfinite(row[k]) for k in ("loss", "val_loss")):
            status, diverged_epoch = "diverged", epoch
            log(f"epoch {epoch}: loss is not finite; the run diverged")
            break
        if early is not None:
            early.on_epoch_end(epoch - 1, {k: v for k, v in row.items() if k != "epoch"})
            if model.stop_training:
                log(f"epoch {epoch}: early stopping ({early.monitor} did not improve)")
                break
    if early is not None:
        early.on_train_end()  # Restores the best weights when asked to.
    train_seconds = time.perf_counter() - started

    history = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    if early is not None and early.best_epoch is not None:
        best = int(early.best_epoch)
    else:
        best = int(history["val_loss"].fillna(np.inf).to_numpy().argmin())
    metrics: dict[str, Any] = {
        "status": status,
        "diverged_epoch": diverged_epoch,
        "device": device,
        "epochs_run": len(history),
        "best_epoch": best + 1,
        "train_loss": _finite(history["loss"].iloc[-1]),
        "train_accuracy": _finite(history["accuracy"].iloc[-1]),
        "val_loss": _finite(history["val_loss"].iloc[-1]),
        "val_accuracy": _finite(history["val_accuracy"].iloc[-1]),
        "best_val_loss": _finite(history["val_loss"].iloc[best]),
        "best_val_accuracy": _finite(history["val_accuracy"].iloc[best]),
        "train_seconds": round(train_seconds, 3),
        "n_params": int(model.count_params()),
    }
    kernels = {
        layer.name: np.asarray(layer.kernel.numpy())
        for layer in model.layers
        if hasattr(layer, "kernel") and layer.kernel is not None
    }
    if status == "ok":
        test_logs = loop.evaluate(data.x_test, data.y_test.astype(label_dtype))
        fit_logs = loop.evaluate(data.x_train, data.y_train.astype(label_dtype))
        scores = classification_metrics(data.y_test, loop.predict(data.x_test))
        metrics.update(
            test_loss=test_logs["loss"],
            test_accuracy=scores["accuracy"],
            test_f1_macro=scores["f1_macro"],
            test_roc_auc=scores["roc_auc"],
            train_eval_loss=fit_logs["loss"],
            train_eval_accuracy=fit_logs["accuracy"],
            gap_accuracy=fit_logs["accuracy"] - scores["accuracy"],
            gap_loss=test_logs["loss"] - fit_logs["loss"],
        )
        metrics.update(weight_statistics(list(kernels.values())))
    metrics["architecture"] = describe_architecture(model)
    return RunResult(metrics=metrics, history=history, kernels=kernels)


class _EpochLoop:
    """Runs whole epochs and evaluations as single compiled calls."""

    def __init__(self, model: Any, batch_size: int) -> None:
        import tensorflow as tf

        self.model = model
        self.batch_size = batch_size

        @tf.function(reduce_retracing=True)
        def train_epoch(x: Any, y: Any, permutation: Any) -> None:
            n = tf.shape(permutation)[0]
            for start in tf.range(0, n, batch_size):
                index = permutation[start : start + batch_size]
                model.train_step((tf.gather(x, index), tf.gather(y, index)))

        @tf.function(reduce_retracing=True)
        def test_epoch(x: Any, y: Any) -> None:
            n = tf.shape(x)[0]
            for start in tf.range(0, n, batch_size):
                model.test_step((x[start : start + batch_size], y[start : start + batch_size]))

        @tf.function(reduce_retracing=True)
        def predict(x: Any) -> Any:
            return model(x, training=False)

        self._train_epoch = train_epoch
        self._test_epoch = test_epoch
        self._predict = predict

    def _results(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.model.get_metrics_result().items()}

    def _reset(self) -> None:
        for metric in self.model.metrics:
            metric.reset_state()

    def train_epoch(self, x: Any, y: Any, permutation: Any) -> dict[str, float]:
        self._reset()
        self._train_epoch(x, y, permutation)
        return self._results()

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        self._reset()
        self._test_epoch(x, y)
        return self._results()

    def predict(self, x: np.ndarray) -> np.ndarray:
        chunk = 4096
        return np.concatenate(
            [np.asarray(self._predict(x[i : i + chunk])) for i in range(0, len(x), chunk)]
        )


def _early_stopping(keras: Any, model: Any, regularizer: Mapping[str, Any]) -> Any:
    if "early_stopping" not in regularizer:
        return None
    settings = regularizer["early_stopping"]
    callback = keras.callbacks.EarlyStopping(
        monitor=settings["monitor"],
        patience=settings["patience"],
        min_delta=settings["min_delta"],
        restore_best_weights=settings["restore_best_weights"],
    )
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    return callback


def describe_architecture(model: Any) -> list[dict[str, Any]]:
    """Each layer's name, class, output shape and parameter count."""
    return [
        {
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": [d if d is None else int(d) for d in layer.output.shape],
            "params": int(layer.count_params()),
        }
        for layer in model.layers
    ]


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def write_result(result: RunResult, metrics_path: Path, history_path: Path, weights_path: Path) -> None:
    """Write metrics (JSON), history (CSV) and kernels (npz); metrics last."""
    np.savez_compressed(weights_path, **result.kernels)
    result.history.to_csv(history_path, index=False, float_format="%.6g")
    text = json.dumps(result.metrics, indent=2, sort_keys=True, allow_nan=False)
    metrics_path.write_text(text + "\n", encoding="utf-8")
