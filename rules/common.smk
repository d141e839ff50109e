# The study is validated and resolved by the regbench package before any job
# runs; rules only ask it for names, paths and canonical specs.

import json
import os
import re
import sys
from pathlib import Path

from regbench.config import ConfigError, RunKey, canonical_json, load_study
from regbench.fingerprint import (
    PREPARATION_MODULES,
    TRAINING_MODULES,
    code_digest,
    git_commit,
)
from regbench import worker
from regbench.worker import schedule_ranks
from regbench.download import download_cache, download_path
from regbench.inputs import FILE_NAME

try:
    STUDY = load_study(config)
except ConfigError as error:
    # The message names the key at fault and what is allowed; Snakemake would
    # wrap it in a traceback of this file, so it is printed alone instead.
    sys.exit(
        f"regbench: {', '.join(map(str, workflow.configfiles)) or 'config'}: {error}"
    )
TRAINING_CODE = code_digest(TRAINING_MODULES)
PREPARATION_CODE = code_digest(PREPARATION_MODULES)
# Computed here, once: a compute node running the report may have no git.
PROJECT_COMMIT = git_commit(Path(workflow.basedir))
CONFIG_FILES = [Path(f).resolve() for f in workflow.configfiles]
CONFIG_COMMIT = (
    "; ".join(git_commit(Path(workflow.basedir), f) for f in CONFIG_FILES)
    or "given on the command line"
)
# Shared by every study run from this folder; $REGBENCH_DOWNLOADS moves it.
DOWNLOADS = download_cache()


wildcard_constraints:
    dataset="|".join(map(re.escape, STUDY.datasets)),
    model="|".join(map(re.escape, STUDY.config["models"])),
    regularizer="|".join(map(re.escape, STUDY.config["regularizers"])),
    seed=r"\d+",


def get_dataset_spec(wildcards):
    return canonical_json(STUDY.dataset_spec(wildcards.dataset))


def get_dataset_download(wildcards):
    """The verified file a URL dataset is read from; other sources need no input."""
    spec = STUDY.dataset_spec(wildcards.dataset)
    return [str(download_path(spec, DOWNLOADS))] if spec["source"] == "url" else []


def get_download_url(wildcards):
    """The URL of {sha256}/{file}: any dataset's that names it, the bytes are the same."""
    for name in STUDY.datasets:
        spec = STUDY.dataset_spec(name)
        if spec["source"] == "url" and download_path(spec, DOWNLOADS).parts[-2:] == (
            wildcards.sha256,
            wildcards.file,
        ):
            return spec["url"]
    raise ValueError(
        f"no dataset in this study downloads {wildcards.sha256}/{wildcards.file}"
    )


def get_prepare_mem_mb(wildcards):
    """Full CIFAR-10 needs a few GB while it is scaled; everything else fits in one."""
    spec = STUDY.dataset_spec(wildcards.dataset)
    return 4000 if spec["source"] == "url" and spec["format"] == "cifar" else 1000


def get_run_spec(wildcards):
    key = RunKey(
        wildcards.dataset, wildcards.model, wildcards.regularizer, int(wildcards.seed)
    )
    return canonical_json(STUDY.run_spec(key))


# REGBENCH_ALLOW_MISSING=1 builds the tables and report from the runs that have
# finished, marking the others missing, instead of (re)training them.
ALLOW_MISSING = os.environ.get("REGBENCH_ALLOW_MISSING") == "1"


def finished_runs():
    """The runs whose outputs the report waits for: all of them, or the finished ones."""
    if not ALLOW_MISSING:
        return STUDY.runs
    return [key for key in STUDY.runs if os.path.exists(key.output("metrics.json"))]


def get_run_files(name):
    """An input function: one output file of each run the report waits for."""
    return lambda wildcards: [key.output(name) for key in finished_runs()]


def get_run_benchmarks(wildcards):
    return [key.benchmark for key in finished_runs()]


def get_dataset_cards(wildcards=None):
    return [f"results/data/{name}/card.json" for name in STUDY.datasets]


def get_skipped_json(wildcards=None):
    """Every skipped combination with its reason; the report groups them."""
    return canonical_json(
        [
            {
                "dataset": item.dataset,
                "model": item.model,
                "regularizer": item.regularizer,
                "reason": item.reason,
            }
            for item in STUDY.skipped
        ]
    )


def get_report_study(wildcards=None):
    return canonical_json(STUDY.config)


def _parallel_jobs():
    try:
        return int(workflow.cores)
    except Exception:  # No --cores (a dry run): any order will do.
        return 1


# Training jobs run in an order that lets a warm worker train a cell's seeds one
# after another on the model it compiled for the first (regbench.worker.schedule_ranks).
TRAIN_RANKS = schedule_ranks(STUDY.runs, _parallel_jobs())


def get_train_priority(wildcards):
    """Higher runs first: minus the run's place in the training order."""
    key = RunKey(
        wildcards.dataset, wildcards.model, wildcards.regularizer, int(wildcards.seed)
    )
    return -TRAIN_RANKS[key]


# Training jobs hand their runs to warm workers that imported TensorFlow once
# (regbench.worker), when the study runs on this machine; REGBENCH_POOL=0 opts out.
STARTED_POOL = []


def start_pool():
    if (
        os.environ.get("REGBENCH_POOL", "1") != "0"
        and workflow.local_exec
        and STUDY.config["training"]["device"] != "gpu"
    ):
        workers = worker.pool_size(int(workflow.cores or 1))
        STARTED_POOL.append(worker.start_pool(workers, wait=None))
        print(f"regbench: {workers} warm training worker(s) starting", file=sys.stderr)


def stop_pool():
    if STARTED_POOL:
        worker.stop_pool()
