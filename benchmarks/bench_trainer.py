"""Per-run training time: notebook-style ``model.fit`` against regbench's cells of seeds.

Three reference specs from ``studies.md`` (A: red wine, D: breast cancer, C:
iris) and the default study's CNN on digits, each trained for several seeds
on identical data and identical models (``regbench.models.build_model``, so
every side starts from the same initial weights for the same seed): by
``model.fit``, one seed at a time; by regbench, each seed as a cell of its
own (``training.train``); and by regbench, all seeds as one cell
(``training.train_cell``), as a study's job trains them. Prints, per spec,
the median time per run and per epoch of each side with their ratios, the
per-epoch cost of a cell of S seeds against S single runs, and test accuracy
and loss as means with 95% confidence intervals, with a paired t-test over
seeds. The script checks that each seed's cell result equals its single run.

The notebook side runs in a process with TensorFlow's defaults (all cores, no
op determinism), as a notebook would; the regbench side runs as a job does
(``configure_tensorflow(1, "cpu")``). Each side imports TensorFlow once, in
its own subprocess, before any timing starts.

Run from the repository root (a few minutes on two cores)::

    .venv/bin/python benchmarks/bench_trainer.py
    .venv/bin/python benchmarks/bench_trainer.py --seeds 10 --epochs wine=500

Epochs are cut from the notebooks' 500 (wine) and 350 (iris) so that the
benchmark runs in minutes; the per-epoch ratio is what carries over to the
full length, and the table also projects each side's time per run to the
notebooks' epoch counts from the measured fixed and per-epoch costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from wine import default_wine_csv

#: The red-wine file the wine spec reads (``--wine-csv``; see benchmarks/wine.py).
WINE_CSV = default_wine_csv()


@dataclass(frozen=True)
class Reference:
    """One notebook's setting: model, optimizer, batch size, epochs, and how it validates."""

    name: str
    units: tuple[int, ...]
    activation: str
    optimizer: str
    learning_rate: float
    batch_size: int
    epochs: int  # what this benchmark runs by default
    notebook_epochs: int  # what the notebook ran
    validation: str  # "split": fit(validation_split=0.2); "data": fit(validation_data=...)
    model: dict[str, Any] | None = None  # a CNN instead of an MLP of ``units``


REFERENCES = {
    # A: 11 -> 20 -> 20 -> 1, Adam, batch 32, validation_split=0.2, 500 epochs.
    "wine": Reference("wine", (20, 20), "relu", "adam", 1e-3, 32, 60, 500, "split"),
    # D: 30 -> 300 -> 100 -> 1, Adam, batch 32, 10 epochs, a separate validation split.
    "breast_cancer": Reference(
        "breast_cancer", (30, 300, 100), "relu", "adam", 1e-3, 32, 10, 10, "data"
    ),
    # C: 512 -> 256 -> 64 -> 32 -> 3, SGD, batch 128, 350 epochs, validated on the test split.
    # regbench MLPs have one activation, so the notebook's relu on the last hidden
    # layer is tanh here, on both sides.
    "iris": Reference("iris", (512, 256, 64, 32), "tanh", "sgd", 1e-2, 128, 60, 350, "data"),
    # The default study's CNN on 8x8 digits (config.yaml), 40 epochs.
    "digits_cnn": Reference(
        "digits_cnn",
        (32,),
        "relu",
        "adam",
        1e-3,
        32,
        40,
        40,
        "data",
        {"type": "cnn", "filters": [16, 32], "kernel_size": 3, "pool_size": 2, "padding": "same"},
    ),
}


def load_data(name: str) -> tuple[Any, str]:
    """The spec's prepared splits (as ``PreparedData``) and where they came from."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    from regbench.datasets import PreparedData

    if name == "wine":
        if WINE_CSV.exists():
            import pandas as pd

            frame = pd.read_csv(WINE_CSV, sep=";")
            x = frame.drop(columns="quality").to_numpy(dtype=np.float64)
            y = (frame["quality"] >= 6).to_numpy(dtype=np.int64)
            source = f"UCI red wine quality ({WINE_CSV})"
        else:
            x, y = datasets.make_classification(
                n_samples=1599, n_features=11, n_informative=6, flip_y=0.15, random_state=0
            )
            source = "synthetic wine-like data (1599 x 11; the UCI file was not found)"
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
        scaler = StandardScaler().fit(x_train)
        x_train, x_test = (scaler.transform(a).astype(np.float32) for a in (x_train, x_test))
        # validation_split=0.2 holds out the last fifth of the training rows.
        n_val = round(len(x_train) * 0.2)
        return PreparedData(
            x_train[:-n_val], y_train[:-n_val], x_train[-n_val:], y_train[-n_val:], x_test, y_test
        ), source
    if name == "digits_cnn":
        x, y = datasets.load_digits(return_X_y=True)
        x = (x / 16.0).reshape(-1, 8, 8, 1).astype(np.float32)
        x_train, x_rest, y_train, y_rest = train_test_split(
            x, y, test_size=0.4, stratify=y, random_state=42
        )
        x_val, x_test, y_val, y_test = train_test_split(
            x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=42
        )
        return PreparedData(x_train, y_train, x_val, y_val, x_test, y_test), "scikit-learn"
    if name == "breast_cancer":
        x, y = datasets.load_breast_cancer(return_X_y=True)
        x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.3, random_state=42)
        x_val, x_test, y_val, y_test = train_test_split(
            x_rest, y_rest, test_size=0.5, random_state=42
        )
        scaler = MinMaxScaler().fit(x_train)
        x_train, x_val, x_test = (
            scaler.transform(a).astype(np.float32) for a in (x_train, x_val, x_test)
        )
        return PreparedData(x_train, y_train, x_val, y_val, x_test, y_test), "scikit-learn"
    x, y = datasets.load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=42)
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = (scaler.transform(a).astype(np.float32) for a in (x_train, x_test))
    # The notebook validates on the test split.
    return PreparedData(x_train, y_train, x_test, y_test, x_test, y_test), "scikit-learn"


def run_spec(reference: Reference, epochs: int, seed: int) -> dict[str, Any]:
    """The regbench spec of one run of ``reference``."""
    return {
        "dataset": {"name": reference.name},
        "model": {
            "name": "mlp",
            "type": "mlp",
            "units": list(reference.units),
            "activation": reference.activation,
            **(reference.model or {}),
        },
        "regularizer": {"name": "none"},
        "training": {
            "epochs": epochs,
            "batch_size": reference.batch_size,
            "optimizer": reference.optimizer,
            "learning_rate": reference.learning_rate,
            "validation_fraction": 0.2,
            "device": "cpu",
        },
        "seed": seed,
    }


def side_notebook(reference: Reference, epochs: int, seeds: list[int]) -> list[dict[str, Any]]:
    """Notebook style: build, compile, ``model.fit``, ``model.evaluate``; per seed."""
    import keras

    from regbench.models import build_model, compile_model

    data, _ = load_data(reference.name)
    labels = "float32" if data.n_classes == 2 else "int64"
    records = []
    for seed in seeds:
        spec = run_spec(reference, epochs, seed)
        keras.backend.clear_session()
        epoch_starts: list[float] = []
        timer = keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs, starts=epoch_starts: starts.append(
                time.perf_counter()
            )
        )
        started = time.perf_counter()
        keras.utils.set_random_seed(seed)
        model = build_model(
            spec["model"], spec["regularizer"], data.x_train.shape[1:], data.n_classes
        )
        compile_model(model, spec["training"], data.n_classes)
        if reference.validation == "split":
            x = np.concatenate([data.x_train, data.x_val])
            y = np.concatenate([data.y_train, data.y_val]).astype(labels)
            fit_args: dict[str, Any] = {"validation_split": 0.2}
        else:
            x, y = data.x_train, data.y_train.astype(labels)
            fit_args = {"validation_data": (data.x_val, data.y_val.astype(labels))}
        model.fit(
            x,
            y,
            batch_size=reference.batch_size,
            epochs=epochs,
            verbose=0,
            callbacks=[timer],
            **fit_args,
        )
        test_loss, test_accuracy = model.evaluate(
            data.x_test, data.y_test.astype(labels), batch_size=reference.batch_size, verbose=0
        )
        seconds = time.perf_counter() - started
        records.append(_record(seed, seconds, epoch_starts, test_loss, test_accuracy))
    return records


def side_regbench(reference: Reference, epochs: int, seeds: list[int]) -> list[dict[str, Any]]:
    """regbench as a job trains: every seed as a cell of its own, then all seeds as one cell.

    Each seed's results must be the same both ways (bit for bit).
    """
    from regbench.training import configure_tensorflow, train, train_cell

    device = configure_tensorflow(1, "cpu")
    data, _ = load_data(reference.name)
    records = []
    for seed in seeds:
        epoch_starts: list[float] = []
        started = time.perf_counter()
        result = train(
            run_spec(reference, epochs, seed),
            data,
            device=device,
            log=lambda line: None,
            batch_order=_timed_order(epoch_starts),
        )
        seconds = time.perf_counter() - started
        metrics = result.metrics
        records.append(
            _record(seed, seconds, epoch_starts, metrics["test_loss"], metrics["test_accuracy"])
        )
    cell = {k: v for k, v in run_spec(reference, epochs, 0).items() if k != "seed"}
    epoch_starts = []
    started = time.perf_counter()
    together = train_cell(
        cell, seeds, data, device=device, log=lambda line: None,
        batch_order=_timed_order(epoch_starts),
    )  # fmt: skip
    cell_record = _record(-1, time.perf_counter() - started, epoch_starts[:: len(seeds)], 0, 0)
    for record in records:
        metrics = together[record["seed"]].metrics
        if (metrics["test_loss"], metrics["test_accuracy"]) != (
            record["test_loss"],
            record["test_accuracy"],
        ):
            raise AssertionError(f"seed {record['seed']}: its cell's result differs from alone")
        record["cell_seconds"] = cell_record["seconds"]
        record["cell_epoch_seconds"] = cell_record["epoch_seconds"]
    return records


def _timed_order(epoch_starts: list[float]) -> Any:
    """train's own default batch order (a permutation seeded by the run's seed), timed."""
    shuffles: dict[int, Any] = {}

    def order(seed: int, epoch: int, n_rows: int) -> np.ndarray:
        epoch_starts.append(time.perf_counter())
        shuffle = shuffles.setdefault(seed, np.random.default_rng(seed))
        return shuffle.permutation(n_rows)  # type: ignore[no-any-return]  # numpy stubs: Any

    return order


def _record(
    seed: int, seconds: float, epoch_starts: list[float], loss: float, accuracy: float
) -> dict[str, Any]:
    # Steady-state time per epoch: from the start of epoch 2 (compilation done)
    # to the start of the last one.
    steady = (
        (epoch_starts[-1] - epoch_starts[1]) / (len(epoch_starts) - 2)
        if len(epoch_starts) > 2
        else float("nan")
    )
    return {
        "seed": seed,
        "seconds": seconds,
        "epoch_seconds": steady,
        "test_loss": float(loss),
        "test_accuracy": float(accuracy),
    }


# ------------------------------------------------------------------ the report


def mean_ci(values: np.ndarray) -> str:
    """Mean with a t-based 95% confidence interval."""
    from scipy import stats

    mean = float(np.mean(values))
    if len(values) < 2:
        return f"{mean:.4f}"
    half = float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))
    return f"{mean:.4f} [{mean - half:.4f}, {mean + half:.4f}]"


def compare(
    name: str,
    reference: Reference,
    epochs: int,
    notebook: list[dict[str, Any]],
    ours: list[dict[str, Any]],
) -> dict[str, Any]:
    """Print one spec's timings and accuracy comparison; return the headline numbers."""
    from scipy import stats

    def column(records: list[dict[str, Any]], key: str) -> np.ndarray:
        return np.array([r[key] for r in records], dtype=np.float64)

    seeds = len(ours)
    run_nb, run_rb = np.median(column(notebook, "seconds")), np.median(column(ours, "seconds"))
    run_cell = ours[0]["cell_seconds"] / seeds
    ep_nb = np.median(column(notebook, "epoch_seconds"))
    ep_rb = np.median(column(ours, "epoch_seconds"))
    ep_cell = ours[0]["cell_epoch_seconds"]
    # Fixed cost per run (building, compiling, tracing, final evaluation) and the
    # time per run projected to the notebook's number of epochs.
    fixed_nb, fixed_rb = run_nb - epochs * ep_nb, run_rb - epochs * ep_rb
    fixed_cell = ours[0]["cell_seconds"] - epochs * ep_cell
    full_nb = fixed_nb + reference.notebook_epochs * ep_nb
    full_rb = fixed_rb + reference.notebook_epochs * ep_rb
    full_cell = (fixed_cell + reference.notebook_epochs * ep_cell) / seeds
    print(
        f"\n== {name}: {seeds} seeds, {epochs} epochs, batch {reference.batch_size}, "
        f"{reference.optimizer}, units {list(reference.units)} =="
    )
    print(f"{'':28}{'model.fit':>12}{'one seed':>12}{'cell/seed':>12}{'fit/cell':>10}")
    print(
        f"{'median s per run':28}{run_nb:12.3f}{run_rb:12.3f}{run_cell:12.3f}"
        f"{run_nb / run_cell:9.1f}x"
    )
    print(
        f"{'median ms per epoch':28}{ep_nb * 1e3:12.2f}{ep_rb * 1e3:12.2f}"
        f"{ep_cell * 1e3 / seeds:12.2f}{ep_nb * seeds / ep_cell:9.1f}x"
    )
    print(f"{'fixed s per run':28}{fixed_nb:12.3f}{fixed_rb:12.3f}{fixed_cell / seeds:12.3f}")
    print(
        f"{f's per run at {reference.notebook_epochs} epochs':28}"
        f"{full_nb:12.2f}{full_rb:12.2f}{full_cell:12.2f}{full_nb / full_cell:9.1f}x  (projected)"
    )
    print(
        f"a cell of {seeds} seeds: {ep_cell * 1e3:.2f} ms per epoch against {seeds} single runs' "
        f"{seeds * ep_rb * 1e3:.2f} ms ({seeds * ep_rb / ep_cell:.1f}x); "
        f"{ours[0]['cell_seconds']:.2f} s in all against {seeds * run_rb:.2f} s "
        f"({seeds * run_rb / ours[0]['cell_seconds']:.1f}x)"
    )
    for metric in ("test_accuracy", "test_loss"):
        a, b = column(notebook, metric), column(ours, metric)
        paired = stats.ttest_rel(a, b) if np.any(a != b) else None
        welch = stats.ttest_ind(a, b, equal_var=False) if np.any(a != b) else None
        print(f"{metric:28}fit {mean_ci(a)}   regbench {mean_ci(b)}")
        print(
            f"{'':28}difference (fit - regbench) {mean_ci(a - b)}, "
            f"paired t p={paired.pvalue if paired else 1.0:.3f}, "
            f"Welch p={welch.pvalue if welch else 1.0:.3f}"
        )
    return {
        "spec": name,
        "run_ratio": run_nb / run_cell,
        "epoch_ratio": ep_nb * seeds / ep_cell,
        "projected_ratio": full_nb / full_cell,
        "cell_epoch_ratio": seeds * ep_rb / ep_cell,
        "cell_run_ratio": seeds * run_rb / ours[0]["cell_seconds"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per spec (default 5)")
    parser.add_argument("--specs", default=",".join(REFERENCES), help="comma-separated")
    parser.add_argument(
        "--epochs",
        action="append",
        default=[],
        metavar="SPEC=N",
        help="override a spec's epochs, e.g. wine=500",
    )
    parser.add_argument(
        "--wine-csv",
        type=Path,
        default=default_wine_csv(),
        help="study A's red-wine file (default: $REGBENCH_WINE_CSV, else the download cache's "
        "copy, %(default)s); synthetic data of its shape where it is absent",
    )
    parser.add_argument("--side", choices=("notebook", "regbench"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    global WINE_CSV  # One option, read by load_data here and in each side's process.
    WINE_CSV = args.wine_csv
    epochs = {name: ref.epochs for name, ref in REFERENCES.items()}
    for item in args.epochs:
        name, _, value = item.partition("=")
        epochs[name] = int(value)
    names = args.specs.split(",")
    seeds = list(range(args.seeds))

    if args.side is not None:
        # One side of one spec, in its own process: print the records as JSON.
        if args.side == "notebook":
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        run = side_notebook if args.side == "notebook" else side_regbench
        (name,) = names
        print(json.dumps(run(REFERENCES[name], epochs[name], seeds)))
        return 0

    print(
        f"bench_trainer: {len(seeds)} seeds per spec, {os.cpu_count()} CPU(s), "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    print(f"wine data: {load_data('wine')[1]}")
    headline = []
    for name in names:
        records = {}
        for side in ("notebook", "regbench"):
            command = [
                *(sys.executable, __file__, "--side", side, "--specs", name),
                *("--seeds", str(args.seeds), "--epochs", f"{name}={epochs[name]}"),
                *("--wine-csv", str(WINE_CSV)),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr[-5000:], file=sys.stderr)
                return 1
            records[side] = json.loads(done.stdout.strip().splitlines()[-1])
        headline.append(
            compare(name, REFERENCES[name], epochs[name], records["notebook"], records["regbench"])
        )
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    print("\nmodel.fit / regbench cell, per run; one cell of S seeds / S single runs:")
    print("spec            per run  per epoch  at the notebook's epochs  cell epoch  cell run")
    for row in headline:
        print(
            f"{row['spec']:14}{row['run_ratio']:8.1f}x{row['epoch_ratio']:10.1f}x"
            f"{row['projected_ratio']:18.1f}x{row['cell_epoch_ratio']:17.1f}x"
            f"{row['cell_run_ratio']:9.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
