"""Snakemake adapter for rule train_cell."""

import traceback

from regbench.jobs import redirect_output, train_cell

sm = snakemake  # noqa: F821 (Snakemake injects it)
with redirect_output(sm.log[0]):
    try:
        train_cell(
            sm.params.cell,
            sm.params.seeds,
            sm.input.data,
            sm.output.metrics,
            sm.output.history,
            sm.output.weights,
            threads=sm.threads,
            code=sm.params.code,
            log=sm.log[0],
            gpus=int(sm.resources.get("gpu", 0)),
            record=sm.output.record,
        )
    except BaseException:
        # Into the job's log, not only onto Snakemake's console; then fail the job.
        traceback.print_exc()
        raise
