"""Whole-study time: Snakemake with and without warm workers, against the notebook way.

Runs the default study (``config.yaml``) on a reduced grid three ways, each in
its own temporary folder:

1. ``snakemake --cores N --until train_cell``, as a user runs it: one job per
   cell (its seeds trained together), handed to the warm workers the
   Snakefile's ``onstart`` hook starts (their start-up is in the wall time);
2. the same with ``REGBENCH_POOL=0``: every job trains in its own process;
3. the notebook way: one Python process that loops over the same grid and
   calls ``model.fit`` (validation data, same epochs and batch size) and
   ``model.evaluate`` per run, one run after another, on the same prepared
   arrays; its wall time includes importing TensorFlow once.

For the two Snakemake runs it reads every training job's benchmark TSV
(``s``: the job's wall time) and its seeds' ``metrics.json``
(``train_seconds``: each seed's share of the cell's training loop) and prints
the median non-training time per job (``s`` minus the cell's loop: process
start, imports, loading data, building and tracing, evaluation, writing),
and the peak resident memory of the process that trained each cell (the
worker, or the job's own process), which each job's log records.

Run from the repository root::

    .venv/bin/python benchmarks/bench_study.py               # the reduced grid: 72 runs
    .venv/bin/python benchmarks/bench_study.py --seeds all --regularizers all
    .venv/bin/python benchmarks/bench_study.py --regularizers none,l2 --seeds 0
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from wine import default_wine_csv, wine_spec

from regbench.config import load_study

REPO = Path(__file__).resolve().parents[1]


#: The reduced grid: every dataset and model of the default study, 4 of its 11
#: regularizers, 3 of its 5 seeds (72 runs instead of 330).
DEFAULT_REGULARIZERS = "none,l2,dropout_0.5,batch_norm"
DEFAULT_SEEDS = "0,1,2"


def study_config(
    study: Path,
    seeds: list[int] | None,
    regularizers: list[str] | None,
    epochs: int | None,
    local_copies: Mapping[str, Path],
) -> dict[str, Any]:
    """A study, cut down to the given seeds, regularizers and epochs.

    A dataset downloaded from a URL is read from a local copy instead where
    ``local_copies`` (URL to file) names one that exists (``file://``; its sha256 is checked
    as a download's), since this machine may not reach the internet.
    """
    config = yaml.safe_load(study.read_text(encoding="utf-8"))
    if seeds:
        config["seeds"] = seeds
    if regularizers:
        config["regularizers"] = {name: config["regularizers"][name] for name in regularizers}
        if config["baseline"] not in config["regularizers"]:
            config["baseline"] = regularizers[0]
    if epochs is not None:
        config["training"]["epochs"] = epochs
    for dataset in config["datasets"].values():
        copy = local_copies.get(dataset.get("url", ""))
        if copy is not None and copy.exists():
            dataset["url"] = copy.resolve().as_uri()
    return config


def run_snakemake(folder: Path, config: dict[str, Any], cores: int, pool: bool) -> dict[str, Any]:
    """Run the study's training stage in ``folder``, with warm workers or without."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    command = [
        *(sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")),
        *("--directory", str(folder), "--configfile", str(folder / "config.yaml")),
        *("--cores", str(cores), "--until", "train_cell", "--quiet", "all"),
    ]
    env = {**os.environ, "REGBENCH_POOL": "1" if pool else "0"}
    env.pop("REGBENCH_POOL_SOCKET", None)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"snakemake failed in {folder}:\n{done.stderr[-5000:]}")
    workers = re.findall(r"regbench: (\d+) warm training worker", done.stderr)
    return {"wall": wall, "workers": int(workers[0]) if workers else 0, **job_stats(folder, config)}


def job_stats(folder: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Per training job (a cell): wall time, time in its training loop, the rest, peak memory."""
    jobs = []
    for cell in load_study(config).cells:
        if not (folder / cell.benchmark).exists():
            continue
        header, values = (folder / cell.benchmark).read_text("utf-8").splitlines()[:2]
        row = dict(zip(header.split("\t"), values.split("\t"), strict=True))
        metrics = [folder / cell.run(seed).output("metrics.json") for seed in config["seeds"]]
        loop = sum(
            float(json.loads(path.read_text("utf-8"))["train_seconds"])
            for path in metrics
            if path.exists()
        )
        log = (folder / cell.log).read_text("utf-8")
        rss = re.findall(r"peak RSS of the training process: ([\d.]+) MB", log)
        seconds = float(row["s"])
        jobs.append(
            {
                "cell": cell.path,
                "warm": "in warm worker" in log,
                "seconds": seconds,
                "train_seconds": loop,
                "overhead": seconds - loop,
                "training_rss": float(rss[-1]) if rss else None,
            }
        )
    return {"jobs": jobs}


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


def run_notebook(folder: Path, config: dict[str, Any], seeds: int | None) -> dict[str, Any]:
    """The grid trained one run after another in one process, with model.fit.

    With ``seeds``, only each cell's first ``seeds`` seeds are trained, and the
    wall time for the whole grid is projected from them (runs are independent
    and sequential, so the time grows linearly with their number).
    """
    from regbench.config import load_study

    study = load_study(config)
    chosen = study.seeds[:seeds] if seeds else study.seeds
    runs = [
        {
            "spec": study.run_spec(key),
            "data": str(folder / study.run_data(key)),
        }
        for key in study.runs
        if key.seed in chosen
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
    wall = time.perf_counter() - started
    return {"wall": wall * len(study.runs) / len(runs), "measured": wall, "runs": len(runs)}


def describe(name: str, result: dict[str, Any]) -> None:
    """Print one Snakemake run's per-job numbers."""
    jobs = result["jobs"]
    overhead = [job["overhead"] for job in jobs]
    seconds = [job["seconds"] for job in jobs]
    training = [job["train_seconds"] for job in jobs]
    rss = [job["training_rss"] for job in jobs if job["training_rss"] is not None]
    print(f"\n== {name}: {len(jobs)} training jobs (cells), wall {result['wall']:.1f} s ==")
    print(
        f"{result['workers']} warm worker(s); {sum(job['warm'] for job in jobs)} of "
        f"{len(jobs)} cells trained by one"
    )
    print(
        f"per job, median [p10, p90]: wall {_spread(seconds)} s, "
        f"in training loop {_spread(training)} s"
    )
    print(f"non-training time per job, median [p10, p90]: {_spread(overhead)} s")
    if rss:
        print(
            f"peak RSS of the process that trained a cell: median "
            f"{statistics.median(rss):.0f} MB, max {max(rss):.0f} MB"
        )


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    low = ordered[int(0.1 * (len(ordered) - 1))]
    high = ordered[int(0.9 * (len(ordered) - 1))]
    return f"{statistics.median(values):.3f} [{low:.3f}, {high:.3f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", type=Path, default=REPO / "config.yaml", help="a study file")
    parser.add_argument("--seeds", default=DEFAULT_SEEDS, help="comma-separated, or all")
    parser.add_argument("--regularizers", default=DEFAULT_REGULARIZERS, help="likewise")
    parser.add_argument("--epochs", type=int, help="override training.epochs")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--skip-fresh", action="store_true", help="no one-process-per-job run")
    parser.add_argument("--skip-notebook", action="store_true")
    parser.add_argument(
        "--notebook-seeds", type=int, help="run only this many seeds per cell the notebook way"
    )
    parser.add_argument("--keep", type=Path, help="keep the run folders here")
    parser.add_argument(
        "--wine-csv",
        type=Path,
        default=default_wine_csv(),
        help="a verified copy of study A's wine file (default: $REGBENCH_WINE_CSV, else the "
        "download cache's copy, %(default)s)",
    )
    args = parser.parse_args()
    config = study_config(
        args.study,
        None if args.seeds == "all" else [int(s) for s in args.seeds.split(",")],
        None if args.regularizers == "all" else args.regularizers.split(","),
        args.epochs,
        {wine_spec()["url"]: args.wine_csv},
    )
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_study-"))
    print(
        f"bench_study in {root}: seeds {config['seeds']}, "
        f"{len(config['regularizers'])} regularizers, {config['training']['epochs']} epochs, "
        f"--cores {args.cores}, {os.cpu_count()} CPU(s), "
        f"load average {os.getloadavg()[0]:.2f}"
    )

    pool = run_snakemake(root / "pool", config, args.cores, pool=True)
    describe(f"snakemake --cores {args.cores}, warm workers", pool)
    fresh = None
    if not args.skip_fresh:
        fresh = run_snakemake(root / "fresh", config, args.cores, pool=False)
        describe(f"snakemake --cores {args.cores}, REGBENCH_POOL=0: one process per job", fresh)
        print(f"\nwall, one process per job / warm workers: {fresh['wall'] / pool['wall']:.1f}x")
    if not args.skip_notebook:
        # The notebook way reads the arrays the pool run prepared.
        notebook = run_notebook(root / "pool", config, args.notebook_seeds)
        projected = (
            f" ({notebook['runs']} runs took {notebook['measured']:.1f} s; projected to the grid)"
            if notebook["measured"] != notebook["wall"]
            else ""
        )
        print(
            f"\n== the notebook way: one process, sequential model.fit: "
            f"wall {notebook['wall']:.1f} s{projected} =="
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
