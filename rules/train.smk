from regbench.worker import schedule_ranks


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
    key = RunKey(wildcards.dataset, wildcards.model, wildcards.regularizer, int(wildcards.seed))
    return -TRAIN_RANKS[key]


rule train_run:
    input:
        data="results/data/{dataset}/data.npz",
    output:
        metrics="results/runs/{dataset}/{model}/{regularizer}/seed{seed}/metrics.json",
        history="results/runs/{dataset}/{model}/{regularizer}/seed{seed}/history.csv",
        weights="results/runs/{dataset}/{model}/{regularizer}/seed{seed}/weights.npz",
    params:
        spec=get_run_spec,
    log:
        "logs/train_run/{dataset}/{model}/{regularizer}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_run/{dataset}/{model}/{regularizer}/seed{seed}.tsv"
    priority: get_train_priority
    # A warm worker pool (python -m regbench.worker start) runs one thread per
    # worker; a job asking for another count trains in its own process.
    threads: 1
    resources:
        # What a job that trains in its own process needs (peak ~0.75 GB); with
        # a warm pool the job's own process needs ~30 MB (benchmarks/README.md).
        mem_mb=1500,
        # Only a study that demands a GPU declares one, so `--resources gpu=N`
        # bounds how many runs share the cards; `auto` and `cpu` studies (and
        # SLURM profiles, where gpu becomes --gpus) are unaffected.
        **({"gpu": 1} if STUDY.config["training"]["device"] == "gpu" else {}),
    script:
        "../scripts/train_run.py"
