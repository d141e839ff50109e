"""The `regbench` command as a shell user meets it: help text and closed pipes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REGBENCH = [sys.executable, "-m", "regbench.cli"]


@pytest.mark.parametrize("command", [["--help"], ["why", "--help"]])
def test_help_is_plain_text(command: list[str]) -> None:
    """`regbench --help` and `regbench why --help` print no reStructuredText markup."""
    result = subprocess.run(
        [*REGBENCH, *command], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.startswith("usage: regbench")
    for markup in ("``", ":func:", ":class:", ":mod:"):
        assert markup not in result.stdout


def test_why_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """`regbench why` writing into a pipe nobody reads any more exits 141 without a traceback."""
    read_end, write_end = os.pipe()
    # The reader is gone before the command writes a byte, as when `| head -1` has exited.
    os.close(read_end)
    try:
        result = subprocess.run(
            [*REGBENCH, "why", "--configfile", str(REPO / "config.yaml"), "--directory", tmp_path],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 141


def test_why_lists_every_run_of_an_untrained_study(tmp_path: Path) -> None:
    """Into a reader that stays, `regbench why` names each of the default study's runs once."""
    result = subprocess.run(
        [*REGBENCH, "why", "--configfile", str(REPO / "config.yaml"), "--directory", tmp_path],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = result.stdout.splitlines()
    assert lines[0].endswith(": not trained yet")
    assert len(lines) == len(set(lines)) == 330
