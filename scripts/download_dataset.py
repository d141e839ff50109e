"""Snakemake adapter for rule download_dataset."""

from regbench.jobs import download_dataset, redirect_output

sm = snakemake  # noqa: F821 (Snakemake injects it)
with redirect_output(sm.log[0]):
    download_dataset(sm.params.url, sm.wildcards.sha256, sm.output[0], sm.log[0])
