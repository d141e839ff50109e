"""Snakemake adapter for rule train_run."""

from regbench.jobs import redirect_output, train_run

sm = snakemake  # noqa: F821 (Snakemake injects it)
with redirect_output(sm.log[0]):
    train_run(
        sm.params.spec,
        sm.input.data,
        sm.output.metrics,
        sm.output.history,
        sm.output.weights,
        threads=sm.threads,
    )
