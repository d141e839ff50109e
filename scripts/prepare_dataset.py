"""Snakemake adapter for rule prepare_dataset."""

from regbench.jobs import prepare_dataset, redirect_output

sm = snakemake  # noqa: F821 (Snakemake injects it)
with redirect_output(sm.log[0]):
    prepare_dataset(sm.params.spec, sm.output.data, sm.output.card)
