# regbench: a neural-network regularization study, from config to report.
# The study is declared in config.yaml (or --configfile studies/<name>.yaml).

import os

from snakemake.utils import min_version

from regbench import progress

min_version("9.0")


# `snakemake --report report.zip` describes the study with this text, then carries the
# report, the tables and the main figures (outputs marked with report() in rules/).
report: "templates/captions/workflow.rst"


# A study given with --configfile replaces the default one; Snakemake would
# otherwise merge the two, mixing the default study's datasets into it.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/report.smk"


# This invocation's jobs done, elapsed and time left, printed while the study runs.
PROGRESS = progress.attach(float(os.environ.get("REGBENCH_PROGRESS_SECONDS", "30")))


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
