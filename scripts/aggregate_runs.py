"""Snakemake adapter for rule aggregate_runs."""

from regbench.jobs import aggregate_runs, redirect_output

sm = snakemake  # noqa: F821 (Snakemake injects it)
with redirect_output(sm.log[0]):
    aggregate_runs(
        sm.params.runs,
        sm.params.baseline,
        sm.output.runs,
        sm.output.summary,
        sm.output.comparisons,
        sm.output.rankings,
        sm.output.architectures,
    )
