"""The report's appendix: skipped combinations, the configuration, provenance from the runs."""

from __future__ import annotations

import pandas as pd
import yaml

from regbench.appendix import config_text, group_skipped, provenance
from regbench.config import load_study

REGULARIZERS = [f"reg{i}" for i in range(11)]
TABULAR = ("alpha", "beta", "gamma", "delta")


def test_skipped_combinations_are_one_line_per_model_and_reason() -> None:
    """Four tabular datasets x 11 regularizers skipped for a CNN read as one line."""
    raw = {
        "study": {"name": "s", "title": "S"},
        "datasets": {
            **{name: {"source": "synthetic", "synthetic": {}} for name in TABULAR},
            "digits": {"source": "sklearn", "loader": "digits"},
        },
        "models": {"cnn": {"type": "cnn", "filters": [4]}, "mlp": {"type": "mlp"}},
        "regularizers": {name: {} for name in REGULARIZERS},
        "seeds": [0],
        "training": {"epochs": 1},
        "baseline": "reg0",
    }
    study = load_study(raw)
    skipped = [vars(item) for item in study.skipped]
    assert len(skipped) == 4 * 11
    lines = group_skipped(skipped, REGULARIZERS)
    assert lines == [
        {
            "model": "cnn",
            "datasets": "alpha, beta, gamma, delta",
            "regularizers": "all 11 regularizers",
            "reason": "Model cnn is a CNN and needs image data; the dataset is tabular.",
        }
    ]


def test_configuration_leaves_out_keys_a_model_does_not_read() -> None:
    """An MLP's entry has no convolution keys; a CNN's keeps them; descriptions are left out."""
    raw = {
        "study": {"name": "s", "title": "S", "description": "Long prose."},
        "datasets": {"digits": {"source": "sklearn", "loader": "digits", "description": "D."}},
        "models": {"cnn": {"type": "cnn", "filters": [4]}, "mlp": {"type": "mlp"}},
        "regularizers": {"none": {}},
        "seeds": [0],
        "training": {"epochs": 1},
        "baseline": "none",
    }
    config = load_study(raw).config
    assert "kernel_size" in config["models"]["mlp"]  # The resolved config fills it in.
    shown = yaml.safe_load(config_text(config))
    assert set(shown["models"]["mlp"]) == {"type", "units", "activation"}
    assert {"filters", "kernel_size", "pool_size", "padding"} <= set(shown["models"]["cnn"])
    assert "description" not in shown["datasets"]["digits"]
    assert shown["study"] == {"name": "s"}
    assert list(shown)[:4] == ["study", "datasets", "models", "regularizers"]


def runs_table(**extra: list[object]) -> pd.DataFrame:
    """Three successful runs and one failed one, with timing columns."""
    return pd.DataFrame(
        {
            "dataset": ["d", "d", "d", "e"],
            "model": ["m", "m", "m", "m"],
            "regularizer": ["none", "l2", "l1", "none"],
            "seed": [0, 0, 0, 0],
            "status": ["ok", "ok", "ok", "failed"],
            "device": ["CPU", "CPU", "GPU:0", None],
            "train_seconds": [10.0, 20.0, 30.0, None],
            "job_seconds": [12.0, 25.0, 31.5, 2.0],
            **extra,
        }
    )


def test_provenance_reports_what_the_runs_recorded_and_nothing_else() -> None:
    """Devices and durations come from the runs; no training-process memory, no memory shown."""
    facts = provenance(runs_table(max_rss_mb=[27.0, 27.0, 27.0, 27.0]))
    assert facts["where"] == "CPU (2 runs); GPU:0 (1 run) (these runs did not record their host)"
    # runs.csv always has the column; runs made before hosts were recorded leave it empty.
    empty_hosts = provenance(runs_table(host=[float("nan")] * 4))
    assert empty_hosts["where"] == facts["where"]
    assert dict(facts["durations"]) == {
        "Training time, all runs together": "1 min 00 s",
        "Slowest training job": "31.5 s (d · m · l1)",
    }
    assert "Peak memory (MB)" not in facts["jobs"]["headings"]
    assert "27" not in str(facts["jobs"]["rows"])
    assert "did not record the memory of the process that trained" in facts["memory_note"]


def test_provenance_names_hosts_and_training_memory_when_recorded() -> None:
    """With host and peak_rss_mb per run, the appendix names each host's device and the peak."""
    facts = provenance(
        runs_table(host=["n1", "n1", "n2", None], peak_rss_mb=[700.0, 812.4, 650.0, None])
    )
    assert facts["where"] == "CPU on n1 (2 runs); GPU:0 on n2 (1 run)"
    assert facts["jobs"]["headings"][-1] == "Peak memory (MB)"
    assert facts["jobs"]["rows"][0][-1] == "812"
    assert "largest 812 MB" in facts["memory_note"]
