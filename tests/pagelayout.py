"""Fabricated studies of given shapes, rendered without figures, and page 1's word boxes.

A shape is rows × columns of the verdict matrix: rows are dataset · model
cells, columns the variants (the baseline included). The runs are fabricated
(:mod:`fabricate`) and aggregated by the real step; the report is rendered
from those tables without figures, which page 1 never shows.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pandas as pd
from fabricate import aggregate_fabricated, fabricate_study, study_config, table_paths

from regbench.config import Study, load_study
from regbench.report import ReportTables

__all__ = [
    "SHAPES",
    "Box",
    "overlapping",
    "page_one",
    "render_shape",
    "run_together",
    "shape_config",
    "word_boxes",
]

#: Variant names as long as real studies write them (study A's sweeps, a cocktail's pieces).
_LONG_NAMES = (
    "l1l2_l1-0.001_l2-0.001",
    "dropout_0.2",
    "spatial_dropout",
    "augmentation",
    "weight_decay_decoupled",
    "input_noise",
    "label_smoothing",
    "max_norm",
)


def _plain(count: int) -> dict[str, Any]:
    """``count`` non-baseline variants, named as long as real studies name them."""
    names = [
        _LONG_NAMES[i] if i < len(_LONG_NAMES) else f"cocktail_piece_{i:02d}" for i in range(count)
    ]
    return {name: {"kernel": {"l2": 10.0 ** -(2 + i % 4)}} for i, name in enumerate(names)}


#: Study F's variants on an MLP: three sweeps (3 + 2 + 3 variants) and five single pieces.
_SWEPT = {
    "l2": {"kernel": {"l2": [1.0e-4, 1.0e-3, 1.0e-2]}},
    "dropout": {"dropout": {"rate": [0.2, 0.5], "layers": "dense"}},
    "decay": {"weight_decay": {"rate": [4.0e-3, 4.0e-2, 4.0e-1]}},
    "max_norm": {"max_norm": {"value": 3}},
    "input_noise": {"gaussian_noise": {"stddev": 0.1, "layers": "inputs"}},
    "smoothing": {"label_smoothing": {"amount": 0.1}},
    "augment": {"gaussian_noise": {"stddev": 0.05}},
    "spatial_dropout": {"dropout": {"rate": 0.1}},
}


@dataclass(frozen=True)
class Shape:
    """A study's grid: ``datasets`` × ``models`` rows, the baseline and ``variants`` columns."""

    datasets: int
    models: int
    variants: int
    sweeps: bool = False

    @property
    def name(self) -> str:
        swept = " with sweeps" if self.sweeps else ""
        return f"{self.datasets * self.models}x{self.variants + 1}{swept}"


#: The shapes the layout must hold, from the smallest study to a 40-dataset suite.
SHAPES = (
    Shape(1, 1, 2),
    Shape(2, 1, 2),
    Shape(3, 2, 10),
    Shape(2, 1, 13, sweeps=True),
    Shape(20, 1, 19),
    Shape(40, 1, 24),
)


def shape_config(shape: Shape) -> dict[str, Any]:
    """A valid raw study of ``shape``, with a description as long as study A's."""
    raw = study_config(datasets=shape.datasets, regularizers=2, seeds=3, models=shape.models)
    raw["regularizers"] = {"none": {}, **(_SWEPT if shape.sweeps else _plain(shape.variants))}
    raw["study"]["description"] = (
        "Does a penalty, a constraint or noise change test accuracy beyond seed-to-seed noise? "
        + "Settings follow the reference notebook, with three seeds per variant. " * 6
    )
    return raw


def page_one(html: str) -> str:
    """The report with At a glance alone: the same page 1, since the print style breaks after it.

    Laying out only this page keeps a 40-dataset study's check to seconds.
    """
    start, end = html.index('<nav id="contents">'), html.index("</body>")
    return html[:start] + html[end:]


#: The real effect of the first variant: clear on some cells, within noise on others, so page 1
#: words every kind of verdict.
EFFECT = 0.06

#: Studies of more datasets are aggregated on this many and the tables repeated: page 1
#: reads tables only, and aggregating 3,000 fabricated runs would take a minute and more.
_TILE = 8


def _tiled(tables: ReportTables, datasets: int, wanted: int) -> ReportTables:
    """``tables`` of ``datasets`` datasets repeated until they cover ``wanted`` (``data<i>``)."""

    def renamed(copy: int) -> dict[str, str]:
        return {f"data{i}": f"data{i + copy * datasets}" for i in range(datasets)}

    copies = range(-(-wanted // datasets))
    frames = {
        field.name: pd.concat(
            [frame.replace({"dataset": renamed(copy)}) for copy in copies], ignore_index=True
        ).pipe(lambda table: table[table["dataset"].isin([f"data{i}" for i in range(wanted)])])
        for field in dataclasses.fields(tables)
        if isinstance(frame := getattr(tables, field.name), pd.DataFrame)
        and "dataset" in frame.columns
    }
    architectures = {
        f"{renamed(copy)[key.split('/')[0]]}/{key.split('/', 1)[1]}": layers
        for copy in copies
        for key, layers in tables.architectures.items()
    }
    return dataclasses.replace(tables, **frames, architectures=architectures)


def render_shape(root: Path, shape: Shape, template_dir: Path) -> tuple[Path, Path]:
    """Fabricate, aggregate and render ``shape``'s report (no figures): its HTML, page 1's PDF.

    A shape of more than :data:`_TILE` datasets repeats the tables of its first ones.
    """
    from regbench.jobs import _read_cards
    from regbench.report import build_context, render_html, write_pdf

    tile = dataclasses.replace(shape, datasets=min(shape.datasets, _TILE))
    study: Study = fabricate_study(root, shape_config(tile), effect=EFFECT)
    tables = ReportTables.read(table_paths(aggregate_fabricated(root, study)))
    if tile != shape:
        tables = _tiled(tables, tile.datasets, shape.datasets)
    card = _read_cards([str(root / "results" / "data" / "data0" / "card.json")])["data0"]
    config = load_study(shape_config(shape)).config
    context = build_context(
        config=json.loads(json.dumps(config)),
        tables=tables,
        cards={name: {**card, "name": name} for name in config["datasets"]},
        figures=[],
        figure_dir=root,
        skipped=[],
    )
    html, pdf = root / "report.html", root / "page1.pdf"
    html.write_text(render_html(context, template_dir), encoding="utf-8")
    write_pdf(page_one(html.read_text(encoding="utf-8")), pdf)
    return html, pdf


@dataclass(frozen=True)
class Box:
    """One word of a PDF page and its box, in points from the top left."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float


def word_boxes(pdf: Path, page: int = 1) -> list[Box]:
    """The words of one page with their boxes, as ``pdftotext -bbox`` reads them."""
    xhtml = subprocess.run(
        ["pdftotext", "-bbox", "-f", str(page), "-l", str(page), str(pdf), "-"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    root = ElementTree.fromstring(xhtml)
    return [
        Box(
            word.text or "",
            *(float(word.attrib[key]) for key in ("xMin", "yMin", "xMax", "yMax")),
        )
        for word in root.iter("{http://www.w3.org/1999/xhtml}word")
    ]


def overlapping(boxes: list[Box], tolerance: float = 0.5) -> list[tuple[Box, Box]]:
    """Pairs of words whose boxes overlap by more than ``tolerance`` points both ways."""
    found = []
    ordered = sorted(boxes, key=lambda box: box.y0)
    for i, first in enumerate(ordered):
        for second in ordered[i + 1 :]:
            if second.y0 >= first.y1 - tolerance:
                break
            wide = min(first.x1, second.x1) - max(first.x0, second.x0)
            tall = min(first.y1, second.y1) - max(first.y0, second.y0)
            if wide > tolerance and tall > tolerance:
                found.append((first, second))
    return found


#: Two decimal numbers in one word (``0.3`` and ``\u22120.4`` as ``0.3\u22120.4``).
_TWO_NUMBERS = re.compile(r"\d\.\d+[\u2212+\-,]?\d*\.\d")

#: Words on one line closer than this many points read as one: a space is about 2.
_TOUCHING = 1.0


def run_together(boxes: list[Box]) -> list[str]:
    """Numbers with nothing between them: in one word, or in two words that touch on a line."""
    found = [box.text for box in boxes if _TWO_NUMBERS.search(box.text)]
    numeric = sorted((b for b in boxes if re.search(r"\d", b.text)), key=lambda b: (b.y0, b.x0))
    for first in numeric:
        for second in numeric:
            height = min(first.y1 - first.y0, second.y1 - second.y0)
            same_line = min(first.y1, second.y1) - max(first.y0, second.y0) > height / 2
            if same_line and first is not second and -_TOUCHING < second.x0 - first.x1 < _TOUCHING:
                found.append(first.text + second.text)
    return found
