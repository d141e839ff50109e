# regbench: a neural-network regularization study, from config to report.
# The study is declared in config.yaml (or --configfile studies/<name>.yaml).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/report.smk"


rule all:
    input:
        "reports/report.html",
        "reports/report.pdf",
    default_target: True
