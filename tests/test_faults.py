"""Faults: a killed study resumes to the same results; a killed cell fails alone, shown missing;
however Snakemake ends, no process it started outlives it."""

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

from regbench.aggregate import JOB_COLUMNS
from regbench.training import TIMING_FIELDS

STUDY: dict[str, Any] = {
    "study": {"name": "faults", "title": "Fault study"},
    "datasets": {"iris": {"source": "sklearn", "loader": "iris"}},
    "models": {"mlp": {"type": "mlp", "units": [8]}},
    "regularizers": {"none": {}, "l1": {"kernel": {"l1": 0.01}}, "l2": {"kernel": {"l2": 0.01}}},
    "seeds": [0, 1, 2],
    "training": {"epochs": 60},
    "baseline": "none",
}

# Columns that measure the host rather than the run.
TIMINGS = [*sorted(TIMING_FIELDS), *JOB_COLUMNS]


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


def prepared(workdir: Path, epochs: int = 60) -> Path:
    """A private workflow copy with the fault study's config."""
    copy_workflow(workdir)
    study = {**STUDY, "training": {"epochs": epochs}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(study), encoding="utf-8")
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


def processes_in(folder: Path) -> list[int]:
    """Live processes working in ``folder``: Snakemake, its jobs and its warm workers."""
    found = []
    for process in Path("/proc").glob("[0-9]*"):
        try:
            in_folder = Path(os.readlink(process / "cwd")).is_relative_to(folder)
            state = (process / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if in_folder and state != "Z":
            found.append(int(process.name))
    return found


def assert_none_left(folder: Path) -> None:
    """Within 60 s, no process works in ``folder`` any more."""
    deadline = time.monotonic() + 60
    while processes_in(folder):
        assert time.monotonic() < deadline, f"still running after 60 s: {processes_in(folder)}"
        time.sleep(0.5)


@pytest.mark.e2e
def test_killed_study_resumes_to_the_uninterrupted_results(
    tmp_path: Path, uninterrupted: pd.DataFrame
) -> None:
    """SIGKILL to Snakemake and its jobs leaves no process; --unlock and --rerun-incomplete
    then finish the study with the uninterrupted study's tables."""
    workdir = prepared(tmp_path)
    process = subprocess.Popen(
        command(workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    metrics = workdir / "results/runs"
    wait_for(lambda: len(list(metrics.glob("*/*/*/*/metrics.json"))) >= 3)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 3 <= len(list(metrics.glob("*/*/*/*/metrics.json"))) < 9
    assert not (workdir / "reports/report.pdf").exists()
    assert_none_left(workdir)

    # The README's recovery: remove the stale lock, then rerun what was cut short.
    assert run(workdir, "--unlock").returncode == 0
    resumed = run(workdir, "--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    pd.testing.assert_frame_equal(runs_table(workdir), uninterrupted)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("signal_number", "group", "epochs"),
    [
        # The schema's ceiling on epochs: far longer than the test lets a cell train.
        (signal.SIGINT, True, 10_000),
        (signal.SIGTERM, True, 10_000),
        (signal.SIGHUP, True, 10_000),
        (signal.SIGKILL, True, 10_000),
        (signal.SIGKILL, False, 10_000),
        # SIGTERM to Snakemake alone asks it to stop gracefully: it lets its running jobs
        # finish (here in seconds), starts no other, and exits.
        (signal.SIGTERM, False, 3_000),
    ],
    ids=[
        "SIGINT",
        "SIGTERM",
        "SIGHUP",
        "SIGKILL",
        "SIGKILL-snakemake-only",
        "SIGTERM-snakemake-only",
    ],
)
def test_no_process_outlives_a_signalled_snakemake(
    tmp_path: Path, signal_number: int, group: bool, epochs: int
) -> None:
    """A signal to Snakemake's process group (Ctrl-C, kill, a closed terminal), or to Snakemake
    alone, while warm workers train leaves no process of the study after 60 s."""
    workdir = prepared(tmp_path, epochs=epochs)
    process = subprocess.Popen(
        command(workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        # As from a terminal: under nohup (SIGHUP ignored, and inherited) a closed
        # terminal would not reach Snakemake at all.
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
    )
    logs = workdir / "logs/train_cell"
    wait_for(lambda: any("in warm worker" in log.read_text("utf-8") for log in logs.rglob("*.log")))
    assert len(processes_in(workdir)) >= 4  # Snakemake, two workers, a job at least.
    if group:
        os.killpg(process.pid, signal_number)
    else:
        os.kill(process.pid, signal_number)
    process.wait(timeout=300)
    assert_none_left(workdir)


@pytest.mark.e2e
def test_an_error_while_building_the_dag_starts_no_worker(tmp_path: Path) -> None:
    """A study that fails before any job runs starts no warm worker and leaves no process."""
    workdir = prepared(tmp_path)
    result = run(workdir, "results/no/such/file.txt")
    assert result.returncode != 0
    assert "MissingRuleException" in result.stderr or "No rule to produce" in result.stderr
    assert "warm training worker" not in result.stderr
    assert_none_left(workdir)


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
    """A killed training job fails alone with its log kept, leaving no process behind; the
    report marks its cell's runs missing."""
    workdir = prepared(tmp_path)
    log = (workdir / "logs/train_cell/iris/mlp/l2.log").resolve()
    process = subprocess.Popen(
        command(workdir, "--keep-going"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pids: list[int] = []
    # The job's own process and the warm worker training its cell hold its log open.
    wait_for(lambda: bool(pids.extend(processes_with_open(log)) or pids))
    for pid in set(pids):
        os.kill(pid, signal.SIGKILL)
    output, _ = process.communicate(timeout=900)
    assert process.returncode != 0
    assert "Error in rule train_cell" in output
    assert log.exists()
    assert_none_left(workdir)
    done = sorted(
        p.parent.relative_to(workdir / "results/runs").as_posix()
        for p in (workdir / "results/runs").glob("*/*/*/*/metrics.json")
    )
    assert len(done) == 6 and not any("/l2/" in run for run in done)

    partial = run(workdir, env={"REGBENCH_ALLOW_MISSING": "1"})
    assert partial.returncode == 0, partial.stderr[-3000:]
    runs = pd.read_csv(workdir / "results/tables/runs.csv")
    status = dict(
        zip(runs["regularizer"] + "/" + runs["seed"].astype(str), runs["status"], strict=True)
    )
    assert [status.pop(f"l2/{seed}") for seed in (0, 1, 2)] == ["missing"] * 3
    assert set(status.values()) == {"ok"}
    text = " ".join(page.extract_text() for page in PdfReader(workdir / "reports/report.pdf").pages)
    assert "iris · mlp · l2 · seed 1 missing" in " ".join(text.split())
