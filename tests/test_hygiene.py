"""Workflow hygiene: Snakemake's linter and snakefmt find nothing to change."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_snakemake_lint_reports_nothing() -> None:
    """`snakemake --lint` on the default study has no lint to report."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--lint",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "Lints for" not in output, output
    assert "Congratulations" in output


@pytest.mark.skipif(shutil.which("snakefmt") is None, reason="snakefmt is not installed")
def test_snakefile_and_rules_are_formatted() -> None:
    """snakefmt would change neither the Snakefile nor any rule file."""
    result = subprocess.run(
        ["snakefmt", "--check", "Snakefile", "rules"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
