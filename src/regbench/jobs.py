"""One function per pipeline rule: what the Snakemake scripts call.

Each takes plain paths and the canonical JSON the rule passes as ``params``,
so the rules stay declarative and every step can run without Snakemake.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from regbench.config import ERROR_FILE

# One definition for every job (and warm worker); the scripts import it from here.
from regbench.joblog import redirect_output

__all__ = [
    "AGGREGATE_OUTPUTS",
    "aggregate_runs",
    "download_dataset",
    "figure_settings",
    "plot_figures",
    "prepare_dataset",
    "redirect_output",
    "render_report",
    "train_cell",
]


def download_dataset(url: str, sha256: str, output: str, log: str) -> None:
    """Fetch one URL dataset's file into the download cache, where ``output`` names it."""
    from regbench.download import Interrupted, download_logged

    target = Path(output)
    try:
        path = download_logged({"url": url, "sha256": sha256}, target.parent.parent, log)
    except Interrupted as stop:
        # The partial file is gone; exit as the signal would have ended the process.
        raise SystemExit(128 + stop.signum) from None
    if path != target:
        raise RuntimeError(f"{url} was cached as {path}, not at {target}")


def prepare_dataset(spec_json: str, npz: str, card: str) -> None:
    """Load, split and scale one dataset; write its arrays and data card."""
    from regbench.datasets import prepare_files

    spec = json.loads(spec_json)
    sizes = prepare_files(spec, Path(npz), Path(card))["split_sizes"]
    which = f", the split of seed {spec['split']['seed']}" if "seed" in spec["split"] else ""
    print(f"prepared {spec['name']}{which}: {sizes}", flush=True)


def train_cell(
    cell_json: str,
    seeds_json: str,
    data_npz: str | Sequence[str],
    metrics: Sequence[str],
    histories: Sequence[str],
    weights: Sequence[str],
    threads: int,
    code: str,
    log: str | None = None,
    gpus: int = 0,
    record: str | None = None,
) -> None:
    """Train a cell's seeds together and write each seed's metrics, history and weights.

    The cell goes to a warm worker when this study's pool runs
    (:mod:`regbench.worker`) and is trained in this process otherwise; both
    give the same files. ``data_npz`` is the prepared data every seed shares,
    or one file per seed (split.vary: seed); it, ``metrics``, ``histories``
    and ``weights`` list the seeds' files in the order of ``seeds_json``;
    ``log`` is the job's log, which a worker writes the cell's output to;
    ``record``, when given, is written last with each seed's status
    (:attr:`CellKey.record`).
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
    if record is not None:
        Path(record).write_text(
            json.dumps({"statuses": {str(s): v for s, v in statuses.items()}}, indent=1) + "\n",
            encoding="utf-8",
        )
    print(f"seeds {seeds} trained: {statuses}", flush=True)


#: The files rule aggregate_runs writes, by its output names.
AGGREGATE_OUTPUTS = (
    "runs",
    "summary",
    "comparisons",
    "rankings",
    "ranking_tests",
    "adequacy",
    "references",
    "dose_response",
    "tuned",
    "tuned_comparisons",
    "architectures",
)


def aggregate_runs(
    run_paths: Sequence[str],
    settings_json: str,
    card_paths: Sequence[str],
    outputs: Mapping[str, str],
    root: str = ".",
) -> None:
    """Tidy tables from every run of the grid: comparisons, rankings, adequacy, references, sweeps.

    ``run_paths`` names every run of the grid (``RunKey.path``); a run that
    left no metrics is kept as a row with status ``missing``.
    ``settings_json`` is ``Study.aggregation_settings()`` as canonical JSON:
    the baseline, what the report judges, the references, the training
    protocol and its epoch budget, the sweep families, the tuning criterion
    and the datasets run both ways, if any. ``card_paths`` are the data cards
    (one per dataset, or one per seed's split), which give the test-set sizes.
    ``outputs`` maps each of :data:`AGGREGATE_OUTPUTS` to its path.
    """
    from regbench import aggregate
    from regbench.config import RunKey
    from regbench.stats import mark_converged

    missing = [name for name in AGGREGATE_OUTPUTS if name not in outputs]
    if missing:
        raise ValueError(f"aggregate_runs needs an output path for: {', '.join(missing)}")
    settings = json.loads(settings_json)
    files = [
        aggregate.RunFiles(
            key,
            Path(root, key.output("metrics.json")),
            Path(root, key.benchmark),
            Path(root, key.output("history.csv")),
        )
        for key in map(RunKey.from_path, run_paths)
    ]
    runs, architectures = aggregate.collect_runs(files)
    histories = aggregate.collect_histories(files)
    protocol, epochs = settings["protocol"], settings["epochs"]
    # Whether each run converged by the protocol: a comparison resting on one that did
    # not is reported as undertrained, never as an effect of regularization.
    runs = mark_converged(runs, histories, protocol, epochs)
    runs.to_csv(outputs["runs"], index=False)
    Path(outputs["architectures"]).write_text(
        json.dumps(architectures, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    compared = aggregate.compared_metrics(settings["report"]["metrics"])
    referenced = [reference["metric"] for reference in settings["references"]]
    summary = aggregate.summarize(runs, [*compared, *referenced], settings["epochs"])
    summary.to_csv(outputs["summary"], index=False)
    cards = _read_cards(card_paths)
    test_sizes = aggregate.test_set_sizes(cards.values())
    declared = settings["report"].get("smallest_effect", {})
    comparisons = aggregate.compare(runs, settings["baseline"], compared, test_sizes, declared)
    comparisons.to_csv(outputs["comparisons"], index=False)
    for name, table in aggregate.sweep_tables(
        runs, summary, settings, compared, test_sizes
    ).items():
        table.to_csv(outputs[name], index=False)
    # A dataset run both ways is one dataset to a ranking: its fixed-split twin stands for it.
    twins = settings.get("split_twins", {})
    rankings, ranking_tests = aggregate.rank(runs[~runs["dataset"].isin(twins)], compared)
    rankings.to_csv(outputs["rankings"], index=False)
    ranking_tests.to_csv(outputs["ranking_tests"], index=False)
    adequacy = aggregate.adequacy(runs, histories, epochs, protocol)
    adequacy.to_csv(outputs["adequacy"], index=False)
    references = aggregate.check_references(summary, settings["references"])
    references.to_csv(outputs["references"], index=False)
    print(f"aggregated {len(runs)} runs", flush=True)


def figure_settings(config: Mapping[str, Any]) -> str:
    """The parts of a resolved study config the figures depend on, as canonical JSON (a param).

    Only these: a change to anything else in the study (a title, a
    description, the order of its entries) must not redraw the figures.
    """
    from regbench.config import canonical_json

    report = config["report"]  # Filled with its defaults when the study was loaded.
    return canonical_json(
        {
            "baseline": config["baseline"],
            "primary": report["primary"],
            "metrics": list(report["metrics"]),
            "swept": {name: family["swept"] for name, family in config["families"].items()},
        }
    )


def plot_figures(
    runs_csv: str,
    comparisons_csv: str,
    rankings_csv: str,
    settings_json: str,
    out_dir: str,
    root: str = ".",
    dose_response_csv: str | None = None,
) -> None:
    """Draw every figure from the tables and the runs' histories and weights.

    ``settings_json`` is :func:`figure_settings`. The tables name the runs;
    each run's files are read where ``RunKey.output`` puts them below
    ``root``, the study's folder. ``dose_response_csv``, where given, draws
    the sweeps' responses to strength.
    """
    import pandas as pd

    from regbench.config import RunKey
    from regbench.figures import FigureSettings, StudyTables, load_history, load_weights, plot_all

    def history_of(key: RunKey) -> Any:
        return load_history(Path(root, key.output("history.csv")))

    def weights_of(key: RunKey) -> Any:
        return load_weights(Path(root, key.output("weights.npz")))

    manifest = plot_all(
        StudyTables(
            pd.read_csv(runs_csv),
            pd.read_csv(comparisons_csv),
            pd.read_csv(rankings_csv),
            *([pd.read_csv(dose_response_csv)] if dose_response_csv else []),
        ),
        history_of,
        weights_of,
        FigureSettings.from_json(settings_json),
        Path(out_dir),
    )
    print(f"drew {len(manifest)} figures", flush=True)


def render_report(
    study_json: str,
    skipped_json: str,
    tables: Mapping[str, str],
    cards: Sequence[str],
    figure_dir: str,
    template_dir: str,
    html_path: str,
    pdf_path: str,
    commit: str = "unknown",
    config_commit: str = "unknown",
    main_figures: str | None = None,
) -> None:
    """Render the HTML and PDF report; copy its main figures to ``main_figures`` if given.

    ``tables`` maps each of :data:`regbench.report.REPORT_TABLES` to its path.
    """
    from regbench.report import (
        ReportTables,
        build_context,
        copy_main_figures,
        render_html,
        write_pdf,
    )

    figure_path = Path(figure_dir)
    manifest = json.loads((figure_path / "figures.json").read_text("utf-8"))
    context = build_context(
        config=json.loads(study_json),
        tables=ReportTables.read(tables),
        cards=_read_cards(cards),
        figures=manifest,
        figure_dir=figure_path,
        skipped=json.loads(skipped_json),
        commit=commit,
        config_commit=config_commit,
    )
    html = render_html(context, Path(template_dir))
    Path(html_path).write_text(html, encoding="utf-8")
    write_pdf(html, Path(pdf_path))
    if main_figures is not None:
        copy_main_figures(manifest, figure_path, Path(main_figures))
    print(f"wrote {html_path} and {pdf_path}", flush=True)


def _read_cards(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The data cards by dataset name (a dataset's seeds' split cards combined into one)."""
    from regbench.datasets import combine_cards

    return combine_cards(json.loads(Path(path).read_text("utf-8")) for path in paths)
