"""Where a cell's time goes, and what the digits CNN's convolutions cost each way.

Part 1 trains cells of the default study (``config.yaml``) in one warm process
configured as a worker is (one thread, CPU), after one cell that warms the
process up, and splits each cell's time into: building the seeds' models and
their stack, tracing the compiled epoch (Python building the graph), its first
call (TensorFlow instantiating the graph, then one epoch), the other epochs,
and the final evaluations and results. It also counts the nodes of the epoch's
graph. A cell's first epoch is timed apart from its tracing by asking for the
compiled function's concrete graph just before the first call.

Part 2 times one training step of the default CNN's two convolutions (forward
and gradients, 5 seeds, batch 32, 8x8x1 digits) three ways, in compiled
functions on one thread, and checks each against a cell of one seed bit for bit:

- per seed: one convolution per seed, as ``regbench.seedstack`` runs them;
- grouped: one convolution for all seeds, the seeds' channels side by side
  (``groups``, as a grouped ``Conv2D`` does);
- im2col: each seed's 3x3 patches gathered, then one batched matrix product.

Run from the repository root (about two minutes on two cores)::

    .venv/bin/python benchmarks/bench_cell_phases.py
    .venv/bin/python benchmarks/bench_cell_phases.py --cells iris/mlp/l2 digits/cnn/none
    .venv/bin/python benchmarks/bench_cell_phases.py --cells all   # the 66 cells, ~4 min
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

DEFAULT_CELLS = (
    "iris/mlp/none",
    "iris/mlp/l2",
    "iris/mlp/batch_norm",
    "breast_cancer/mlp/dropout_0.5",
    "synthetic/mlp/l1_l2",
    "digits/mlp/none",
    "digits/cnn/none",
    "digits/cnn/batch_norm",
)


class Phases:
    """Wraps the trainer's steps to time them; one instance per benchmark process."""

    def __init__(self) -> None:
        from regbench import models, seedstack, training

        self.seconds: dict[str, float] = {}
        self.nodes = 0
        self.epochs: list[float] = []
        self._wrap(models, "build_model", "build")
        self._wrap(seedstack.SeedStack, "__init__", "build")
        self._wrap(training._CellLoop, "evaluate", "final")
        self._wrap(training._CellLoop, "predict", "final")
        self._wrap(training, "_result", "final")
        epoch = training._CellLoop.epoch

        def timed_epoch(loop: Any, order: np.ndarray) -> dict[str, np.ndarray]:
            if not self.epochs:
                started = time.perf_counter()
                graph = loop._epoch.get_concrete_function().graph
                self.seconds["trace"] = time.perf_counter() - started
                self.nodes = len(graph.as_graph_def().node) + sum(
                    len(function.node_def) for function in graph.as_graph_def().library.function
                )
            started = time.perf_counter()
            logs = epoch(loop, order)
            self.epochs.append(time.perf_counter() - started)
            return logs

        training._CellLoop.epoch = timed_epoch  # type: ignore[method-assign]  # timing wraps the real method

    def _wrap(self, owner: Any, name: str, phase: str) -> None:
        function = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started

        setattr(owner, name, timed)

    def reset(self) -> None:
        self.seconds, self.nodes, self.epochs = {}, 0, []


def part_cells(cells: list[str], seeds: list[int]) -> None:
    from regbench.config import CellKey, load_config_file, load_study
    from regbench.datasets import PreparedData, load_raw, prepare
    from regbench.training import configure_tensorflow, train_cell

    configure_tensorflow(1, "cpu")
    study = load_study(load_config_file(str(REPO / "config.yaml")))
    if cells == ["all"]:
        cells = [key.path for key in study.cells]
    phases = Phases()
    totals: dict[str, float] = {}
    datasets: dict[str, PreparedData] = {}
    print(f"Part 1: a cell of {len(seeds)} seeds in one warm process (one thread), seconds")
    header = "cell | total | build | trace | first epoch | other epochs | final | graph nodes"
    print(header + "\n" + "|".join(" --- " for _ in header.split("|")))
    for index, name in enumerate(["wine/mlp/none", *cells]):
        cell = CellKey(*name.split("/"))
        if cell.dataset not in datasets:
            spec = study.dataset_spec(cell.dataset)
            datasets[cell.dataset] = prepare(spec, load_raw(spec))
        phases.reset()
        started = time.perf_counter()
        train_cell(study.cell_spec(cell), seeds, datasets[cell.dataset], log=lambda line: None)
        total = time.perf_counter() - started
        if index == 0:
            continue  # the process's first cell pays TensorFlow's own start-up
        seconds, epochs = phases.seconds, phases.epochs
        for phase, value in (
            ("total", total),
            ("build", seconds.get("build", 0)),
            ("trace", seconds["trace"]),
            ("first epoch", epochs[0]),
            ("other epochs", sum(epochs[1:])),
            ("final", seconds.get("final", 0)),
        ):
            totals[phase] = totals.get(phase, 0.0) + value
        print(
            f"{name} | {total:.2f} | {seconds.get('build', 0):.2f} | {seconds['trace']:.2f} "
            f"| {epochs[0]:.2f} | {sum(epochs[1:]):.2f} ({len(epochs) - 1}) "
            f"| {seconds.get('final', 0):.2f} | {phases.nodes}"
        )
    print(f"sum of {len(cells)} cells | " + " | ".join(f"{v:.1f}" for v in totals.values()))


def conv_ways(seeds: int) -> dict[str, Callable[[Any, Any], Any]]:
    import tensorflow as tf

    def per_seed(x: Any, kernel: Any) -> Any:
        return tf.stack([tf.nn.conv2d(x[s], kernel[s], 1, "SAME") for s in range(seeds)])

    def grouped(x: Any, kernel: Any) -> Any:
        # [S, B, H, W, C] -> [B, H, W, S*C]; kernel [S, 3, 3, C, F] -> [3, 3, C, S*F].
        s, b, h, w, c = x.shape
        folded = tf.reshape(tf.transpose(x, [1, 2, 3, 0, 4]), [b, h, w, s * c])
        k = tf.reshape(tf.transpose(kernel, [1, 2, 3, 0, 4]), [3, 3, c, -1])
        y = tf.nn.conv2d(folded, k, 1, "SAME")
        return tf.transpose(tf.reshape(y, [b, h, w, s, -1]), [3, 0, 1, 2, 4])

    def im2col(x: Any, kernel: Any) -> Any:
        s, b, h, w, c = x.shape
        padded = tf.pad(x, [[0, 0], [0, 0], [1, 1], [1, 1], [0, 0]])
        patches = tf.concat(
            [padded[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)], -1
        )
        y = tf.matmul(tf.reshape(patches, [s, -1, 9 * c]), tf.reshape(kernel, [s, 9 * c, -1]))
        return tf.reshape(y, [s, b, h, w, -1])

    return {"per seed": per_seed, "grouped": grouped, "im2col": im2col}


def part_convolutions(seeds: int, steps: int, repeats: int) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.random((seeds, 32, 8, 8, 1), dtype=np.float32)
    kernels = [
        (rng.standard_normal((seeds, 3, 3, 1, 16)) * 0.3).astype(np.float32),
        (rng.standard_normal((seeds, 3, 3, 16, 32)) * 0.1).astype(np.float32),
    ]

    def step_of(conv: Callable[[Any, Any], Any]) -> Any:
        def pool(y: Any) -> Any:
            shape = y.shape
            folded = tf.nn.max_pool2d(tf.reshape(y, [-1, *shape[2:]]), 2, 2, "VALID")
            return tf.reshape(folded, [shape[0], shape[1], *folded.shape[1:]])

        @tf.function
        def step(x: Any, k1: Any, k2: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch([k1, k2])
                y = pool(tf.nn.relu(conv(x, k1)))
                y = pool(tf.nn.relu(conv(y, k2)))
                loss = tf.reduce_sum(y * y)
            return (y, *tape.gradient(loss, [k1, k2]))

        return step

    print(f"\nPart 2: the digits CNN's convolutions, one step of {seeds} seeds, ms (median of ")
    print(f"{repeats} x {steps} steps); 'bit for bit': seed 1's outputs and gradients equal a")
    print("cell of that seed alone computed the same way\n")
    print("way | ms per step | against per seed | bit for bit")
    print(" --- | --- | --- | --- ")
    base = None
    alone_ways = conv_ways(1)
    for name, conv in conv_ways(seeds).items():
        step = step_of(conv)
        tensors = [tf.constant(x), *map(tf.constant, kernels)]
        step(*tensors)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(steps):
                step(*tensors)
            times.append((time.perf_counter() - started) / steps * 1000)
        ms = statistics.median(times)
        base = base or ms
        together = [np.asarray(t)[1] for t in step(*tensors)]
        alone = step_of(alone_ways[name])(*[tf.constant(a[1:2]) for a in (x, *kernels)])
        same = all(
            np.array_equal(a, np.asarray(b)[0]) for a, b in zip(together, alone, strict=True)
        )
        print(f"{name} | {ms:.2f} | {base / ms:.2f}x | {'yes' if same else 'no'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--cells", nargs="+", default=list(DEFAULT_CELLS), help="dataset/model/regularizer, or all"
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    part_cells(args.cells, list(range(args.seeds)))
    part_convolutions(args.seeds, args.steps, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
