"""Train one run: a compiled per-epoch loop that keeps Keras's semantics.

``model.fit`` spends most of a small model's epoch in per-epoch framework
overhead (data adapters, iterators, callbacks, a fresh validation pass
set-up), not in arithmetic. Here each epoch, all of its training batches and
the validation pass, is one call of one ``tf.function`` that calls the
model's own ``train_step`` and ``test_step``: losses, regularization
penalties, dropout and batch-norm updates, and the per-epoch metrics are
exactly Keras's. Early stopping is Keras's own callback, called as ``fit``
calls it. Every compiled function has a fixed input signature, so a run
traces each of them once whatever the sizes of its splits.

This is the only module (with :mod:`regbench.models`) that imports
TensorFlow, and it does so inside functions: the worker client imports this
package without paying for TensorFlow.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regbench.fingerprint import TRAINING_MODULES, code_digest

__all__ = [
    "DEVICE_SETTINGS",
    "HISTORY_COLUMNS",
    "TIMING_FIELDS",
    "BatchOrder",
    "RunResult",
    "configure_tensorflow",
    "describe_architecture",
    "select_device",
    "serialize_result",
    "train",
    "write_result",
]

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")

#: The settings of ``training.device``.
DEVICE_SETTINGS = ("auto", "cpu", "gpu")

#: Fields of ``metrics.json`` that measure wall-clock time. They are the only
#: ones that may differ between two runs of the same spec and seed; everything
#: else is bit-identical on the same machine (see ``tests/test_training.py``).
TIMING_FIELDS = frozenset({"train_seconds"})

#: ``order(epoch, n_rows)`` gives the row order of one epoch's batches.
BatchOrder = Callable[[int, int], np.ndarray]

# How this process's TensorFlow was set up, once it is.
_configured: _Setup | None = None


@dataclass
class RunResult:
    """What one run produced: metrics, per-epoch history and final kernels."""

    metrics: dict[str, Any]
    history: pd.DataFrame
    kernels: dict[str, np.ndarray] = field(default_factory=dict)


def select_device(setting: str, gpus: Sequence[str]) -> str:
    """Decide ``"cpu"`` or ``"gpu"`` from the ``training.device`` setting and the visible GPUs.

    ``auto`` takes a GPU where there is one; ``gpu`` insists on one.
    """
    if setting not in DEVICE_SETTINGS:
        raise ValueError(
            f"training.device must be one of {', '.join(DEVICE_SETTINGS)}, not {setting!r}"
        )
    if setting == "gpu" and not gpus:
        raise RuntimeError("training.device is 'gpu' but TensorFlow sees no GPU on this machine")
    return "gpu" if gpus and setting != "cpu" else "cpu"


def configure_tensorflow(threads: int, device: str) -> str:
    """Fix thread counts, determinism and the device; return the device used.

    Must run before TensorFlow executes its first operation. TensorFlow cannot
    change either setting once it has started, so a later call in the same
    process returns the same device when its settings come to the same thing
    (``auto`` and ``cpu`` on a machine without a GPU) and raises otherwise; a
    warm worker relies on that to refuse runs it would train differently.
    """
    global _configured
    if _configured is not None:
        wanted = select_device(device, _configured.gpus)
        if (threads, wanted) != (_configured.threads, _configured.kind):
            raise RuntimeError(
                f"TensorFlow in this process runs {_configured.threads} thread(s) on "
                f"{_configured.kind}; it cannot switch to {threads} thread(s) on {wanted}"
            )
        return _configured.label
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    gpus = [gpu.name for gpu in tf.config.list_physical_devices("GPU")]
    kind = select_device(device, gpus)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.config.experimental.enable_op_determinism()
    if kind == "cpu":
        tf.config.set_visible_devices([], "GPU")
        label = "CPU"
    else:
        for gpu in tf.config.list_physical_devices("GPU"):
            # Parallel jobs share a card: take memory as needed, not all of it up front.
            tf.config.experimental.set_memory_growth(gpu, True)
        label = f"GPU:0 ({gpus[0]})"
    _configured = _Setup(threads=threads, gpus=tuple(gpus), kind=kind, label=label)
    return label


@dataclass(frozen=True)
class _Setup:
    """How this process's TensorFlow was set up."""

    threads: int
    gpus: tuple[str, ...]
    kind: str
    label: str


def train(
    spec: Mapping[str, Any],
    data: Any,
    *,
    device: str = "CPU",
    log: Callable[[str], None] = print,
    batch_order: BatchOrder | None = None,
    reuse_compiled: bool = False,
) -> RunResult:
    """Train the run ``spec`` describes on prepared ``data`` and measure it.

    The result depends only on the spec, the data and the seed, not on what
    ran before in this process: Keras's global state is cleared, every random
    generator reseeded and the model built afresh first. ``batch_order`` replaces the seeded
    per-epoch shuffle (the faithfulness test uses it to replay ``fit``'s
    unshuffled order).

    ``reuse_compiled`` is for long-lived processes (the warm workers): a run
    whose architecture, regularizer pieces, optimizer, batch size and data
    shapes match an earlier one trains that run's model and compiled
    functions, after loading into them the complete state of a freshly built
    model (weights, batch-norm statistics, dropout seeds, zeroed optimizer
    slots). The result is identical; only the tracing, about half a second
    per run, is saved. Such runs seed only Python's and NumPy's generators and
    leave Keras's global state alone (see the comment below).
    """
    import keras
    import tensorflow as tf

    from regbench.metrics import classification_metrics, weight_statistics
    from regbench.models import build_model, compile_model

    training = spec["training"]
    seed = int(spec["seed"])
    if reuse_compiled:
        # Seed what regbench's models draw from: initializers and dropout layers
        # seed themselves from Python's generator. keras.backend.clear_session and
        # keras.utils.set_random_seed (through tf.random.set_seed) would also
        # empty TensorFlow's kernel caches, costing every kept compiled model
        # ~0.2 s to rebuild; what else they reset (names, TensorFlow's global
        # seed, Keras's global generator) no regbench op uses. The tests compare
        # such runs bit for bit with fresh processes.
        random.seed(seed)
        np.random.seed(seed)
    else:
        # Garbage collection is left to the caller: a full one costs 0.2 s.
        keras.backend.clear_session(free_memory=False)
        keras.utils.set_random_seed(seed)
    n_classes = data.n_classes
    label_dtype = "float32" if n_classes == 2 else "int64"
    batch_size = int(training["batch_size"])
    feature_shape = tuple(int(d) for d in data.x_train.shape[1:])
    x_train, y_train = tf.constant(data.x_train), tf.constant(data.y_train.astype(label_dtype))
    x_val, y_val = tf.constant(data.x_val), tf.constant(data.y_val.astype(label_dtype))

    model = build_model(spec["model"], spec["regularizer"], feature_shape, n_classes)
    compile_model(model, training, n_classes)
    model.optimizer.build(model.trainable_variables)
    key = _compiled_key(spec, feature_shape, n_classes) if reuse_compiled else None
    if key is not None and key in _compiled:
        _compiled.move_to_end(key)
        fresh, (model, loop) = model, _compiled[key]
        _load_state(fresh, model)
        log("reusing the model compiled for an earlier run of the same architecture")
    else:
        loop = _EpochLoop(model, batch_size, feature_shape, label_dtype)
        loop.build_metrics(x_train[:1], y_train[:1])
        if key is not None:
            _compiled[key] = (model, loop)
            while len(_compiled) > COMPILED_CACHE_SIZE:
                _compiled.popitem(last=False)
    early = _early_stopping(keras, model, spec["regularizer"])
    if batch_order is None:
        shuffle = np.random.default_rng(seed)

        def batch_order(epoch: int, n_rows: int) -> np.ndarray:
            return shuffle.permutation(n_rows)

    rows: list[dict[str, float]] = []
    status, diverged_epoch = "ok", None
    started = time.perf_counter()
    for epoch in range(1, int(training["epochs"]) + 1):
        order = np.asarray(batch_order(epoch, len(data.y_train)), dtype=np.int32)
        train_logs, val_logs = loop.epoch(x_train, y_train, order, x_val, y_val)
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
        fit_logs = loop.evaluate(x_train, y_train)
        scores = classification_metrics(data.y_test, loop.predict(data.x_test))
        metrics.update(
            test_loss=test_logs["loss"],
            test_accuracy=scores["accuracy"],
            test_f1_macro=scores["f1_macro"],
            test_roc_auc=scores["roc_auc"],
            train_eval_loss=fit_logs["loss"],
            train_eval_accuracy=fit_logs["accuracy"],
            gap_accuracy=fit_logs["accuracy"] - float(scores["accuracy"] or 0.0),
            gap_loss=test_logs["loss"] - fit_logs["loss"],
        )
        metrics.update(weight_statistics(list(kernels.values())))
    metrics["architecture"] = describe_architecture(model)
    # What the run was trained from, so `regbench why` can name what changed since.
    metrics["spec"] = dict(spec)
    metrics["code"] = code_digest(TRAINING_MODULES)
    return RunResult(metrics=metrics, history=history, kernels=kernels)


#: How many compiled models a long-lived process keeps for ``reuse_compiled``,
#: about 7 MB each for the default study's MLPs. Jobs run cell by cell
#: (``regbench.worker.schedule_ranks``), so a worker needs only its last few.
COMPILED_CACHE_SIZE = 8

# Compiled models and their loops by what determines their graphs, least recently used first.
_compiled: OrderedDict[str, tuple[Any, _EpochLoop]] = OrderedDict()


def _compiled_key(spec: Mapping[str, Any], feature_shape: tuple[int, ...], n_classes: int) -> str:
    """Everything the model's graph and the compiled loop depend on, and nothing else.

    Names do not change the arithmetic; early stopping and the epoch count act
    between the compiled calls, and the seed only sets the state that
    :func:`_load_state` copies in.
    """
    regularizer = {
        piece: settings
        for piece, settings in spec["regularizer"].items()
        if piece not in ("name", "early_stopping")
    }
    training = {k: v for k, v in spec["training"].items() if k not in ("epochs", "device")}
    model = {k: v for k, v in spec["model"].items() if k != "name"}
    return json.dumps(
        [model, regularizer, training, list(feature_shape), n_classes], sort_keys=True
    )


def _load_state(source: Any, target: Any) -> None:
    """Give ``target`` the complete state of the freshly built ``source``.

    A model's ``variables`` are its weights, batch-norm statistics and dropout
    seed-generator states; the optimizer's are its step count, learning rate
    and slots. Metrics are reset at the start of every epoch.
    """
    pairs = [
        *zip(source.variables, target.variables, strict=True),
        *zip(source.optimizer.variables, target.optimizer.variables, strict=True),
    ]
    for origin, destination in pairs:
        if tuple(origin.shape) != tuple(destination.shape):
            raise RuntimeError(
                f"cannot reuse a compiled model: {origin.path} has shape {origin.shape}, "
                f"the cached {destination.path} {destination.shape}"
            )
        destination.assign(origin)
    target.stop_training = False


class _EpochLoop:
    """Runs a whole epoch, or an evaluation, as one call of a compiled function."""

    def __init__(
        self, model: Any, batch_size: int, feature_shape: tuple[int, ...], label_dtype: str
    ) -> None:
        import tensorflow as tf

        self.model = model
        x_spec = tf.TensorSpec([None, *feature_shape], tf.float32)
        y_spec = tf.TensorSpec([None], tf.as_dtype(label_dtype))
        order_spec = tf.TensorSpec([None], tf.int32)

        def reset() -> None:
            for metric in model.metrics:
                metric.reset_state()

        def results() -> dict[str, Any]:
            return dict(model.get_metrics_result())

        def evaluate(x: Any, y: Any) -> dict[str, Any]:
            # What model.evaluate does: reset the metrics, then test_step per batch in order.
            reset()
            n = tf.shape(x)[0]
            for start in tf.range(0, n, batch_size):
                model.test_step((x[start : start + batch_size], y[start : start + batch_size]))
            return results()

        compiled_evaluate = tf.function(evaluate, input_signature=[x_spec, y_spec])

        def epoch(x: Any, y: Any, order: Any, x_val: Any, y_val: Any) -> Any:
            # What one epoch of model.fit does: reset, train_step per batch, read the
            # metrics, then the validation pass.
            reset()
            n = tf.shape(order)[0]
            for start in tf.range(0, n, batch_size):
                index = order[start : start + batch_size]
                model.train_step((tf.gather(x, index), tf.gather(y, index)))
            return results(), compiled_evaluate(x_val, y_val)

        def predict(x: Any) -> Any:
            return model(x, training=False)

        spec = [x_spec, y_spec, order_spec, x_spec, y_spec]
        self._epoch = tf.function(epoch, input_signature=spec)
        self._evaluate = compiled_evaluate
        self._predict = tf.function(predict, input_signature=[x_spec])

    def build_metrics(self, x: Any, y: Any) -> None:
        """Build the compiled metrics on one example, then reset every metric.

        Keras builds compiled metrics on their first update; a reset traced
        into the epoch function before that would compile to nothing, and the
        metrics would then accumulate across epochs. The example goes through
        the model in inference mode, which draws no dropout mask and leaves
        batch-norm statistics alone.
        """
        self.model.compute_metrics(x, y, self.model(x, training=False))
        for metric in self.model.metrics:
            metric.reset_state()
            if not getattr(metric, "built", True):
                raise RuntimeError(f"metric {metric.name} is not built; its reset would be lost")

    def epoch(
        self, x: Any, y: Any, order: np.ndarray, x_val: Any, y_val: Any
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Train one epoch over ``order``'s batches, then validate; both metric dicts."""
        train_logs, val_logs = self._epoch(x, y, order, x_val, y_val)
        return _floats(train_logs), _floats(val_logs)

    def evaluate(self, x: Any, y: Any) -> dict[str, float]:
        """Loss and metrics over ``x`` in batches, as ``model.evaluate`` reports them."""
        return _floats(self._evaluate(x, y))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Inference-mode outputs, in chunks so large test sets fit in memory."""
        chunk = 4096
        return np.concatenate(
            [np.asarray(self._predict(x[i : i + chunk])) for i in range(0, len(x), chunk)]
        )


def _floats(logs: Mapping[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in logs.items()}


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


def serialize_result(result: RunResult) -> dict[str, bytes]:
    """The bytes of ``metrics.json``, ``history.csv`` and ``weights.npz``, keyed by name."""
    weights = io.BytesIO()
    kernels: dict[str, Any] = dict(result.kernels)
    np.savez_compressed(weights, **kernels)
    history = result.history.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    metrics = json.dumps(result.metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return {
        "metrics": metrics.encode("utf-8"),
        "history": history.encode("utf-8"),
        "weights": weights.getvalue(),
    }


def write_result(
    result: RunResult, metrics_path: Path, history_path: Path, weights_path: Path
) -> None:
    """Write metrics (JSON), history (CSV) and kernels (npz); metrics last."""
    files = serialize_result(result)
    Path(weights_path).write_bytes(files["weights"])
    Path(history_path).write_bytes(files["history"])
    Path(metrics_path).write_bytes(files["metrics"])
