rule prepare_dataset:
    output:
        data="results/data/{dataset}/data.npz",
        card="results/data/{dataset}/card.json",
    params:
        spec=get_dataset_spec,
    log:
        "logs/prepare_dataset/{dataset}.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/prepare_dataset.py"
