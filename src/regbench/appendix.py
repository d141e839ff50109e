"""The report's appendix: provenance, skipped combinations, runs that failed, the configuration.

Facts come from the runs (their metrics and Snakemake's benchmarks), not from
the machine that renders the report, since training may have run elsewhere.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

import pandas as pd
import yaml

from regbench.wording import format_number, is_missing, join_names, plural

__all__ = [
    "PACKAGES",
    "config_text",
    "duration",
    "group_skipped",
    "problems",
    "provenance",
]

PACKAGES = (
    "tensorflow",
    "keras",
    "snakemake",
    "scikit-learn",
    "pandas",
    "numpy",
    "scipy",
    "statsmodels",
    "matplotlib",
    "jinja2",
    "weasyprint",
)

#: Model keys the model builder reads only for convolutional models.
_CNN_ONLY_KEYS = ("filters", "kernel_size", "pool_size", "padding", "pool")


def duration(seconds: float) -> str:
    """``1 h 05 min``, ``4 min 07 s`` or ``12.3 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def group_skipped(
    skipped: Sequence[Mapping[str, str]], regularizers: Sequence[str]
) -> list[dict[str, str]]:
    """One line per model and reason: the datasets and regularizers it covers.

    A reason that names its dataset (``dataset iris is tabular``) is written
    once for all of them (``the dataset is tabular``).
    """
    groups: dict[tuple[str, str], dict[str, list[str]]] = {}
    for item in skipped:
        reason = item["reason"].replace(f"dataset {item['dataset']}", "the dataset")
        group = groups.setdefault((item["model"], reason), {"datasets": [], "regularizers": []})
        for key, value in (("datasets", item["dataset"]), ("regularizers", item["regularizer"])):
            if value not in group[key]:
                group[key].append(value)
    lines = []
    for (model, reason), group in groups.items():
        names = group["regularizers"]
        which = (
            f"all {len(names)} regularizers"
            if len(names) == len(regularizers) > 1
            else join_names(names)
        )
        lines.append(
            {
                "model": model,
                "datasets": ", ".join(group["datasets"]),
                "regularizers": which,
                "reason": reason[0].upper() + reason[1:] + ".",
            }
        )
    return lines


def problems(runs: pd.DataFrame) -> list[dict[str, str]]:
    """Runs that did not succeed, with what is known about why."""
    return [
        {
            "run": f"{r['dataset']} · {r['model']} · {r['regularizer']} · seed {r['seed']}",
            "status": str(r["status"]),
            "detail": _problem(r),
        }
        for r in runs[runs["status"] != "ok"].to_dict("records")
    ]


def _problem(run: Mapping[str, Any]) -> str:
    if run["status"] == "diverged":
        epoch = run.get("diverged_epoch")
        return (
            f"diverged at epoch {int(epoch)}"
            if epoch is not None and not is_missing(epoch)
            else "diverged"
        )
    if run["status"] == "failed":
        error = run.get("error")
        return error if isinstance(error, str) else "failed without an error message"
    if run["status"] == "missing":
        return "no result: the job did not finish"
    return str(run["status"])


def config_text(config: Mapping[str, Any]) -> str:
    """The resolved configuration as YAML, one line per entry, without what does not apply.

    Model keys that only convolutional models read are left out of MLP
    entries, and descriptions (printed in their sections) are left out.
    """
    models = {
        name: {
            k: v for k, v in body.items() if body.get("type") == "cnn" or k not in _CNN_ONLY_KEYS
        }
        for name, body in config["models"].items()
    }
    datasets = {
        name: {k: v for k, v in body.items() if k != "description"}
        for name, body in config["datasets"].items()
    }
    shown = {
        **config,
        "study": {"name": config["study"]["name"]},
        "datasets": datasets,
        "models": models,
    }
    # Derived from the sweeps, whose variants are each listed under regularizers.
    shown.pop("families", None)
    # The order a reader looks things up in, whatever order the serialized config has.
    first = ("study", "datasets", "models", "regularizers", "baseline", "seeds", "training")
    ordered = [k for k in first if k in shown] + [k for k in shown if k not in first]
    lines = []
    for key, value in ((k, shown[k]) for k in ordered):
        if key in ("datasets", "models", "regularizers"):
            lines.append(f"{key}:")
            lines += [f"  {name}: {_flow(body)}" for name, body in value.items()]
        else:
            lines.append(f"{key}: {_flow(value)}")
    return "\n".join(lines)


def _flow(value: Any) -> str:
    """One YAML value on one line (``{a: 1, b: [2, 3]}``)."""
    text: str = yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, allow_unicode=True, width=10_000
    )
    return text.strip().removesuffix("...").strip()


def provenance(runs: pd.DataFrame) -> dict[str, Any]:
    """Where and how long the runs trained, from their own records; software versions."""
    ok = runs[runs["status"] == "ok"]
    return {
        "versions": ", ".join(f"{name} {version}" for name, version in _versions()),
        "where": _where_trained(ok),
        "durations": _durations(runs),
        "jobs": _job_rows(runs),
        "memory_note": _memory_note(runs),
    }


def _versions() -> list[tuple[str, str]]:
    versions = [("python", platform.python_version())]
    for package in PACKAGES:
        try:
            versions.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            versions.append((package, "not installed"))
    return versions


def _where_trained(ok: pd.DataFrame) -> str:
    """``GPU:0 on node1 (300 runs); CPU on node2 (30 runs)``, or the devices alone."""
    if ok.empty:
        return "no run succeeded"
    if "host" not in ok.columns or ok["host"].isna().all():
        devices = ok["device"].fillna("unrecorded").value_counts(sort=False)
        listed = "; ".join(f"{d} ({plural(int(n), 'run')})" for d, n in devices.items())
        return f"{listed} (these runs did not record their host)"
    places = (
        ok.astype({"host": object, "device": object})
        .fillna({"host": "unrecorded", "device": "unrecorded"})
        .groupby(["host", "device"], sort=True)
    )
    return "; ".join(
        f"{device} on {host} ({plural(len(group), 'run')})" for (host, device), group in places
    )


def _durations(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """One consistent set: total training time, the slowest job, and the study's wall time."""
    rows = []
    train = runs["train_seconds"].dropna()
    if len(train):
        rows.append(("Training time, all runs together", duration(float(train.sum()))))
    if "job_seconds" in runs.columns and runs["job_seconds"].notna().any():
        slowest = runs.loc[runs["job_seconds"].idxmax()]
        rows.append(
            (
                "Slowest training job",
                f"{duration(float(slowest['job_seconds']))} "
                f"({slowest['dataset']} · {slowest['model']} · {slowest['regularizer']})",
            )
        )
    if {"started", "finished"} <= set(runs.columns) and runs["started"].notna().any():
        wall = pd.to_datetime(runs["finished"]).max() - pd.to_datetime(runs["started"]).min()
        rows.append(
            ("Study wall time, first run's start to last run's end", duration(wall.total_seconds()))
        )
    return rows


def _job_rows(runs: pd.DataFrame) -> dict[str, Any]:
    """Per dataset and model: runs, median training time, slowest job, and peak training memory.

    The memory column is there only when the runs recorded the training process's memory.
    """
    memory = "peak_rss_mb" in runs.columns and bool(runs["peak_rss_mb"].notna().any())
    jobs = "job_seconds" in runs.columns
    headings = ["Dataset · model", "Runs", "Median training (s)"]
    headings += ["Slowest job (s)"] if jobs else []
    headings += ["Peak memory (MB)"] if memory else []
    rows = []
    for (dataset, model), group in runs.groupby(["dataset", "model"], sort=False):
        row = [
            f"{dataset} · {model}",
            str(len(group)),
            format_number(group["train_seconds"].median(), 1),
        ]
        row += [format_number(group["job_seconds"].max(), 1)] if jobs else []
        row += [format_number(group["peak_rss_mb"].max(), 0)] if memory else []
        rows.append(row)
    return {"headings": headings, "rows": rows}


def _memory_note(runs: pd.DataFrame) -> str:
    if "peak_rss_mb" in runs.columns and runs["peak_rss_mb"].notna().any():
        return (
            "Peak memory is the resident memory of the process that trained, "
            f"largest {format_number(runs['peak_rss_mb'].max(), 0)} MB."
        )
    return (
        "These runs did not record the memory of the process that trained them "
        "(Snakemake's benchmark measures the job's client process, which hands the run "
        "to a warm worker), so no peak memory is shown."
    )
