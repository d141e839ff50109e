rule train_run:
    input:
        data="results/data/{dataset}/data.npz",
    output:
        metrics="results/runs/{dataset}/{model}/{regularizer}/seed{seed}/metrics.json",
        history="results/runs/{dataset}/{model}/{regularizer}/seed{seed}/history.csv",
        weights="results/runs/{dataset}/{model}/{regularizer}/seed{seed}/weights.npz",
    log:
        "logs/train_run/{dataset}/{model}/{regularizer}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_run/{dataset}/{model}/{regularizer}/seed{seed}.tsv"
    priority: get_train_priority
    conda:
        "../envs/regbench.yaml"
    # A warm worker pool (python -m regbench.worker start) runs one thread per
    # worker; a job asking for another count trains in its own process.
    threads: 1
    resources:
        **({"gpu": 1} if STUDY.config["training"]["device"] == "gpu" else {}),
        # What a job that trains in its own process needs (peak ~0.75 GB); with
        # a warm pool the job's own process needs ~30 MB (benchmarks/README.md).
        mem_mb=1500,
        # Only a study that demands a GPU declares one, so `--resources gpu=N`
        # bounds how many runs share the cards; `auto` and `cpu` studies (and
        # SLURM profiles, where gpu becomes --gpus) are unaffected.
    params:
        spec=get_run_spec,
        # Editing the training code retrains (see README, "Reruns").
        code=TRAINING_CODE,
    script:
        "../scripts/train_run.py"
