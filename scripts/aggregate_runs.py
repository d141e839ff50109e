"""Snakemake adapter for rule aggregate_runs."""

from regbench.jobs import AGGREGATE_OUTPUTS, aggregate_runs, redirect_output

sm = snakemake  # noqa: F821 (Snakemake injects it)
with redirect_output(sm.log[0]):
    aggregate_runs(
        sm.params.runs,
        sm.params.settings,
        sm.input.cards,
        {name: getattr(sm.output, name) for name in AGGREGATE_OUTPUTS},
    )
