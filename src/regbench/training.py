"""Train a cell: all seeds of one dataset x model x regularizer together, each as if alone.

A study is many small runs, and a small model's run is dominated by fixed
costs (building and tracing the model, per-batch framework overhead), not by
arithmetic. Here the seeds of a cell train as one
:class:`regbench.seedstack.SeedStack`: one compiled function per epoch runs
every training batch of every seed, then the validation pass, so tracing and
per-batch overhead are paid once per cell instead of once per seed.

Each seed trains exactly as it would alone (a cell of one seed): its own
initial weights (its model is built by the same builder after seeding), its
own batch order (a NumPy generator seeded with the seed), its own dropout
masks (its own Keras seed generators) and its own optimizer state. Losses,
penalties and metrics follow Keras's ``train_step``/``test_step``
arithmetic, compared with ``model.fit`` epoch by epoch in
``tests/test_training.py``. Keras's own ``EarlyStopping`` watches each seed
through a :class:`~regbench.seedstack.SeedView`; a seed that stops or
diverges keeps its final (or restored best) weights while the others go on.

This is the only module (with :mod:`regbench.models` and
:mod:`regbench.seedstack`) that imports TensorFlow, and it does so inside
functions, so that the job side of :mod:`regbench.worker` does not pay for it.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from regbench.config import PLATEAU
from regbench.datasets import SPLITS
from regbench.fingerprint import TRAINING_MODULES, code_digest

__all__ = [
    "CODE_DIGEST",
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
    "train_cell",
]

#: The training code this process runs: the digest of its source when it was imported.
CODE_DIGEST = code_digest(TRAINING_MODULES)

#: Per-epoch history. ``loss`` and ``val_loss`` are the data loss (cross-entropy) alone;
#: ``objective`` and ``val_objective`` add every penalty, as Keras's ``fit`` reports "loss".
HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "objective",
    "accuracy",
    "val_loss",
    "val_objective",
    "val_accuracy",
)

#: The settings of ``training.device``.
DEVICE_SETTINGS = ("auto", "cpu", "gpu")

#: Fields of ``metrics.json`` that measure the machine, not the model: wall-clock
#: time, and the peak memory of the process that trained (added by the job or
#: worker, :mod:`regbench.worker`). They are the only ones that may differ between
#: two runs of the same spec and seed in cells of the same seeds; everything else
#: is bit-identical on the same machine (see ``tests/test_training.py``). A cell of
#: other seeds also records other ``cell_seeds``, the seeds its job trained together.
TIMING_FIELDS = frozenset({"train_seconds", "peak_rss_mb"})

#: ``order(seed, epoch, n_rows)`` gives the rows of one seed's batches in one epoch.
BatchOrder = Callable[[int, int, int], np.ndarray]

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
    # A cell's compiled functions are small and run a few dozen times each; optimizing
    # their graphs (Grappler) takes longer, about 0.3 s per cell, than it saves.
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
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
) -> RunResult:
    """Train the one run ``spec`` describes: a cell of its seed alone."""
    seed = int(spec["seed"])
    cell = {key: value for key, value in spec.items() if key != "seed"}
    results = train_cell(cell, [seed], data, device=device, log=log, batch_order=batch_order)
    return results[seed]


def train_cell(
    cell: Mapping[str, Any],
    seeds: Sequence[int],
    data: Any,
    *,
    device: str = "CPU",
    log: Callable[[str], None] = print,
    batch_order: BatchOrder | None = None,
) -> dict[int, RunResult]:
    """Train every seed of a cell together on prepared ``data``; each seed's result by seed.

    ``cell`` is a run spec without its seed (dataset, model, regularizer,
    training). ``data`` is one prepared data set every seed trains on, or one
    per seed, in the order of ``seeds`` (``split.vary: seed``). Each seed's
    result equals training that seed alone on its data with the same spec,
    whatever other seeds share the cell, and depends on nothing that ran
    before in this process: Keras's global state is cleared and each seed's
    model built after seeding every generator with the seed.
    ``batch_order`` replaces the seeded per-epoch shuffles (the faithfulness
    tests use it to replay ``fit``'s unshuffled order).
    """
    import keras

    from regbench.models import build_model, decayed_kernels, make_optimizer
    from regbench.seedstack import SeedStack

    seeds = [int(seed) for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"a cell needs distinct seeds, not {seeds}")
    training = cell["training"]
    # Garbage collection is left to the caller: a full one costs 0.2 s.
    keras.backend.clear_session(free_memory=False)
    parts, n_classes = _cell_parts(data, len(seeds))
    feature_shape = parts["train"].feature_shape
    models = []
    for seed in seeds:
        # As a notebook does before building its model: every generator seeded.
        keras.utils.set_random_seed(seed)
        models.append(build_model(cell["model"], cell["regularizer"], feature_shape, n_classes))
    stack = SeedStack(models)
    regularizer = cell["regularizer"]
    # Weight decay acts on the stack's variables that hold the seeds' chosen kernels.
    decayed = stack.counterparts([v for one in models for v in decayed_kernels(one, regularizer)])
    optimizer = make_optimizer(training, regularizer, stack.trainable, decayed)
    batch_size = int(training["batch_size"])
    loop = _CellLoop(stack, optimizer, parts, n_classes, batch_size, regularizer)
    runs = [
        _SeedRun(seed, stack.view(index), regularizer, training) for index, seed in enumerate(seeds)
    ]
    orders = _batch_orders(seeds, batch_order)
    started = time.perf_counter()
    for epoch in range(1, int(training["epochs"]) + 1):
        if not any(run.active for run in runs):
            break
        logs = loop.epoch(orders(epoch, parts["train"].rows))
        for index, run in enumerate(runs):
            if run.active:
                run.end_epoch(
                    epoch, {name: float(values[index]) for name, values in logs.items()}, log
                )
    for run in runs:
        run.finish()
    seconds = (time.perf_counter() - started) / len(seeds)
    scores = loop.final_scores()
    return {
        run.seed: _result(
            run, index, stack, scores, parts["test"].labels(index), cell, seeds, device, seconds
        )
        for index, run in enumerate(runs)
    }


@dataclass(frozen=True)
class _Part:
    """One part of a cell's data (train, val or test), as its compiled functions read it.

    Every seed reads the same ``[rows, ...]`` arrays, or, where the seeds'
    splits differ (``stacked``), its own along a leading axis: ``[seeds, rows, ...]``.
    """

    x: np.ndarray
    y: np.ndarray
    stacked: bool

    @property
    def rows(self) -> int:
        return int(self.y.shape[-1])

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[2 if self.stacked else 1 :])

    def labels(self, index: int) -> np.ndarray:
        """Seed ``index``'s labels."""
        return self.y[index] if self.stacked else self.y


def _cell_parts(data: Any, size: int) -> tuple[dict[str, _Part], int]:
    """The cell's parts and its number of classes, from one data set or one per seed.

    A part whose arrays are the same for every seed (an official test set) is
    kept once; the others are stacked, so they must have the same shape for
    every seed, as splits of one dataset with the same fractions do.
    """
    if not isinstance(data, Sequence):
        parts = {p: _Part(getattr(data, f"x_{p}"), getattr(data, f"y_{p}"), False) for p in SPLITS}
        return parts, int(data.n_classes)
    if len(data) != size:
        raise ValueError(f"a cell of {size} seed(s) needs one data set per seed, not {len(data)}")
    classes = sorted({int(one.n_classes) for one in data})
    if len(classes) != 1:
        raise ValueError(f"the seeds' data sets differ in their number of classes: {classes}")
    parts = {}
    for part in SPLITS:
        xs = [getattr(one, f"x_{part}") for one in data]
        ys = [getattr(one, f"y_{part}") for one in data]
        same = zip(xs, ys, strict=True)
        if all(np.array_equal(x, xs[0]) and np.array_equal(y, ys[0]) for x, y in same):
            parts[part] = _Part(xs[0], ys[0], False)
            continue
        shapes = sorted({x.shape for x in xs})
        if len(shapes) != 1:
            raise ValueError(
                f"the seeds' {part} splits differ in shape ({shapes}); a cell stacks them, "
                "so every seed's split must have the same sizes"
            )
        parts[part] = _Part(np.stack(xs), np.stack(ys), True)
    return parts, classes[0]


def _batch_orders(
    seeds: Sequence[int], batch_order: BatchOrder | None
) -> Callable[[int, int], np.ndarray]:
    """Each epoch's row order for every seed, ``[seeds, rows]``."""
    shuffles = [np.random.default_rng(seed) for seed in seeds]

    def orders(epoch: int, n_rows: int) -> np.ndarray:
        if batch_order is not None:
            rows = [batch_order(seed, epoch, n_rows) for seed in seeds]
        else:
            rows = [shuffle.permutation(n_rows) for shuffle in shuffles]
        return np.stack(rows).astype(np.int32)

    return orders


#: The direction Keras's ``mode="auto"`` picks for each monitor a study may name. It is
#: given explicitly because a seed's view has no compiled metrics for Keras to look it up in.
_MONITOR_MODES = {"val_loss": "min", "val_accuracy": "max"}

#: What ``fit`` calls each history column when it passes the epoch's logs to its callbacks.
_KERAS_LOGS = {
    "objective": "loss",
    "accuracy": "accuracy",
    "val_objective": "val_loss",
    "val_accuracy": "val_accuracy",
}


@dataclass
class _SeedRun:
    """One seed's history, early stopping and end state while its cell trains."""

    seed: int
    view: Any
    regularizer: Mapping[str, Any]
    training: Mapping[str, Any]
    rows: list[dict[str, float]] = field(default_factory=list)
    status: str = "ok"
    diverged_epoch: int | None = None
    # Its weights from the epoch it stopped at, while the cell's other seeds go on.
    final_weights: list[np.ndarray] | None = None
    # The early-stopping piece's callback, and the plateau protocol's.
    early: Any = None
    plateau: Any = None
    # Which rule ended the seed's training before the budget: "plateau", "early_stopping".
    stopped_by: str | None = None

    def __post_init__(self) -> None:
        settings = self.regularizer.get("early_stopping")
        if settings is not None:
            self.early = self._watch(
                settings["monitor"],
                settings["patience"],
                settings["min_delta"],
                settings["restore_best_weights"],
            )
        if self.training.get("protocol") == PLATEAU:
            # The study's protocol, the same rule for the baseline and every variant: a
            # seed trains until its validation data loss has not improved for `patience`
            # epochs, and is tested with the weights of its best validation epoch.
            self.plateau = self._watch(
                "val_loss", self.training["patience"], self.training["min_delta"], True
            )

    def _watch(self, monitor: str, patience: int, min_delta: float, restore: bool) -> Any:
        """Keras's own ``EarlyStopping``, watching this seed alone through its view."""
        import keras

        callback = keras.callbacks.EarlyStopping(
            monitor=monitor,
            patience=patience,
            min_delta=min_delta,
            restore_best_weights=restore,
            mode=_MONITOR_MODES[monitor],
        )
        callback.set_model(self.view)
        callback.on_train_begin()
        return callback

    @property
    def active(self) -> bool:
        """Whether the seed still trains."""
        return self.final_weights is None

    def end_epoch(self, epoch: int, logs: dict[str, float], log: Callable[[str], None]) -> None:
        """Record the epoch; stop the seed if it diverged or early stopping says so."""
        self.rows.append({"epoch": epoch, **logs})
        if epoch == 1 or epoch % 50 == 0:
            log(
                f"seed {self.seed}, epoch {epoch}: loss {logs['loss']:.4f} "
                f"(objective {logs['objective']:.4f}) val_loss {logs['val_loss']:.4f} "
                f"val_accuracy {logs['val_accuracy']:.4f}"
            )
        losses = ("loss", "objective", "val_loss", "val_objective")
        if not all(math.isfinite(logs[name]) for name in losses):
            self.status, self.diverged_epoch = "diverged", epoch
            log(f"seed {self.seed}, epoch {epoch}: loss is not finite; the run diverged")
            self._stop()
        else:
            # The piece sees what fit's callbacks see (its val_loss is the objective); the
            # protocol watches the validation data loss, penalties left out, so that every
            # variant is stopped by the same quantity.
            watched = (
                ("early_stopping", self.early, {_KERAS_LOGS[k]: logs[k] for k in _KERAS_LOGS}),
                (PLATEAU, self.plateau, {"val_loss": logs["val_loss"]}),
            )
            for rule, callback, seen in watched:
                if callback is not None:
                    callback.on_epoch_end(epoch - 1, seen)
                    if self.view.stop_training and self.stopped_by is None:
                        self.stopped_by = rule
            if self.stopped_by is not None:
                log(f"seed {self.seed}, epoch {epoch}: stopped by the {self.stopped_by} rule")
                self._stop()

    @property
    def _deciding(self) -> Any:
        """The callback whose best epoch is tested: the piece's once it stopped the seed, or
        whenever there is no plateau protocol; the protocol's otherwise."""
        if self.early is not None and (self.stopped_by == "early_stopping" or self.plateau is None):
            return self.early
        return self.plateau

    def _stop(self) -> None:
        if self._deciding is not None:
            self._deciding.on_train_end()  # Restores the best weights when asked to.
        self.final_weights = self.view.get_weights()

    def finish(self) -> None:
        """Leave the seed's final weights in the stack: its own, not the cell's last epoch's."""
        if self.final_weights is None:
            if self._deciding is not None:
                self._deciding.on_train_end()
        else:
            self.view.set_weights(self.final_weights)

    def tested_epoch(self) -> int:
        """The epoch (from 0) whose weights are tested: a restored best one, else the last."""
        deciding = self._deciding
        restored = deciding is not None and deciding.restore_best_weights
        if restored and deciding.best_weights is not None:
            return int(deciding.best_epoch)
        return len(self.rows) - 1

    def best_epoch(self) -> int:
        """The best epoch (from 0): the deciding rule's, else the lowest validation data loss."""
        if self._deciding is not None:
            return int(self._deciding.best_epoch)
        val_loss = np.array([row["val_loss"] for row in self.rows], dtype=np.float64)
        return int(np.where(np.isfinite(val_loss), val_loss, np.inf).argmin())


def _result(
    run: _SeedRun,
    index: int,
    stack: Any,
    scores: Mapping[str, Any],
    y_test: np.ndarray,
    cell: Mapping[str, Any],
    seeds: list[int],
    device: str,
    seconds: float,
) -> RunResult:
    """One seed's metrics, history and kernels."""
    from regbench.metrics import classification_metrics, weight_statistics

    history = pd.DataFrame(run.rows, columns=list(HISTORY_COLUMNS))
    # The epoch and validation values of the weights that are tested, so that whatever
    # reads a validation value (tuning picks a strength by one) reads the tested weights'.
    tested, best = history.iloc[run.tested_epoch()], history.iloc[run.best_epoch()]
    metrics: dict[str, Any] = {
        "status": run.status,
        "diverged_epoch": run.diverged_epoch,
        "device": device,
        "epochs_run": len(history),
        "best_epoch": run.best_epoch() + 1,
        "tested_epoch": run.tested_epoch() + 1,
        "stopped_by": run.stopped_by,
        **{f"train_{name}": _finite(tested[name]) for name in ("loss", "objective", "accuracy")},
        **{name: _finite(tested[name]) for name in ("val_loss", "val_objective", "val_accuracy")},
        "best_val_loss": _finite(best["val_loss"]),
        "best_val_accuracy": _finite(best["val_accuracy"]),
        # The cell's seeds train together: each is charged an equal share of the loop.
        "train_seconds": round(seconds, 3),
        "n_params": int(stack.template.count_params()),
    }
    kernels = stack.kernels(index)
    if run.status == "ok":
        test, fit = scores["test"], scores["train"]
        found = classification_metrics(y_test, scores["probabilities"][index])
        fit_accuracy = float(fit["accuracy"][index])
        metrics.update(
            test_loss=_finite(test["loss"][index]),
            test_objective=_finite(test["objective"][index]),
            test_accuracy=found["accuracy"],
            test_f1_macro=found["f1_macro"],
            test_roc_auc=found["roc_auc"],
            train_eval_loss=_finite(fit["loss"][index]),
            train_eval_objective=_finite(fit["objective"][index]),
            train_eval_accuracy=fit_accuracy,
            gap_accuracy=fit_accuracy - float(found["accuracy"] or 0.0),
            gap_loss=_finite(test["loss"][index] - fit["loss"][index]),
        )
        metrics.update(weight_statistics(list(kernels.values())))
    metrics["architecture"] = describe_architecture(stack.template)
    # What the run was trained from, so `regbench why` can name what changed since.
    metrics["spec"] = {**cell, "seed": run.seed}
    metrics["cell_seeds"] = seeds
    metrics["code"] = CODE_DIGEST
    return RunResult(metrics=metrics, history=history, kernels=kernels)


class _CellLoop:
    """A cell's epoch, evaluation and prediction, each one call of a compiled function."""

    def __init__(
        self,
        stack: Any,
        optimizer: Any,
        parts: Mapping[str, _Part],
        n_classes: int,
        batch_size: int,
        regularizer: Mapping[str, Any] | None = None,
    ) -> None:
        import tensorflow as tf

        from regbench.models import accuracy_function, loss_function, smoothing

        self.stack, self.size, self.batch_size = stack, stack.size, batch_size
        self.optimizer, self.parts, self.n_classes = optimizer, parts, n_classes
        self.loss, self.accuracy = loss_function(n_classes), accuracy_function(n_classes)
        # Label smoothing changes the loss the objective trains on, never the data loss.
        amount = smoothing(regularizer or {})
        self.smoothed = loss_function(n_classes, amount) if amount else None
        for loss in (self.loss, self.smoothed):
            if loss is not None and loss.reduction != "sum_over_batch_size":
                raise ValueError(
                    f"the data loss must average over the batch, not {loss.reduction!r}"
                )
        self.labels = "float32" if n_classes == 2 else "int64"
        optimizer.build(stack.trainable)
        self.x_train, self.y_train = self._tensors(parts["train"].x, parts["train"].y)
        self.x_val, self.y_val = self._tensors(parts["val"].x, parts["val"].y)
        features = parts["train"].feature_shape
        x_spec = tf.TensorSpec([None, *features], tf.float32)
        y_spec = tf.TensorSpec([None], tf.as_dtype(self.labels))
        order_spec = tf.TensorSpec([self.size, None], tf.int32)
        self._evaluate = tf.function(self._evaluate_graph, input_signature=[x_spec, y_spec])
        self._epoch = tf.function(self._epoch_graph, input_signature=[order_spec])
        self._predict = tf.function(self._predict_graph, input_signature=[x_spec])
        if any(part.stacked for part in parts.values()):
            # Each seed's own split: the same functions over [seeds, rows, ...].
            xs_spec = tf.TensorSpec([self.size, None, *features], tf.float32)
            ys_spec = tf.TensorSpec([self.size, None], tf.as_dtype(self.labels))
            self._evaluate_stacked = tf.function(
                lambda x, y: self._evaluate_graph(x, y, stacked=True),
                input_signature=[xs_spec, ys_spec],
            )
            self._predict_stacked = tf.function(
                lambda x: self._predict_graph(x, stacked=True), input_signature=[xs_spec]
            )

    def _scores(self, y: Any, y_pred: Any, penalties: Any) -> tuple[Any, Any, Any]:
        """Each seed's data loss, objective and correct predictions on one batch.

        As Keras's ``compute_loss`` and metrics do it: the mean over the batch of
        per-example cross-entropies, the sum of that (with smoothed targets under
        label smoothing) and every penalty, and the count of correct predictions.
        Cross-entropy takes logarithms and its mean sums over the batch, so it is
        taken seed by seed.
        """
        import tensorflow as tf

        from regbench.seedstack import per_seed

        def batch_loss(loss: Any) -> Any:
            def mean(y: Any, y_pred: Any) -> Any:
                values = loss.call(tf.cast(y, y_pred.dtype), y_pred)
                count = tf.cast(tf.size(values), values.dtype)
                return tf.math.divide_no_nan(tf.reduce_sum(values), count)

            return mean

        data_loss = per_seed(batch_loss(self.loss), y, y_pred)
        fitted = data_loss
        if self.smoothed is not None:
            # Keras's smoothed categorical cross-entropy takes one-hot targets.
            targets = y if self.n_classes == 2 else tf.one_hot(y, self.n_classes)
            fitted = per_seed(batch_loss(self.smoothed), targets, y_pred)
        terms = penalties.terms()
        objective = tf.reduce_sum(tf.stack([fitted, *terms], axis=1), axis=1) if terms else fitted
        correct = tf.reduce_sum(tf.reshape(self.accuracy(y, y_pred), [self.size, -1]), axis=1)
        return data_loss, objective, correct

    def _evaluate_graph(self, x: Any, y: Any, stacked: bool = False) -> dict[str, Any]:
        # What model.evaluate does, for every seed: batches in order, means weighted by size.
        # ``stacked``: x and y hold each seed's own rows, [seeds, rows, ...].
        import tensorflow as tf

        size, batch_size = self.size, self.batch_size
        loss_sum = objective_sum = correct_sum = tf.zeros([size])
        count = tf.constant(0.0)
        for start in tf.range(0, tf.shape(x)[1 if stacked else 0], batch_size):
            if stacked:
                xb, yb = x[:, start : start + batch_size], y[:, start : start + batch_size]
            else:
                xb = _repeat(x[start : start + batch_size], size)
                yb = _repeat(y[start : start + batch_size], size)
            data_loss, objective, correct = self._scores(yb, *self.stack.forward(xb, False))
            weight = tf.cast(tf.shape(xb)[1], tf.float32)
            loss_sum += data_loss * weight
            objective_sum += objective * weight
            correct_sum += correct
            count += weight
        return _means(loss_sum, objective_sum, correct_sum, count)

    def _epoch_graph(self, order: Any) -> Any:
        # What one epoch of model.fit does, for every seed: train_step per batch in the
        # seed's own order, the epoch's means, then the validation pass.
        import tensorflow as tf

        stack, optimizer = self.stack, self.optimizer
        loss_sum = objective_sum = correct_sum = tf.zeros([self.size])
        count = tf.constant(0.0)
        # Each seed's batch from its own split (a leading seed axis), or from the shared one.
        seed_axes = 1 if self.parts["train"].stacked else 0
        for start in tf.range(0, tf.shape(order)[1], self.batch_size):
            rows = order[:, start : start + self.batch_size]
            with tf.GradientTape() as tape:
                xb = tf.gather(self.x_train, rows, batch_dims=seed_axes)
                y_pred, penalties = stack.forward(xb, True)
                yb = tf.gather(self.y_train, rows, batch_dims=seed_axes)
                data_loss, objective, correct = self._scores(yb, y_pred, penalties)
                # Seeds share no weight, so each seed's gradient is its own objective's.
                total = tf.reduce_sum(objective)
            optimizer.apply(tape.gradient(total, stack.trainable), stack.trainable)
            weight = tf.cast(tf.shape(rows)[1], tf.float32)
            loss_sum += data_loss * weight
            objective_sum += objective * weight
            correct_sum += correct
            count += weight
        means = _means(loss_sum, objective_sum, correct_sum, count)
        evaluate = self._evaluate_stacked if self.parts["val"].stacked else self._evaluate
        return means, evaluate(self.x_val, self.y_val)

    def _predict_graph(self, x: Any, stacked: bool = False) -> Any:
        return self.stack.forward(x if stacked else _repeat(x, self.size), False)[0]

    def _tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        import tensorflow as tf

        return tf.constant(x), tf.constant(y.astype(self.labels))

    def epoch(self, order: np.ndarray) -> dict[str, np.ndarray]:
        """Train one epoch (``order``: each seed's rows), then validate; history columns."""
        train_logs, val_logs = self._epoch(order)
        return {
            **{name: np.asarray(value) for name, value in train_logs.items()},
            **{f"val_{name}": np.asarray(value) for name, value in val_logs.items()},
        }

    def evaluate(self, part: _Part) -> dict[str, np.ndarray]:
        """Each seed's data loss, objective and accuracy over a part, as ``evaluate`` does."""
        evaluate = self._evaluate_stacked if part.stacked else self._evaluate
        logs = evaluate(*self._tensors(part.x, part.y))
        return {name: np.asarray(value) for name, value in logs.items()}

    def predict(self, part: _Part) -> np.ndarray:
        """Each seed's inference-mode outputs over a part, ``[seeds, rows, ...]``, in chunks."""
        chunk = 4096
        if part.stacked:
            return np.concatenate(
                [
                    np.asarray(self._predict_stacked(part.x[:, i : i + chunk]))
                    for i in range(0, part.rows, chunk)
                ],
                axis=1,
            )
        x = part.x
        return np.concatenate(
            [np.asarray(self._predict(x[i : i + chunk])) for i in range(0, len(x), chunk)], axis=1
        )

    def final_scores(self) -> dict[str, Any]:
        """Test and training-set evaluations and test predictions of the final weights."""
        return {
            "test": self.evaluate(self.parts["test"]),
            "train": self.evaluate(self.parts["train"]),
            "probabilities": self.predict(self.parts["test"]),
        }


def _repeat(tensor: Any, size: int) -> Any:
    """``tensor`` once per seed along a new leading axis."""
    import tensorflow as tf

    return tf.broadcast_to(tensor[None], tf.concat([[size], tf.shape(tensor)], 0))


def _means(loss_sum: Any, objective_sum: Any, correct_sum: Any, count: Any) -> dict[str, Any]:
    import tensorflow as tf

    return {
        "loss": tf.math.divide_no_nan(loss_sum, count),
        "objective": tf.math.divide_no_nan(objective_sum, count),
        "accuracy": tf.math.divide_no_nan(correct_sum, count),
    }


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
