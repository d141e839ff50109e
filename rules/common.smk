# The study is validated and resolved by the regbench package before any job
# runs; rules only ask it for names, paths and canonical specs.

import json
import re

from regbench.config import RunKey, canonical_json, load_study

STUDY = load_study(config)


wildcard_constraints:
    dataset="|".join(map(re.escape, STUDY.datasets)),
    model="|".join(map(re.escape, STUDY.config["models"])),
    regularizer="|".join(map(re.escape, STUDY.config["regularizers"])),
    seed=r"\d+",


def get_dataset_spec(wildcards):
    return canonical_json(STUDY.dataset_spec(wildcards.dataset))


def get_run_spec(wildcards):
    key = RunKey(wildcards.dataset, wildcards.model, wildcards.regularizer, int(wildcards.seed))
    return canonical_json(STUDY.run_spec(key))


def get_run_metrics(wildcards=None):
    return [f"results/runs/{key.path}/metrics.json" for key in STUDY.runs]


def get_dataset_cards(wildcards=None):
    return [f"results/data/{name}/card.json" for name in STUDY.datasets]


def get_skipped_json(wildcards=None):
    grouped = {}
    for item in STUDY.skipped:
        entry = grouped.setdefault(
            (item.dataset, item.model),
            {"dataset": item.dataset, "model": item.model, "regularizers": [], "reason": item.reason},
        )
        entry["regularizers"].append(item.regularizer)
    return canonical_json(
        [{**entry, "regularizers": ", ".join(entry["regularizers"])} for entry in grouped.values()]
    )


def get_report_study(wildcards=None):
    return canonical_json(STUDY.config)
