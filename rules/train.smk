rule train_cell:
    # One job per dataset x model x regularizer: its seeds train together, and
    # each seed's files land in its own run folder.
    input:
        # One file every seed shares, or one per seed when its seeds draw their own splits.
        data=get_cell_data,
    output:
        metrics=get_cell_outputs("metrics.json"),
        history=get_cell_outputs("history.csv"),
        weights=get_cell_outputs("weights.npz"),
        # Written last; the tables wait for it (one file per cell, not three per seed).
        record=CellKey("{dataset}", "{model}", "{regularizer}").record,
    log:
        CellKey("{dataset}", "{model}", "{regularizer}").log,
    benchmark:
        CellKey("{dataset}", "{model}", "{regularizer}").benchmark
    conda:
        "../envs/regbench.yaml"
    # A warm worker (regbench.worker) runs one thread; a job asking for another
    # count trains in its own process.
    threads: 1
    resources:
        # Only a study that demands a GPU declares one, so `--resources gpu=N`
        # bounds how many cells share the cards; `auto` and `cpu` studies (and
        # SLURM profiles, where gpu becomes --gpus) are unaffected.
        **({"gpu": 1} if STUDY.config["training"]["device"] == "gpu" else {}),
        # What a cell that trains in its own process (SLURM, GPU, REGBENCH_POOL=0)
        # needs: its measured peak resident memory, with room to spare. With warm
        # workers the job's own process needs ~30 MB; the workers are outside it.
        mem_mb=CELL_MEM_MB,
    params:
        cell=get_cell_spec,
        seeds=canonical_json(STUDY.seeds),
        # Editing the training code retrains (see README, "Reruns").
        code=TRAINING_CODE,
    script:
        "../scripts/train_cell.py"
