"""Snakemake adapter for rule plot_figures."""

from regbench.jobs import plot_figures, redirect_output

sm = snakemake  # noqa: F821 (Snakemake injects it)
with redirect_output(sm.log[0]):
    plot_figures(
        sm.input.runs,
        sm.input.comparisons,
        sm.input.rankings,
        sm.params.settings,
        sm.output[0],
        dose_response_csv=sm.input.dose_response,
    )
