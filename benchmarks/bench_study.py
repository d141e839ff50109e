"""Whole-study time: Snakemake with and without warm workers, against the notebook way.

Runs the default study (``config.yaml``) on a reduced grid three ways, each in
its own temporary folder:

1. ``snakemake --cores N --until train_run`` with one process per training job
   (every job imports TensorFlow);
2. the same with a warm worker pool of N workers (``regbench.worker``), the
   pool's start-up counted in the wall time;
3. the notebook way: one Python process that loops over the same grid and
   calls ``model.fit`` (validation data, same epochs and batch size) and
   ``model.evaluate`` per run, one run after another, on the same prepared
   arrays; its wall time includes importing TensorFlow once.

For the two Snakemake runs it reads every training job's benchmark TSV
(``s``: the job's wall time, ``max_rss``) and ``metrics.json``
(``train_seconds``: time in the training loop) and prints the median
non-training time per job (``s - train_seconds``: process start, imports,
data loading, model building, evaluation, writing) and peak memory per job.
With the pool the job's own process is a thin client; the workers' peak
resident memory per run is read from their logs.

Run from the repository root::

    .venv/bin/python benchmarks/bench_study.py               # the reduced grid: 72 runs
    .venv/bin/python benchmarks/bench_study.py --seeds all --regularizers all --skip-notebook
    .venv/bin/python benchmarks/bench_study.py --regularizers none,l2 --seeds 0

``--no-hooks`` is passed to Snakemake so that a pool started by the
Snakefile's own ``onstart:`` hook (if any) does not blur the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


#: The reduced grid: every dataset and model of the default study, 4 of its 11
#: regularizers, 3 of its 5 seeds (72 runs instead of 330).
DEFAULT_REGULARIZERS = "none,l2,dropout_0.5,batch_norm"
DEFAULT_SEEDS = "0,1,2"


def study_config(
    seeds: list[int] | None, regularizers: list[str] | None, epochs: int | None
) -> dict[str, Any]:
    """The default study, cut down to the given seeds, regularizers and epochs."""
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    if seeds:
        config["seeds"] = seeds
    if regularizers:
        config["regularizers"] = {name: config["regularizers"][name] for name in regularizers}
        if config["baseline"] not in config["regularizers"]:
            config["baseline"] = regularizers[0]
    if epochs is not None:
        config["training"]["epochs"] = epochs
    return config


def run_snakemake(folder: Path, config: dict[str, Any], cores: int, workers: int) -> dict[str, Any]:
    """Run the study's training stage in ``folder``; with ``workers`` > 0 through a pool."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(folder),
        "--configfile",
        str(folder / "config.yaml"),
        "--cores",
        str(cores),
        "--until",
        "train_run",
        "--no-hooks",
        "--quiet",
        "all",
    ]
    started = time.perf_counter()
    if workers:
        pool = [sys.executable, "-m", "regbench.worker"]
        # As the Snakefile's onstart hook does: the workers import TensorFlow
        # while Snakemake builds its DAG and prepares the datasets.
        start = [*pool, "start", "--workers", str(workers), "--no-wait"]
        subprocess.run(start, cwd=folder, check=True)
    pool_ready = time.perf_counter() - started
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if workers:
        subprocess.run([*pool, "stop"], cwd=folder, check=True, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"snakemake failed in {folder}:\n{done.stderr[-5000:]}")
    return {"wall": wall, "pool_start": pool_ready if workers else None, **job_stats(folder)}


def job_stats(folder: Path) -> dict[str, Any]:
    """Per training job: wall time, time in training, non-training time and peak memory."""
    jobs = []
    for tsv in sorted((folder / "results/benchmarks/train_run").rglob("*.tsv")):
        header, values = tsv.read_text(encoding="utf-8").splitlines()[:2]
        row = dict(zip(header.split("\t"), values.split("\t"), strict=True))
        run = tsv.relative_to(folder / "results/benchmarks/train_run").with_suffix("")
        metrics = json.loads(
            (folder / "results/runs" / run.parent / run.name / "metrics.json").read_text("utf-8")
        )
        seconds = float(row["s"])
        log = (folder / "logs/train_run" / run.parent / f"{run.name}.log").read_text("utf-8")
        jobs.append(
            {
                "run": str(run),
                "reused": "reusing the model compiled" in log,
                "seconds": seconds,
                "train_seconds": float(metrics["train_seconds"]),
                "overhead": seconds - float(metrics["train_seconds"]),
                "max_rss": float(row["max_rss"]) if row["max_rss"] not in ("", "NA") else None,
            }
        )
    worker_rss = [
        float(match)
        for log in (folder / ".regbench").glob("worker-*.log")
        for match in re.findall(r"peak RSS ([\d.]+) MB", log.read_text(encoding="utf-8"))
    ]
    return {"jobs": jobs, "worker_rss": worker_rss}


NOTEBOOK = r"""
import json, sys, time
started = time.perf_counter()
import numpy as np
import keras
from regbench.datasets import load_prepared
from regbench.models import build_model, compile_model
from pathlib import Path
runs = json.loads(sys.stdin.read())
cache = {}
for run in runs:
    spec = run["spec"]
    if run["data"] not in cache:
        cache[run["data"]] = load_prepared(Path(run["data"]))
    data = cache[run["data"]]
    labels = "float32" if data.n_classes == 2 else "int64"
    keras.utils.set_random_seed(spec["seed"])
    model = build_model(spec["model"], spec["regularizer"], data.x_train.shape[1:], data.n_classes)
    compile_model(model, spec["training"], data.n_classes)
    model.fit(data.x_train, data.y_train.astype(labels),
              validation_data=(data.x_val, data.y_val.astype(labels)),
              epochs=spec["training"]["epochs"], batch_size=spec["training"]["batch_size"],
              verbose=0)
    model.evaluate(data.x_test, data.y_test.astype(labels), verbose=0)
print(json.dumps({"runs": len(runs), "seconds_in_process": time.perf_counter() - started}))
"""


def run_notebook(folder: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The grid trained one run after another in one process, with model.fit."""
    from regbench.config import load_study

    study = load_study(config)
    runs = [
        {
            "spec": study.run_spec(key),
            "data": str(folder / "results/data" / key.dataset / "data.npz"),
        }
        for key in study.runs
    ]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", NOTEBOOK],
        input=json.dumps(runs),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"the notebook-style loop failed:\n{done.stderr[-5000:]}")
    return {"wall": time.perf_counter() - started, "runs": len(runs)}


def describe(name: str, result: dict[str, Any]) -> None:
    """Print one Snakemake run's per-job numbers."""
    jobs = result["jobs"]
    overhead = [job["overhead"] for job in jobs]
    seconds = [job["seconds"] for job in jobs]
    training = [job["train_seconds"] for job in jobs]
    rss = [job["max_rss"] for job in jobs if job["max_rss"] is not None]
    print(f"\n== {name}: {len(jobs)} training jobs, wall {result['wall']:.1f} s ==")
    if result.get("pool_start") is not None:
        reused = sum(job["reused"] for job in jobs)
        print(
            f"pool launched in {result['pool_start']:.1f} s (workers import TensorFlow while "
            f"Snakemake starts); {reused} of {len(jobs)} runs reused a compiled model"
        )
    print(
        f"per job, median [p10, p90]: wall {_spread(seconds)} s, "
        f"in training loop {_spread(training)} s"
    )
    print(
        f"non-training time per job (s - train_seconds), median [p10, p90]: {_spread(overhead)} s"
    )
    if rss:
        print(
            f"peak RSS of the job's process: median {statistics.median(rss):.0f} MB, "
            f"max {max(rss):.0f} MB"
        )
    if result["worker_rss"]:
        worker = result["worker_rss"]
        print(
            f"peak RSS of a warm worker during a run: median {statistics.median(worker):.0f} MB, "
            f"max {max(worker):.0f} MB"
        )


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    low = ordered[int(0.1 * (len(ordered) - 1))]
    high = ordered[int(0.9 * (len(ordered) - 1))]
    return f"{statistics.median(values):.3f} [{low:.3f}, {high:.3f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default=DEFAULT_SEEDS, help="comma-separated, or all")
    parser.add_argument("--regularizers", default=DEFAULT_REGULARIZERS, help="likewise")
    parser.add_argument("--epochs", type=int, help="override training.epochs")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workers", type=int, help="pool size (default: --cores)")
    parser.add_argument("--skip-fresh", action="store_true", help="no one-process-per-job run")
    parser.add_argument("--skip-notebook", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the run folders here")
    args = parser.parse_args()
    config = study_config(
        None if args.seeds == "all" else [int(s) for s in args.seeds.split(",")],
        None if args.regularizers == "all" else args.regularizers.split(","),
        args.epochs,
    )
    workers = args.workers or args.cores
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_study-"))
    print(
        f"bench_study in {root}: seeds {config['seeds']}, "
        f"{len(config['regularizers'])} regularizers, {config['training']['epochs']} epochs, "
        f"--cores {args.cores}, {os.cpu_count()} CPU(s), "
        f"load average {os.getloadavg()[0]:.2f}"
    )

    pool = run_snakemake(root / "pool", config, args.cores, workers)
    describe(f"snakemake --cores {args.cores} with {workers} warm workers", pool)
    fresh = None
    if not args.skip_fresh:
        fresh = run_snakemake(root / "fresh", config, args.cores, 0)
        describe(f"snakemake --cores {args.cores}, one process per job", fresh)
        print(f"\nwall, one process per job / warm workers: {fresh['wall'] / pool['wall']:.1f}x")
    if not args.skip_notebook:
        # The notebook way reads the arrays the pool run prepared.
        notebook = run_notebook(root / "pool", config)
        print(
            f"\n== the notebook way: {notebook['runs']} runs, one process, sequential "
            f"model.fit: wall {notebook['wall']:.1f} s =="
        )
        print(f"notebook way / snakemake with warm workers: {notebook['wall'] / pool['wall']:.1f}x")
        if fresh is not None:
            print(
                f"notebook way / snakemake, one process per job: "
                f"{notebook['wall'] / fresh['wall']:.1f}x"
            )
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
