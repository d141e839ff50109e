"""Where a running study stands: finished runs, elapsed time and an estimate of the time left.

Snakemake's own "N of M steps" counts every job and says nothing about time.
:class:`Progress` runs in the Snakemake process itself (started from the
Snakefile's ``onstart``), watches the runs' ``metrics.json`` files appear and
prints one line at a fixed interval.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

__all__ = ["Progress", "estimate", "format_line"]


def estimate(done: int, total: int, done_at_start: int, elapsed: float) -> float | None:
    """Seconds left at the rate of the runs finished since the start; None before the first."""
    finished_here = done - done_at_start
    if finished_here <= 0 or elapsed <= 0:
        return None
    return (total - done) * elapsed / finished_here


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_line(done: int, total: int, elapsed: float, left: float | None) -> str:
    """One progress line: ``regbench: 120/330 runs done (36%), 0:04:10 elapsed, ~0:07:15 left``."""
    share = 100 * done / total if total else 100.0
    eta = "estimating time left" if left is None else f"~{_clock(left)} left"
    return f"regbench: {done}/{total} runs done ({share:.0f}%), {_clock(elapsed)} elapsed, {eta}"


class Progress:
    """A background thread printing progress over the given run output files."""

    def __init__(
        self,
        outputs: Sequence[str | Path],
        *,
        interval: float = 30.0,
        stream: TextIO = sys.stderr,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outputs = [Path(p) for p in outputs]
        self.interval = interval
        self.stream = stream
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._done_at_start = 0

    def done(self) -> int:
        """How many of the outputs exist now."""
        return sum(path.exists() for path in self.outputs)

    def line(self) -> str:
        """The progress line for this moment."""
        done, elapsed = self.done(), self.clock() - self._started
        left = estimate(done, len(self.outputs), self._done_at_start, elapsed)
        return format_line(done, len(self.outputs), elapsed, left)

    def start(self) -> None:
        """Start reporting (a daemon thread: it never keeps Snakemake alive)."""
        self._started = self.clock()
        self._done_at_start = self.done()
        self._thread = threading.Thread(target=self._loop, name="regbench-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reporting and print the final line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            print(self.line(), file=self.stream, flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            print(self.line(), file=self.stream, flush=True)
