"""Where a running study stands: this invocation's jobs done, elapsed time and time left.

Snakemake's own "N of M steps" says nothing about time or about which stage
is running. :class:`Progress` runs in the Snakemake process itself: the
Snakefile attaches it to Snakemake's logger (:func:`attach`), from which it
learns the jobs this invocation plans, per rule (the "Job stats" event), and
each job as it finishes; it prints one line at a fixed interval from the
Snakefile's ``onstart`` and a last one when the study ends. Only this
invocation's jobs count, training and report alike: a rerun of three jobs
starts at 0/3, and ``--forceall`` counts every job it reruns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

__all__ = ["Progress", "SnakemakeEvents", "attach", "estimate", "format_line"]

#: The logger Snakemake reports its events on (Snakemake 9).
SNAKEMAKE_LOGGER = "snakemake.logging"


def estimate(done: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the rate of the jobs finished so far; None before the first."""
    if done <= 0 or elapsed <= 0:
        return None
    return (total - done) * elapsed / done


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_line(
    done: int, total: int, elapsed: float, left: float | None, waiting: Mapping[str, int]
) -> str:
    """One progress line, with the jobs still to run per rule.

    ``regbench: 12/70 jobs done (17%), 0:04:10 elapsed, ~0:19:55 left; to run: train_cell 55,
    render_report 1``
    """
    share = 100 * done / total if total else 100.0
    line = f"regbench: {done}/{total} jobs done ({share:.0f}%), {_clock(elapsed)} elapsed"
    if done < total:
        line += ", estimating time left" if left is None else f", ~{_clock(left)} left"
    rest = ", ".join(f"{rule} {count}" for rule, count in waiting.items() if count > 0)
    return f"{line}; to run: {rest}" if rest else line


class Progress:
    """Counts this invocation's jobs as they finish; prints a line now and then from a thread.

    ``emit`` receives each line (one line, no newline); ``clock`` gives seconds.
    """

    def __init__(
        self,
        *,
        interval: float = 30.0,
        emit: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.emit = emit
        self.clock = clock
        self._planned: Counter[str] = Counter()
        self._finished: Counter[str] = Counter()
        self._rules: dict[int, str] = {}  # job id -> rule, from the job's start
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started: float | None = None

    def plan(self, jobs: Mapping[str, int]) -> None:
        """The jobs this invocation will run, per rule (Snakemake's job stats)."""
        with self._lock:
            self._planned = Counter({rule: n for rule, n in jobs.items() if rule != "total"})

    def job_started(self, job_id: int, rule: str) -> None:
        """A job was handed to an executor."""
        with self._lock:
            self._rules[job_id] = rule

    def job_finished(self, job_id: int) -> None:
        """A job finished successfully."""
        with self._lock:
            self._finished[self._rules.pop(job_id, "other")] += 1

    def line(self) -> str:
        """The progress line for this moment."""
        with self._lock:
            done, total = sum(self._finished.values()), sum(self._planned.values())
            waiting = {rule: n - self._finished[rule] for rule, n in self._planned.items()}
        elapsed = 0.0 if self._started is None else self.clock() - self._started
        return format_line(done, total, elapsed, estimate(done, total, elapsed), waiting)

    def start(self) -> None:
        """Start the clock, emit the first line (what is to run) and start the reporting thread.

        The thread is a daemon: it never keeps Snakemake alive.
        """
        self._started = self.clock()
        self.emit(self.line())
        self._thread = threading.Thread(target=self._loop, name="regbench-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reporting and emit the final line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self.emit(self.line())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.emit(self.line())


class SnakemakeEvents(logging.Handler):
    """Feeds a :class:`Progress` from Snakemake's log events; writes nothing itself.

    Snakemake logs its job stats (``run_info``) before ``onstart``, then each
    job it hands to an executor (``job_info``: id and rule) and each job that
    finished (``job_finished``: id); see ``snakemake_interface_logger_plugins``.
    """

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        event = str(getattr(record, "event", ""))
        if event == "run_info":
            self.progress.plan(getattr(record, "stats", {}))
        elif event == "job_info":
            self.progress.job_started(
                getattr(record, "jobid", -1), getattr(record, "rule_name", "")
            )
        elif event == "job_finished":
            self.progress.job_finished(getattr(record, "job_id", -1))


def attach(interval: float) -> Progress:
    """A :class:`Progress` listening to Snakemake's logger and writing its lines there.

    Call it while the Snakefile is read: Snakemake reports the planned jobs
    before ``onstart``. The lines go through Snakemake's own handler (never
    interleaved with its output, copied into its log file) as progress, so
    ``--quiet`` silences them with Snakemake's.
    """
    from snakemake.settings.enums import Quietness

    logger = logging.getLogger(SNAKEMAKE_LOGGER)

    def emit(line: str) -> None:
        logger.info(line, extra={"quietness": Quietness.PROGRESS})

    progress = Progress(interval=interval, emit=emit)
    logger.addHandler(SnakemakeEvents(progress))
    return progress
