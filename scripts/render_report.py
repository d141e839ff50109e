"""Snakemake adapter for rule render_report."""

from pathlib import Path

from regbench.jobs import redirect_output, render_report
from regbench.report import REPORT_TABLES

sm = snakemake  # noqa: F821 (Snakemake injects it)
with redirect_output(sm.log[0]):
    render_report(
        sm.params.study,
        sm.params.skipped,
        {name: sm.input[name] for name in REPORT_TABLES},
        sm.input.cards,
        sm.input.figures,
        str(Path(sm.input.template).parent),
        sm.output.html,
        sm.output.pdf,
        commit=sm.params.commit,
        config_commit=sm.params.config_commit,
        main_figures=sm.output.figures,
    )
