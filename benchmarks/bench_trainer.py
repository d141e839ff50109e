"""Per-run training time: notebook-style ``model.fit`` against ``regbench.training.train``.

Three reference specs from ``studies.md`` (A: red wine, D: breast cancer, C:
iris), each trained for several seeds both ways on identical data and
identical models (``regbench.models.build_model``, so the two start from the
same initial weights for the same seed). Prints, per spec, the median time
per run and per epoch for each side with their ratio, and test accuracy and
loss as means with 95% confidence intervals, with a paired t-test over seeds.

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

WINE_CSV = Path(os.environ.get("REGBENCH_WINE_CSV", "/work/shared/data/winequality-red.csv"))


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
    """regbench: ``training.train`` as a job calls it, per seed, fresh and warm.

    Fresh: each run builds and compiles its own loop, as a job in its own
    process does. Warm: ``reuse_compiled=True``, as in a warm worker, where
    the seeds after the first reuse the first one's compiled loop; their
    results must be identical to the fresh runs'.
    """
    from regbench.training import configure_tensorflow, train

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
            batch_order=_timed_order(seed, epoch_starts),
        )
        seconds = time.perf_counter() - started
        metrics = result.metrics
        records.append(
            _record(seed, seconds, epoch_starts, metrics["test_loss"], metrics["test_accuracy"])
        )
    for record in records:
        started = time.perf_counter()
        warm = train(
            run_spec(reference, epochs, record["seed"]),
            data,
            device=device,
            log=lambda line: None,
            reuse_compiled=True,
        )
        record["seconds_warm"] = time.perf_counter() - started
        if (warm.metrics["test_loss"], warm.metrics["test_accuracy"]) != (
            record["test_loss"],
            record["test_accuracy"],
        ):
            raise AssertionError(f"seed {record['seed']}: the warm run differs from the fresh one")
    return records


def _timed_order(seed: int, epoch_starts: list[float]) -> Any:
    """train's own default batch order (a permutation seeded by the run's seed), timed."""
    shuffle = np.random.default_rng(seed)

    def order(epoch: int, n_rows: int) -> np.ndarray:
        epoch_starts.append(time.perf_counter())
        return shuffle.permutation(n_rows)

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

    run_nb, run_rb = np.median(column(notebook, "seconds")), np.median(column(ours, "seconds"))
    ep_nb = np.median(column(notebook, "epoch_seconds"))
    ep_rb = np.median(column(ours, "epoch_seconds"))
    # Fixed cost per run (building, compiling, tracing, final evaluation) and the
    # time per run projected to the notebook's number of epochs.
    fixed_nb, fixed_rb = run_nb - epochs * ep_nb, run_rb - epochs * ep_rb
    full_nb = fixed_nb + reference.notebook_epochs * ep_nb
    full_rb = fixed_rb + reference.notebook_epochs * ep_rb
    print(
        f"\n== {name}: {len(ours)} seeds, {epochs} epochs, batch {reference.batch_size}, "
        f"{reference.optimizer}, units {list(reference.units)} =="
    )
    print(f"{'':28}{'model.fit':>14}{'regbench':>14}{'ratio':>9}")
    print(f"{'median s per run':28}{run_nb:14.3f}{run_rb:14.3f}{run_nb / run_rb:9.1f}x")
    print(f"{'median ms per epoch':28}{ep_nb * 1e3:14.2f}{ep_rb * 1e3:14.2f}{ep_nb / ep_rb:9.1f}x")
    print(f"{'fixed s per run':28}{fixed_nb:14.3f}{fixed_rb:14.3f}")
    # Seeds after the first, in a warm worker: the compiled loop is reused.
    warm_rb = np.median(column(ours, "seconds_warm")[1:])
    print(
        f"{'median s per run, warm':28}{'':14}{warm_rb:14.3f}{run_nb / warm_rb:9.1f}x"
        "  (reused compiled loop, as in a warm worker)"
    )
    print(
        f"{f's per run at {reference.notebook_epochs} epochs':28}"
        f"{full_nb:14.2f}{full_rb:14.2f}{full_nb / full_rb:9.1f}x  (projected)"
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
        "run_ratio": run_nb / run_rb,
        "warm_ratio": run_nb / warm_rb,
        "epoch_ratio": ep_nb / ep_rb,
        "projected_ratio": full_nb / full_rb,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per spec (default 10)")
    parser.add_argument("--specs", default=",".join(REFERENCES), help="comma-separated")
    parser.add_argument(
        "--epochs",
        action="append",
        default=[],
        metavar="SPEC=N",
        help="override a spec's epochs, e.g. wine=500",
    )
    parser.add_argument("--side", choices=("notebook", "regbench"), help=argparse.SUPPRESS)
    args = parser.parse_args()
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
    print("\nmodel.fit / regbench:")
    print("spec             per run   warm run   per epoch   per run at the notebook's epochs")
    for row in headline:
        print(
            f"{row['spec']:16}{row['run_ratio']:7.1f}x{row['warm_ratio']:10.1f}x"
            f"{row['epoch_ratio']:11.1f}x{row['projected_ratio']:12.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
