"""One function per pipeline rule: what the Snakemake scripts call.

Each takes plain paths and the canonical JSON the rule passes as ``params``,
so the rules stay declarative and every step can run without Snakemake.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

#: Where a failed run leaves its error, beside where its metrics.json would be.
ERROR_FILE = "error.txt"

__all__ = [
    "aggregate_runs",
    "plot_figures",
    "prepare_dataset",
    "redirect_output",
    "render_report",
    "train_cell",
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


def train_cell(
    cell_json: str,
    seeds_json: str,
    data_npz: str,
    metrics: Sequence[str],
    histories: Sequence[str],
    weights: Sequence[str],
    threads: int,
    code: str,
    log: str | None = None,
    gpus: int = 0,
) -> None:
    """Train a cell's seeds together and write each seed's metrics, history and weights.

    The cell goes to a warm worker when this study's pool runs
    (:mod:`regbench.worker`) and is trained in this process otherwise; both
    give the same files. ``metrics``, ``histories`` and ``weights`` list the
    seeds' files in the order of ``seeds_json``; ``log`` is the job's log,
    which a worker writes the cell's output to.
    """
    from regbench import worker
    from regbench.devices import gpu_slots

    print(
        f"host {socket.gethostname()}, SLURM_JOB_ID={os.environ.get('SLURM_JOB_ID', '-')}",
        flush=True,
    )
    seeds = [int(seed) for seed in json.loads(seeds_json)]
    # A failed cell leaves its error beside where each seed's metrics would be, for the report.
    errors = [Path(path).with_name(ERROR_FILE) for path in metrics]
    for error_file in errors:
        error_file.unlink(missing_ok=True)
    request = worker.CellRequest.create(cell_json, seeds, data_npz, threads, code, log)
    try:
        # A job with cards of its own, or one a scheduler placed, trains in its own process:
        # a warm worker trains on this host, with the device it started with.
        reply = None if gpus or "SLURM_JOB_ID" in os.environ else worker.submit(request)
        if reply is None:
            with gpu_slots(gpus):
                reply = worker.train_in_process(request)
    except Exception as error:
        for error_file in errors:
            error_file.write_text(f"{type(error).__name__}: {error}\n", encoding="utf-8")
        raise
    for seed, *paths in zip(seeds, weights, histories, metrics, strict=True):
        files = reply["runs"][seed]["files"]
        # Metrics last: its presence marks a complete run.
        for path, name in zip(paths, ("weights", "history", "metrics"), strict=True):
            Path(path).write_bytes(files[name])
    statuses = {seed: reply["runs"][seed]["status"] for seed in seeds}
    print(f"seeds {seeds} trained: {statuses}", flush=True)


def aggregate_runs(
    run_paths: Sequence[str],
    baseline: str,
    runs_csv: str,
    summary_csv: str,
    comparisons_csv: str,
    rankings_csv: str,
    architectures_json: str,
    root: str = ".",
) -> None:
    """Tidy tables from every run of the grid, with comparisons and rankings.

    ``run_paths`` names every run of the grid (``RunKey.path``); a run that
    left no metrics is kept as a row with status ``missing``.
    """
    from regbench.aggregate import RunFiles, collect_runs, compare, rank, summarize
    from regbench.config import RunKey

    keys = [RunKey.from_path(path) for path in run_paths]
    runs, architectures = collect_runs(
        RunFiles(key, Path(root, key.output("metrics.json")), Path(root, key.benchmark))
        for key in keys
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
        return load_history(
            Path(runs_dir, dataset, model, regularizer, f"seed{seed}", "history.csv")
        )

    def weights_of(dataset: str, model: str, regularizer: str, seed: int) -> Any:
        return load_weights(
            Path(runs_dir, dataset, model, regularizer, f"seed{seed}", "weights.npz")
        )

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
    commit: str = "unknown",
    config_commit: str = "unknown",
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
        commit=commit,
        config_commit=config_commit,
    )
    html = render_html(context, Path(template_dir))
    Path(html_path).write_text(html, encoding="utf-8")
    write_pdf(html, Path(pdf_path))
    print(f"wrote {html_path} and {pdf_path}", flush=True)
