# regbench: a neural-network regularization study, from config to report.
# The study is declared in config.yaml (or --configfile studies/<name>.yaml).

import os
import sys

from snakemake.utils import min_version

from regbench import worker
from regbench.progress import Progress

min_version("9.0")


# A study given with --configfile replaces the default one; Snakemake would
# otherwise merge the two, mixing the default study's datasets into it.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/report.smk"


# Runs done, elapsed and time left, printed while the study runs.
PROGRESS = Progress(
    [f"results/runs/{key.path}/metrics.json" for key in STUDY.runs],
    interval=float(os.environ.get("REGBENCH_PROGRESS_SECONDS", "30")),
)


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


onstart:
    PROGRESS.start()
    start_pool()


onsuccess:
    stop_pool()
    PROGRESS.stop()


onerror:
    stop_pool()
    PROGRESS.stop()


rule all:
    default_target: True
    input:
        "reports/report.html",
        "reports/report.pdf",
