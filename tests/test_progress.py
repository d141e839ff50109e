"""Progress lines: this invocation's jobs done, elapsed time and an estimate of the time left."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from regbench.progress import Progress, SnakemakeEvents, estimate, format_line


def test_estimate_extrapolates_from_the_jobs_finished_so_far() -> None:
    """With 10 of 40 jobs done in 100 s, the other 30 take 300 s more; nothing before the first."""
    assert estimate(done=10, total=40, elapsed=100.0) == 300.0
    assert estimate(done=0, total=40, elapsed=50.0) is None


def test_format_line_reads_like_a_sentence() -> None:
    """The line names done/total, the share, elapsed and remaining time and what is left."""
    line = format_line(12, 70, 250.0, 1208.0, {"train_cell": 55, "prepare_dataset": 0, "all": 1})
    assert line == (
        "regbench: 12/70 jobs done (17%), 0:04:10 elapsed, ~0:20:08 left; to run: train_cell 55, "
        "all 1"
    )
    assert format_line(0, 330, 5.0, None, {}).endswith("0:00:05 elapsed, estimating time left")
    assert (
        format_line(4, 4, 5.0, 0.0, {"all": 0}) == "regbench: 4/4 jobs done (100%), 0:00:05 elapsed"
    )


def record(event: str, **fields: object) -> logging.LogRecord:
    """A log record as Snakemake emits it, with its event and fields as attributes."""
    entry = logging.LogRecord("snakemake.logging", logging.INFO, "", 0, "", None, None)
    entry.__dict__.update(event=event, **fields)
    return entry


def test_progress_counts_the_jobs_snakemake_reports() -> None:
    """Planned jobs come from the job stats, done ones from finished events, against the clock."""
    now = [0.0]
    lines: list[str] = []
    progress = Progress(interval=3600, emit=lines.append, clock=lambda: now[0])
    events = SnakemakeEvents(progress)
    events.handle(record("run_info", stats={"train_cell": 3, "render_report": 1, "total": 4}))
    progress.start()
    for job_id, rule in enumerate(["train_cell", "train_cell", "render_report"]):
        events.handle(record("job_info", jobid=job_id, rule_name=rule))
    events.handle(record("job_finished", job_id=0))
    events.handle(record("job_finished", job_id=1))
    now[0] = 60.0
    assert progress.line() == (
        "regbench: 2/4 jobs done (50%), 0:01:00 elapsed, ~0:01:00 left; "
        "to run: train_cell 1, render_report 1"
    )
    progress.stop()
    assert lines[0] == (
        "regbench: 0/4 jobs done (0%), 0:00:00 elapsed, estimating time left; "
        "to run: train_cell 3, render_report 1"
    )
    assert lines[-1] == progress.line()


SNAKEFILE = """
from regbench import progress

PROGRESS = progress.attach(3600)

onstart:
    PROGRESS.start()

onsuccess:
    PROGRESS.stop()

rule all:
    input: expand("out/{i}.txt", i=range(3))

rule make:
    output: "out/{i}.txt"
    shell: "echo {wildcards.i} > {output}"
"""


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    """A three-job workflow that reports regbench progress as the study's Snakefile does."""
    (tmp_path / "Snakefile").write_text(textwrap.dedent(SNAKEFILE), encoding="utf-8")
    return tmp_path


def progress_lines(workdir: Path, *args: str) -> list[str]:
    """The regbench lines of a real Snakemake run in ``workdir``, each on a line of its own."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--directory", str(workdir), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return re.findall(r"^regbench: .*$", result.stderr, flags=re.MULTILINE)


def test_a_real_run_counts_only_its_own_jobs(workflow: Path) -> None:
    """A first run counts 4 jobs, a rerun of one lost file 2 (from 0), --forceall 4 again."""
    first = progress_lines(workflow)
    assert first[0].startswith("regbench: 0/4 jobs done (0%)")
    assert first[-1].startswith("regbench: 4/4 jobs done (100%)")
    (workflow / "out" / "1.txt").unlink()
    rerun = progress_lines(workflow)
    assert rerun[0].startswith("regbench: 0/2 jobs done (0%)")
    assert rerun[0].endswith("to run: make 1, all 1")
    assert rerun[-1].startswith("regbench: 2/2 jobs done (100%)")
    forced = progress_lines(workflow, "--forceall")
    assert forced[-1].startswith("regbench: 4/4 jobs done (100%)")
    assert progress_lines(workflow, "--forceall", "--quiet") == []
