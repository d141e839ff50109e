rule download_dataset:
    # Content-addressed: the path holds the sha256, so no study run from this
    # folder downloads it again; loading a study and preparing it verify it again.
    output:
        f"{DOWNLOADS}/{{sha256}}/{{file}}",
    log:
        "logs/download_dataset/{sha256}/{file}.log",
    wildcard_constraints:
        sha256="[0-9a-f]{64}",
        file=FILE_NAME.pattern,
    localrule: True
    conda:
        "../envs/regbench.yaml"
    # A job of its own (not a `run:` block inside Snakemake), so that SIGTERM
    # and SIGINT reach the download, which stops at once and removes its
    # partial file. A changed url downloads the file again.
    params:
        url=get_download_url,
    script:
        "../scripts/download_dataset.py"


rule prepare_dataset:
    # A dataset with one split for every seed (split.vary: fixed, the default).
    input:
        download=get_dataset_download,
    output:
        data=f"{prepared_folder('{dataset}')}/data.npz",
        card=f"{prepared_folder('{dataset}')}/card.json",
    log:
        "logs/prepare_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_dataset/{dataset}.tsv"
    conda:
        "../envs/regbench.yaml"
    resources:
        mem_mb=get_prepare_mem_mb,
        runtime=30,
    params:
        spec=get_dataset_spec,
        # Editing the preparation code prepares again (see README, "Reruns").
        code=PREPARATION_CODE,
    script:
        "../scripts/prepare_dataset.py"


rule prepare_split:
    # One seed's split of a dataset whose seeds draw their own (split.vary: seed):
    # every cell of the dataset trains that seed on it, so it is prepared once.
    input:
        download=get_dataset_download,
    output:
        data=f"{prepared_folder('{dataset}', '{seed}')}/data.npz",
        card=f"{prepared_folder('{dataset}', '{seed}')}/card.json",
    log:
        "logs/prepare_split/{dataset}/seed{seed}.log",
    benchmark:
        "results/benchmarks/prepare_split/{dataset}/seed{seed}.tsv"
    conda:
        "../envs/regbench.yaml"
    resources:
        mem_mb=get_prepare_mem_mb,
        runtime=30,
    params:
        spec=get_split_spec,
        code=PREPARATION_CODE,
    script:
        "../scripts/prepare_dataset.py"
