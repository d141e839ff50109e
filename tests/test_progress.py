"""Progress lines: runs done, elapsed time and an estimate of the time left."""

from __future__ import annotations

import io
from pathlib import Path

from regbench.progress import Progress, estimate, format_line


def test_estimate_extrapolates_from_runs_finished_since_start() -> None:
    """With 10 of 40 runs done in 100 s (none before the start), 30 runs take 300 s more."""
    assert estimate(done=10, total=40, done_at_start=0, elapsed=100.0) == 300.0


def test_estimate_ignores_runs_cached_before_the_start() -> None:
    """Runs already done when the study started do not count toward the rate."""
    assert estimate(done=25, total=40, done_at_start=20, elapsed=50.0) == 150.0
    assert estimate(done=20, total=40, done_at_start=20, elapsed=50.0) is None


def test_format_line_reads_like_a_sentence() -> None:
    """The line names done/total, the share, elapsed and remaining time."""
    line = format_line(120, 330, 250.0, 435.0)
    assert line == "regbench: 120/330 runs done (36%), 0:04:10 elapsed, ~0:07:15 left"
    assert format_line(0, 330, 5.0, None).endswith("estimating time left")


def test_progress_counts_output_files_as_they_appear(tmp_path: Path) -> None:
    """The line follows metrics files appearing on disk, against the injected clock."""
    outputs = [tmp_path / f"run{i}" / "metrics.json" for i in range(4)]
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(outputs, interval=3600, stream=stream, clock=lambda: now[0])
    progress.start()
    for path in outputs[:2]:
        path.parent.mkdir()
        path.write_text("{}")
    now[0] = 60.0
    assert progress.line() == "regbench: 2/4 runs done (50%), 0:01:00 elapsed, ~0:01:00 left"
    progress.stop()
    assert stream.getvalue().strip().endswith("~0:01:00 left")
