"""End to end: the example under examples/custom_regularizer (a study with its own penalty and
model) trains for real under Snakemake, and editing one of its modules retrains exactly the
cells that use it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "custom_regularizer"


def snakemake(workdir: Path, *args: str) -> str:
    """Run the project's workflow on the example's study in ``workdir``; its output."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")),
            *("--directory", str(workdir), "--configfile", str(workdir / "study.yaml")),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        # The study's modules must be found through the study's folder alone.
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REGBENCH_STUDY_PATH")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def planned_cells(output: str) -> set[tuple[str, str]]:
    """The (model, regularizer) of each train_cell job a dry run plans."""
    jobs = re.findall(r"rule train_cell:\n(?:.+\n)*?\s+wildcards: ([^\n]+)", output)
    cells = set()
    for wildcards in jobs:
        values = dict(part.split("=", 1) for part in wildcards.split(", "))
        cells.add((values["model"], values["regularizer"]))
    return cells


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example copied to a fresh folder, cut to 2 seeds and 2 epochs, and run to its report."""
    workdir = tmp_path_factory.mktemp("example")
    shutil.copytree(EXAMPLE / "ortho", workdir / "ortho")
    study = yaml.safe_load((EXAMPLE / "study.yaml").read_text("utf-8"))
    study["seeds"] = [0, 1]
    study["training"]["epochs"] = 2
    (workdir / "study.yaml").write_text(yaml.safe_dump(study), "utf-8")
    snakemake(workdir, "--cores", "2")
    return workdir


@pytest.mark.e2e
def test_the_example_trains_its_own_penalty_and_model_to_a_report(example: Path) -> None:
    """Every run of the example trains, the orthogonality penalty adds to the objective, and the
    report says why dropout was skipped on the custom model."""
    runs = sorted((example / "results" / "runs").glob("digits/*/*/seed*/metrics.json"))
    assert {path.parent.parent.parent.name for path in runs} == {"mlp", "residual"}
    assert len(runs) == 7 * 2
    for path in runs:
        metrics = json.loads(path.read_text("utf-8"))
        assert metrics["status"] == "ok", path
        if path.parent.parent.name == "orthogonal":
            assert metrics["test_objective"] > metrics["test_loss"], path
    assert not (example / "results/runs/digits/residual/dropout").exists()
    report = (example / "reports" / "report.html").read_text("utf-8")
    assert "cannot insert the dropout layers of regularizer dropout" in report
    assert (example / "reports" / "report.pdf").stat().st_size > 0


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("module", "cells"),
    [
        ("penalties", {("mlp", "orthogonal"), ("residual", "orthogonal")}),
        ("nets", {("residual", "none"), ("residual", "l2"), ("residual", "orthogonal")}),
    ],
)
def test_editing_the_examples_module_retrains_exactly_its_cells(
    example: Path, module: str, cells: set[tuple[str, str]]
) -> None:
    """A comment added to the penalty's module plans the orthogonal cells again, to the model's
    module the custom model's cells, and nothing else trains again."""
    source = example / "ortho" / f"{module}.py"
    original = source.read_text("utf-8")
    try:
        source.write_text(original + "\n# edited\n", "utf-8")
        output = snakemake(example, "--dry-run")
    finally:
        source.write_text(original, "utf-8")
    assert planned_cells(output) == cells, output
    assert "Nothing to be done" in snakemake(example, "--dry-run")
