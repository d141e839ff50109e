"""Snakemake adapter for rule prepare_dataset."""

from regbench.jobs import prepare_dataset, redirect_output

with redirect_output(snakemake.log[0]):  # noqa: F821 (Snakemake injects it)
    prepare_dataset(snakemake.params.spec, snakemake.output.data, snakemake.output.card)  # noqa: F821
