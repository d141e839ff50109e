"""Fingerprints of the code a result depends on, so that changing that code reruns it.

Snakemake reruns a job when its script changes, but the scripts here are thin
adapters: the work is done by the package. A training job and a preparation
job therefore get the digest of the modules that decide their result as a
``param``; editing any of them (even a comment: the digest does not read the
code's meaning) reruns every such job, and editing the report's modules reruns
none. A rerun preparation rewrites ``data.npz``, so every run on that dataset
trains again too.
"""

from __future__ import annotations

import hashlib
import subprocess
from importlib import resources
from pathlib import Path

__all__ = ["PREPARATION_MODULES", "TRAINING_MODULES", "code_digest", "git_commit"]

#: The modules whose source decides a training run's result.
TRAINING_MODULES = (
    "training.py",
    "seedstack.py",
    "models.py",
    "metrics.py",
    "topology.py",
    "custom.py",
)

#: The modules whose source decides a prepared dataset. Not ``download.py``: a
#: downloaded file is checked against its sha256, so the code that fetched it
#: cannot change its bytes.
PREPARATION_MODULES = ("datasets.py", "formats.py", "inputs.py")


def code_digest(modules: tuple[str, ...]) -> str:
    """A short sha256 over the given modules' source, in the given order."""
    digest = hashlib.sha256()
    package = resources.files("regbench")
    for name in modules:
        digest.update(name.encode())
        digest.update(package.joinpath(name).read_bytes())
    return digest.hexdigest()[:16]


def _git(project_dir: Path, *args: str) -> str | None:
    """A git command's output in ``project_dir``, or None where git or the checkout is missing."""
    try:
        result = subprocess.run(
            ["git", *args], cwd=project_dir, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def git_commit(project_dir: Path, path: Path | None = None) -> str:
    """The commit of the project, or of one file in it, noting uncommitted changes.

    Computed once per Snakemake run (a compute node may have no git).
    """
    where = [] if path is None else ["--", str(path)]
    commit = _git(project_dir, "log", "-1", "--format=%h", *where)
    if commit is None or (path is None and not commit):
        return "unknown (not a git checkout)"
    if not commit:
        return "not committed"
    dirty = _git(project_dir, "status", "--porcelain", "--untracked-files=no", *where)
    return commit + (" (with uncommitted changes)" if dirty else "")
