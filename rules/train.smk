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
    threads: 1
    resources:
        mem_mb=1500,
    script:
        "../scripts/train_run.py"
