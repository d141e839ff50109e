"""Where the benchmarks find study A's red-wine file without downloading it.

``--wine-csv PATH`` on the command line wins, then ``$REGBENCH_WINE_CSV``,
then the file where study A's ``download_dataset`` job caches it
(``resources/downloads/<sha256>/winequality-red.csv`` below the repository,
or below ``$REGBENCH_DOWNLOADS``), so a checkout that ran study A once, or
holds a verified copy there, needs no option.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from regbench.download import download_path

REPO = Path(__file__).resolve().parents[1]
STUDY_A = REPO / "studies" / "a_wine_l1l2_dropout.yaml"


def wine_spec() -> dict[str, str]:
    """Study A's downloaded dataset: its ``url`` and ``sha256``."""
    study = yaml.safe_load(STUDY_A.read_text(encoding="utf-8"))
    (spec,) = (d for d in study["datasets"].values() if d.get("source") == "url")
    return {"url": spec["url"], "sha256": spec["sha256"]}


def default_wine_csv() -> Path:
    """``$REGBENCH_WINE_CSV``, else the download cache's copy of study A's file."""
    override = os.environ.get("REGBENCH_WINE_CSV")
    return Path(override) if override else REPO / download_path(wine_spec())
