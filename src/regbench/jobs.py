"""One function per pipeline rule: what the Snakemake scripts call.

Each takes plain paths and the canonical JSON the rule passes as ``params``,
so the rules stay declarative and every step can run without Snakemake.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "aggregate_runs",
    "plot_figures",
    "prepare_dataset",
    "redirect_output",
    "render_report",
    "train_run",
]


@contextlib.contextmanager
def redirect_output(log_path: str | os.PathLike[str]) -> Iterator[None]:
    """Send this process's stdout and stderr, native libraries' included, to the job log."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def prepare_dataset(spec_json: str, npz: str, card: str) -> None:
    """Load, split and scale one dataset; write its arrays and data card."""
    from regbench.datasets import data_card, load_raw, prepare, write_prepared

    spec = json.loads(spec_json)
    raw = load_raw(spec)
    data = prepare(spec, raw)
    write_prepared(data, data_card(spec, raw, data), Path(npz), Path(card))
    print(f"prepared {spec['name']}: {data_card(spec, raw, data)['split_sizes']}", flush=True)


def train_run(
    spec_json: str, data_npz: str, metrics: str, history: str, weights: str, threads: int
) -> None:
    """Train one run and write its metrics, history and weights."""
    from regbench.datasets import load_prepared
    from regbench.training import configure_tensorflow, train, write_result

    spec = json.loads(spec_json)
    device = configure_tensorflow(threads, spec["training"]["device"])
    print(f"training on {device} with {threads} thread(s): {spec_json}", flush=True)
    result = train(spec, load_prepared(Path(data_npz)), device=device,
                   log=lambda line: print(line, flush=True))
    write_result(result, Path(metrics), Path(history), Path(weights))
    print(f"status {result.metrics['status']} in {result.metrics['train_seconds']} s", flush=True)


def _run_key_from_path(metrics_path: str) -> Any:
    from regbench.config import RunKey

    *_, dataset, model, regularizer, seed_dir, _ = Path(metrics_path).parts
    return RunKey(dataset, model, regularizer, int(seed_dir.removeprefix("seed")))


def aggregate_runs(
    metrics_paths: Sequence[str],
    benchmark_paths: Sequence[str],
    baseline: str,
    runs_csv: str,
    summary_csv: str,
    comparisons_csv: str,
    rankings_csv: str,
    architectures_json: str,
) -> None:
    """Tidy tables from every run's metrics, with comparisons and rankings."""
    from regbench.aggregate import RunFiles, collect_runs, compare, rank, summarize

    runs, architectures = collect_runs(
        RunFiles(_run_key_from_path(m), Path(m), Path(b))
        for m, b in zip(metrics_paths, benchmark_paths, strict=True)
    )
    runs.to_csv(runs_csv, index=False)
    Path(architectures_json).write_text(
        json.dumps(architectures, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    summarize(runs).to_csv(summary_csv, index=False)
    compare(runs, baseline).to_csv(comparisons_csv, index=False)
    rank(runs).to_csv(rankings_csv, index=False)
    print(f"aggregated {len(runs)} runs", flush=True)


def plot_figures(
    runs_csv: str, summary_csv: str, rankings_csv: str, runs_dir: str, baseline: str, out_dir: str
) -> None:
    """Draw every figure from the tables and the runs' histories."""
    import pandas as pd

    from regbench.figures import load_history, load_weights, plot_all

    def history_of(dataset: str, model: str, regularizer: str, seed: int) -> Any:
        return load_history(Path(runs_dir, dataset, model, regularizer, f"seed{seed}", "history.csv"))

    def weights_of(dataset: str, model: str, regularizer: str, seed: int) -> Any:
        return load_weights(Path(runs_dir, dataset, model, regularizer, f"seed{seed}", "weights.npz"))

    manifest = plot_all(
        pd.read_csv(runs_csv),
        pd.read_csv(summary_csv),
        pd.read_csv(rankings_csv),
        history_of,
        weights_of,
        baseline,
        Path(out_dir),
    )
    print(f"drew {len(manifest)} figures", flush=True)


def render_report(
    study_json: str,
    skipped_json: str,
    runs_csv: str,
    summary_csv: str,
    comparisons_csv: str,
    rankings_csv: str,
    architectures_json: str,
    cards: Sequence[str],
    figure_dir: str,
    template_dir: str,
    html_path: str,
    pdf_path: str,
) -> None:
    """Render the HTML and PDF report."""
    import pandas as pd

    from regbench.report import build_context, render_html, write_pdf

    config = json.loads(study_json)
    figure_path = Path(figure_dir)
    context = build_context(
        config=config,
        runs=pd.read_csv(runs_csv),
        summary=pd.read_csv(summary_csv),
        comparisons=pd.read_csv(comparisons_csv),
        rankings=pd.read_csv(rankings_csv),
        architectures=json.loads(Path(architectures_json).read_text("utf-8")),
        cards={Path(c).parent.name: json.loads(Path(c).read_text("utf-8")) for c in cards},
        figures=json.loads((figure_path / "figures.json").read_text("utf-8")),
        figure_dir=figure_path,
        skipped=json.loads(skipped_json),
        project_dir=Path(template_dir).resolve().parent,
    )
    html = render_html(context, Path(template_dir))
    Path(html_path).write_text(html, encoding="utf-8")
    write_pdf(html, Path(pdf_path))
    print(f"wrote {html_path} and {pdf_path}", flush=True)
