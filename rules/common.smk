# The study is validated and resolved by the regbench package before any job
# runs; rules only ask it for names, paths and canonical specs.

import json
import os
import re
import sys
from pathlib import Path

from regbench.config import (
    CellKey,
    ConfigError,
    RunKey,
    canonical_json,
    prepared_folder,
)
from regbench.fingerprint import (
    PREPARATION_MODULES,
    TRAINING_MODULES,
    code_digest,
    git_commit,
)
from regbench import worker
from regbench.download import download_cache, download_path
from regbench.inputs import FILE_NAME
from regbench.preflight import load_checked

# Shared by every study run from this folder; $REGBENCH_DOWNLOADS moves it.
DOWNLOADS = download_cache()
# A study's own functions are looked up beside its file first (regbench.custom).
CONFIG_FILES = [Path(f).resolve() for f in workflow.configfiles]
try:
    # Every check made before any job runs (regbench.preflight).
    STUDY = load_checked(
        config,
        workflow.configfiles,
        dict(workflow.config_settings.config),
        DOWNLOADS,
    )
except ConfigError as error:
    # The message names the file (or --config) and the key at fault, and what is
    # allowed; Snakemake would wrap it in a traceback of this file, so it is
    # printed alone instead.
    sys.exit(f"regbench: {error}")
TRAINING_CODE = code_digest(TRAINING_MODULES)
PREPARATION_CODE = code_digest(PREPARATION_MODULES)
# Computed here, once: a compute node running the report may have no git.
PROJECT_COMMIT = git_commit(Path(workflow.basedir))
CONFIG_COMMIT = (
    "; ".join(git_commit(Path(workflow.basedir), f) for f in CONFIG_FILES)
    or "given on the command line"
)


wildcard_constraints:
    dataset="|".join(map(re.escape, STUDY.datasets)),
    model="|".join(map(re.escape, STUDY.config["models"])),
    regularizer="|".join(map(re.escape, STUDY.config["regularizers"])),
    seed=r"\d+",


def get_dataset_spec(wildcards):
    return canonical_json(STUDY.dataset_spec(wildcards.dataset))


def get_split_spec(wildcards):
    """One seed's split of a dataset that draws one per seed: its spec and the seed."""
    return canonical_json(STUDY.split_spec(wildcards.dataset, int(wildcards.seed)))


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


def get_cell_spec(wildcards):
    """Everything the cell's runs share (their specs but the seed), canonically."""
    cell = CellKey(wildcards.dataset, wildcards.model, wildcards.regularizer)
    return canonical_json(STUDY.cell_spec(cell))


def get_cell_data(wildcards):
    """The prepared data a cell trains on: one file, or one per seed."""
    return STUDY.cell_data(
        CellKey(wildcards.dataset, wildcards.model, wildcards.regularizer)
    )


def get_cell_outputs(name):
    """One output file per seed of a cell, as patterns over the cell's wildcards."""
    cell = CellKey("{dataset}", "{model}", "{regularizer}")
    return [cell.run(seed).output(name) for seed in STUDY.seeds]


# A cell training in its own process peaked at 763 MB (median) and 846 MB (max)
# over the default study's 66 cells of five seeds (benchmarks/README.md), most
# of it TensorFlow itself; a cell with larger data or models needs more.
CELL_MEM_MB = 1500


# REGBENCH_ALLOW_MISSING=1 builds the tables and report from the runs that have
# finished, marking the others missing, instead of (re)training them.
ALLOW_MISSING = os.environ.get("REGBENCH_ALLOW_MISSING") == "1"


#: What each of a cell's seeds leaves (the rule's outputs besides its record).
RUN_OUTPUTS = ("metrics.json", "history.csv", "weights.npz")


def get_cell_records(wildcards):
    """What the tables wait for: one record per cell, which its job writes last.

    A cell whose record exists but some of whose runs' files are gone (deleted by
    hand, or a seed added to the study) is asked for by those files instead, so
    Snakemake trains it again. With REGBENCH_ALLOW_MISSING=1 only the cells that
    finished are asked for, and nothing is (re)trained.
    """
    wanted = []
    for cell in STUDY.cells:
        done = os.path.exists(cell.record)
        if ALLOW_MISSING:
            wanted.extend([cell.record] if done else [])
            continue
        gone = [
            path
            for seed in STUDY.seeds
            for path in map(cell.run(seed).output, RUN_OUTPUTS)
            if done and not os.path.exists(path)
        ]
        wanted.extend(gone or [cell.record])
    return wanted


def get_dataset_cards(wildcards=None):
    """Every data card: one per dataset, or one per seed where the seeds' splits differ."""
    return [
        card
        for name in STUDY.datasets
        for card in STUDY.prepared_files(name, "card.json")
    ]


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


# Training jobs hand their cells to warm workers that imported TensorFlow once
# (regbench.worker), when the study trains on this machine's CPUs;
# REGBENCH_POOL=0 opts out. The pool ends when Snakemake does, however it ends.
POOL = []


def train_jobs_get_gpus():
    """Whether training jobs hold GPUs (the study demands one, or a profile gives them one)."""
    if STUDY.config["training"]["device"] == "gpu":
        return True
    gpu = rules.train_cell.rule.resources.get("gpu")
    return getattr(gpu, "value", gpu) not in (None, 0)


def start_pool():
    if (
        os.environ.get("REGBENCH_POOL", "1") != "0"
        and workflow.local_exec
        and "SLURM_JOB_ID" not in os.environ
        and not train_jobs_get_gpus()
    ):
        workers = worker.pool_size(int(workflow.cores or 1))
        POOL.append(worker.start_pool(workers))
        print(f"regbench: {workers} warm training worker(s) starting", file=sys.stderr)


def stop_pool():
    while POOL:
        POOL.pop().stop()
