"""Page 1 at every size: fabricated studies from 2 × 3 to 40 × 25, read from PDF and Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pagelayout import (
    SHAPES,
    Shape,
    overlapping,
    page_one,
    render_shape,
    run_together,
    shape_config,
    word_boxes,
)
from pypdf import PdfReader

from regbench.report import GLANCE_COLUMNS, GLANCE_ROWS, _question, write_pdf
from regbench.wording import MINUS, column_labels

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) is not installed"
)
needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed"
)


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Shape], Path]:
    """A shape's report, rendered once per module: report.html, and page1.pdf of page 1 alone."""
    done: dict[Shape, Path] = {}

    def rendered(shape: Shape) -> Path:
        if shape not in done:
            done[shape] = tmp_path_factory.mktemp("layout")
            render_shape(done[shape], shape, TEMPLATES)
        return done[shape]

    return rendered


@pytest.fixture(params=SHAPES, ids=[shape.name for shape in SHAPES])
def shaped(request: pytest.FixtureRequest, render: Callable[[Shape], Path]) -> Path:
    """Each shape's rendered report in turn."""
    return render(request.param)


@needs_poppler
def test_page_one_words_neither_overlap_nor_run_together(shaped: Path) -> None:
    """No two words of page 1 overlap, and no two numbers touch (from pdftotext's word boxes)."""
    boxes = word_boxes(shaped / "page1.pdf")
    assert len(boxes) > 100
    assert [(a.text, b.text) for a, b in overlapping(boxes)] == []
    assert run_together(boxes) == []


def test_at_a_glance_fits_on_page_one(shaped: Path) -> None:
    """At a glance, caveats included, lays out on one A4 page."""
    pages = PdfReader(shaped / "page1.pdf").pages
    text = pages[0].extract_text() or ""
    assert "At a glance" in text and "Caveats" in text
    assert len(pages) == 1


def test_page_one_shows_the_question_and_method_the_description(shaped: Path) -> None:
    """Page 1 asks the study's question; the whole description opens the Method section."""
    html = (shaped / "report.html").read_text(encoding="utf-8")
    glance, _ = _sections(html)
    assert (
        '<p class="question">Does a penalty, a constraint or noise change test accuracy beyond '
        "seed-to-seed noise?</p>" in glance
    )
    assert "Settings follow the reference notebook" not in glance
    method = html[html.index('<article id="method">') :]
    assert "Settings follow the reference notebook, with three seeds per variant." in method


def _sections(html: str) -> tuple[str, str]:
    """Page 1's markup, and the full matrix's (empty where there is none)."""
    glance = html[html.index('<article id="glance">') : html.index('<nav id="contents">')]
    start = html.find('<article id="full-matrix">')
    full = "" if start < 0 else html[start : html.index("</article>", start)]
    return glance, full


def test_a_wide_sweep_study_shows_one_column_per_sweep_and_every_strength_later(
    render: Callable[[Shape], Path],
) -> None:
    """2 × 14 with three sweeps: page 1 has a column per family; the full matrix every variant."""
    shape = next(s for s in SHAPES if s.sweeps)
    glance, full = _sections((render(shape) / "report.html").read_text(encoding="utf-8"))
    headers = re.findall(r'<th scope="col">([^<]*)</th>', glance.split("<tbody>")[0])
    assert [h.replace("\u200b", "") for h in headers] == [
        "l2",
        "dropout",
        "decay",
        "max_norm",
        "input_noise",
        "smoothing",
        "augment",
        "spatial_dropout",
    ]
    assert '<table class="summary tuned-glance">' in glance  # The tuned comparisons: a table.
    assert f"decay {MINUS} none" in glance
    assert full.count('<table class="matrix">') == 2  # 13 variants in blocks of 10.
    for name in ("l2_0.0001", "dropout_0.5", "decay_0.4", "spatial_dropout"):
        assert name.replace("_", "_\u200b") in full


@pytest.mark.parametrize("shape", [s for s in SHAPES if s.datasets > GLANCE_ROWS], ids=str)
def test_a_suite_gets_a_summary_per_regularizer_on_page_one(
    render: Callable[[Shape], Path], shape: Shape
) -> None:
    """Beyond the matrix's limits, page 1 counts verdicts per regularizer, gains first."""
    glance, full = _sections((render(shape) / "report.html").read_text(encoding="utf-8"))
    assert '<table class="summary">' in glance and '<table class="matrix">' not in glance
    rows = re.findall(r'<tr><th scope="row">([^<]*)</th>', glance)
    variants = [name for name in shape_config(shape)["regularizers"] if name != "none"]
    assert sorted(rows) == sorted(variants)
    assert rows[0] == "l1l2_l1-0.001_l2-0.001"  # The one variant fabricated with a real effect.
    assert full.count('<table class="matrix">') == -(-len(variants) // GLANCE_COLUMNS)
    assert full.count('<th scope="row">data0 · mlp') == -(-len(variants) // GLANCE_COLUMNS)


def test_page_one_is_at_a_glance_alone(render: Callable[[Shape], Path], tmp_path: Path) -> None:
    """The print style breaks after At a glance, so page 1 of the whole report is page1.pdf's."""
    root = render(SHAPES[0])
    html = (root / "report.html").read_text(encoding="utf-8")
    write_pdf(html, tmp_path / "report.pdf")
    full = PdfReader(tmp_path / "report.pdf").pages
    alone = PdfReader(root / "page1.pdf").pages
    # Alike but for the footer's page count.
    footer = re.compile(r"page 1 of \d+\s*$")
    assert footer.sub("", full[0].extract_text()) == footer.sub("", alone[0].extract_text())
    assert (full[1].extract_text() or "").lstrip().startswith("Contents")
    assert page_one(html).count("<article") == 1


_OVERFLOW_CHECK = """<pre id="layout-check"></pre><script>
const page = document.documentElement;
const found = [];
if (page.scrollWidth > page.clientWidth) found.push("page " + page.scrollWidth);
for (const table of document.querySelectorAll("table.matrix, table.summary")) {
  const box = table.getBoundingClientRect(), parent = table.parentElement.getBoundingClientRect();
  if (box.right > parent.right + 1) found.push("table " + box.right + " > " + parent.right);
  for (const cell of table.querySelectorAll("th, td"))
    if (cell.scrollWidth > cell.clientWidth + 1) found.push("cell " + cell.textContent);
}
document.getElementById("layout-check").textContent = JSON.stringify(found);
</script>"""


@needs_chromium
@pytest.mark.parametrize("width", [1280, 1024])
def test_html_matrix_does_not_overflow_in_chromium(shaped: Path, width: int) -> None:
    """In headless Chromium no matrix, summary or cell of the HTML report spills sideways."""
    checked = shaped / "checked.html"
    html = (shaped / "report.html").read_text(encoding="utf-8")
    checked.write_text(html.replace("</body>", _OVERFLOW_CHECK + "</body>"), encoding="utf-8")
    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            f"--user-data-dir={shaped / 'profile'}",
            f"--window-size={width},1000",
            "--dump-dom",
            checked.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', dom, re.S)
    assert found is not None and found.group(1) == "[]"


LONG = "l1l2_\u200bl1-\u200b0.001_\u200bl2-\u200b0.001"


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["l2_0.0001", "spatial_dropout"], ["l2_\u200b0.0001", "spatial_\u200bdropout"]),
        (["dropout_0.2", "l1l2_l1-0.001_l2-0.001"], ["dropout_\u200b0.2", LONG]),
        (["dropout_0.2", "l1l2_l1-0.001_l2-0.001", *"abcdefgh"], [*"ABCDEFGHIJ"]),
    ],
)
def test_column_labels_are_whole_names_or_codes(names: list[str], expected: list[str]) -> None:
    """Labels break only after _ or -; where one name is too long for its share, all get codes."""
    assert column_labels(names) == expected


def test_codes_go_on_past_z() -> None:
    """The 27th column is AA, as spreadsheets name it."""
    assert column_labels(["x" * 30] * 28)[25:] == ["Z", "AA", "AB"]


@pytest.mark.parametrize(
    ("description", "question"),
    [
        ("Does L2 help? It is swept over five strengths.", "Does L2 help?"),
        ("L2 on wine. Swept over five strengths.", "L2 on wine."),
        ("", "Title"),
    ],
)
def test_the_question_is_the_descriptions_first_question(description: str, question: str) -> None:
    """Page 1's question: the description's first question, else first sentence, else title."""
    assert _question({"title": "Title", "description": description}) == question


def test_shapes_are_named_rows_by_columns() -> None:
    """A shape's name is its matrix: dataset · model rows by variants, baseline included."""
    assert [shape.name for shape in SHAPES] == [
        "1x3",
        "2x3",
        "6x11",
        "2x14 with sweeps",
        "20x20",
        "40x25",
    ]
    assert Shape(5, 2, 10, sweeps=True).name == "10x11 with sweeps"
