"""Code and workflow hygiene: short functions, explained suppressions, linted workflow."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
import yaml
from fabricate import study_config

REPO = Path(__file__).resolve().parents[1]
#: The longest function the package allows (issue 16): split longer ones by their steps.
MAX_FUNCTION_LINES = 80
#: Where every lint suppression must say why, on its own line.
SUPPRESSED_FOLDERS = ("src", "scripts", "tests", "benchmarks")
# A noqa or type-ignore comment, its codes, and whatever follows on the line: the reason.
_SUPPRESSION = re.compile(
    r"#\s*(?:n[o]qa(?::\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)?|type:\s*ignore(?:\[[^\]]*\])?)"
    r"(?P<rest>.*)"
)
# Our snakefmt is the one installed beside this Python, whether or not its folder is on PATH.
SNAKEFMT = Path(sys.executable).with_name("snakefmt")


def long_functions(source: str, name: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``name:line function (N lines)`` for each function in ``source`` longer than ``limit``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                found.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def unexplained_suppressions(source: str, name: str) -> list[str]:
    """``name:line comment`` for each noqa / type: ignore comment that gives no reason."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        match = _SUPPRESSION.search(token.string)
        # A reason is words after the codes: "(Snakemake injects it)", "- the caller closes it".
        if match and not re.search(r"[A-Za-z]{3,}", match["rest"]):
            found.append(f"{name}:{token.start[0]} {token.string}")
    return found


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (REPO / folder).rglob("*.py"))


def test_no_function_in_the_package_exceeds_80_lines() -> None:
    """Every function in src/regbench, nested ones included, is at most 80 lines long."""
    found = [
        problem
        for path in python_files("src")
        for problem in long_functions(path.read_text("utf-8"), str(path.relative_to(REPO)))
    ]
    assert not found, "split these by the steps a reader would name:\n" + "\n".join(found)


def test_the_length_check_counts_a_function_from_def_to_last_line() -> None:
    """An 81-line function is reported with its name and length; an 80-line one is not."""
    lines = [f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES)]
    assert long_functions("def fits():\n" + "".join(lines[:-1]), "m.py") == []
    assert long_functions("def grows():\n" + "".join(lines), "m.py") == ["m.py:1 grows (81 lines)"]


def test_every_suppression_gives_its_reason() -> None:
    """Each `# noqa` and `# type: ignore` in src, scripts, tests and benchmarks says why."""
    found = [
        problem
        for path in python_files(*SUPPRESSED_FOLDERS)
        for problem in unexplained_suppressions(
            path.read_text("utf-8"), str(path.relative_to(REPO))
        )
    ]
    assert not found, "say why on the same line:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line, explained",
    [
        ("x = y  # noqa: F821\n", False),
        ("x = y  # noqa\n", False),
        ("x = y  # type: ignore[no-any-return]\n", False),
        ("x = y  # type: ignore\n", False),
        ("x = y  # noqa: F821 (Snakemake injects it)\n", True),
        ("x = y  # noqa: SIM115 - the caller closes it\n", True),
        ("x = y  # type: ignore[no-any-return]  # parsed YAML is Any\n", True),
        ("x = '# noqa: F821'  # a string, not a suppression\n", True),
    ],
)
def test_the_suppression_check_tells_a_reason_from_none(line: str, explained: bool) -> None:
    """A suppression with only its codes is reported; one with words after them, or text in a
    string, is not."""
    assert (unexplained_suppressions(line, "m.py") == []) is explained


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


def test_snakefile_and_rules_are_formatted() -> None:
    """snakefmt (a test dependency, beside this Python) would change no Snakefile or rule file."""
    result = subprocess.run(
        [str(SNAKEFMT), "--check", "Snakefile", "rules"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tables_job_waits_for_one_file_per_cell(tmp_path: Path) -> None:
    """A dry run lists aggregate_runs' input once each: one record per cell (2 datasets x
    3 regularizers), not three files per seed, and each dataset's card: 8 paths for 24
    runs, on a line of about 300 characters instead of 2,000."""
    config = study_config(datasets=2, regularizers=3, seeds=4)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "snakemake", "--dry-run"),
            *("--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)),
            *("--configfile", str(tmp_path / "config.yaml")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    job = result.stdout.split("rule aggregate_runs:", 1)[1]
    line = job.split("input:", 1)[1].splitlines()[0]
    inputs = line.strip().split(", ")
    assert sum(path.endswith("/cell.json") for path in inputs) == 2 * 3
    assert sum(path.endswith("/card.json") for path in inputs) == 2
    assert len(inputs) == len(set(inputs)) == 2 * 3 + 2
    assert len(line) < 500
