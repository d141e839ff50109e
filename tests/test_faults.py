"""Faults: a killed study resumes to the same results; a killed run fails alone, shown missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from pypdf import PdfReader
from test_reruns import copy_workflow

STUDY: dict[str, Any] = {
    "study": {"name": "faults", "title": "Fault study"},
    "datasets": {"iris": {"source": "sklearn", "loader": "iris"}},
    "models": {"mlp": {"type": "mlp", "units": [8]}},
    "regularizers": {"none": {}, "l2": {"kernel": {"l2": 0.01}}},
    "seeds": [0, 1, 2],
    "training": {"epochs": 60},
    "baseline": "none",
}

# Columns that measure the host rather than the run.
TIMINGS = ["train_seconds", "job_seconds", "max_rss_mb"]


def command(workdir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(workdir / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        *args,
    ]


def prepared(workdir: Path) -> Path:
    """A private workflow copy with the fault study's config."""
    copy_workflow(workdir)
    (workdir / "config.yaml").write_text(yaml.safe_dump(STUDY), encoding="utf-8")
    return workdir


def run(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(workdir, *args),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, **(env or {})},
    )


def runs_table(workdir: Path) -> pd.DataFrame:
    return pd.read_csv(workdir / "results/tables/runs.csv").drop(columns=TIMINGS)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The study's runs table from a run nobody disturbed."""
    workdir = prepared(tmp_path_factory.mktemp("uninterrupted"))
    result = run(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return runs_table(workdir)


def wait_for(condition: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.e2e
def test_killed_study_resumes_to_the_uninterrupted_results(
    tmp_path: Path, uninterrupted: pd.DataFrame
) -> None:
    """SIGKILL to Snakemake and its jobs; --unlock and --rerun-incomplete finish it identically."""
    workdir = prepared(tmp_path)
    process = subprocess.Popen(
        command(workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    metrics = workdir / "results/runs"
    wait_for(lambda: len(list(metrics.glob("*/*/*/*/metrics.json"))) >= 2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 2 <= len(list(metrics.glob("*/*/*/*/metrics.json"))) < 6
    assert not (workdir / "reports/report.pdf").exists()

    # The README's recovery: remove the stale lock, then rerun what was cut short.
    assert run(workdir, "--unlock").returncode == 0
    resumed = run(workdir, "--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    pd.testing.assert_frame_equal(runs_table(workdir), uninterrupted)


def processes_with_open(path: Path) -> list[int]:
    """PIDs of processes holding ``path`` open (Linux /proc)."""
    pids = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == str(path) for fd in fd_dir.iterdir()):
                pids.append(int(fd_dir.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.e2e
def test_killed_training_job_fails_alone_and_the_report_marks_it_missing(tmp_path: Path) -> None:
    """A killed training job fails alone with its log kept; the report marks its run missing."""
    workdir = prepared(tmp_path)
    log = (workdir / "logs/train_run/iris/mlp/l2/seed1.log").resolve()
    process = subprocess.Popen(
        command(workdir, "--keep-going"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pids: list[int] = []
    wait_for(lambda: bool(pids.extend(processes_with_open(log)) or pids))
    for pid in set(pids):
        os.kill(pid, signal.SIGKILL)
    output, _ = process.communicate(timeout=900)
    assert process.returncode != 0
    assert "Error in rule train_run" in output
    assert log.exists()
    done = sorted(
        p.parent.relative_to(workdir / "results/runs").as_posix()
        for p in (workdir / "results/runs").glob("*/*/*/*/metrics.json")
    )
    assert len(done) == 5 and "iris/mlp/l2/seed1" not in done

    partial = run(workdir, env={"REGBENCH_ALLOW_MISSING": "1"})
    assert partial.returncode == 0, partial.stderr[-3000:]
    runs = pd.read_csv(workdir / "results/tables/runs.csv")
    status = dict(
        zip(runs["regularizer"] + "/" + runs["seed"].astype(str), runs["status"], strict=True)
    )
    assert status.pop("l2/1") == "missing"
    assert set(status.values()) == {"ok"}
    text = " ".join(page.extract_text() for page in PdfReader(workdir / "reports/report.pdf").pages)
    assert "iris · mlp · l2 · seed 1 missing" in " ".join(text.split())
