"""The report read back: PDF structure, numbers, findings and safety, on fabricated runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
from fabricate import fabricate_study, render_fabricated, study_config
from pypdf import PdfReader

from regbench.report import format_number

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def page_texts(pdf: Path) -> list[str]:
    """The text of each page, in order."""
    return [page.extract_text() or "" for page in PdfReader(pdf).pages]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fabricated 3-dataset study with one real effect and one diverged run, rendered."""
    root = tmp_path_factory.mktemp("report")
    study = fabricate_study(root, study_config(datasets=3, regularizers=4, seeds=8), diverged=1)
    render_fabricated(root, study, TEMPLATES)
    return root


def test_table_of_contents_gives_the_right_page_numbers(rendered: Path) -> None:
    """Each contents entry's page number is the page where that section's heading is."""
    pages = page_texts(rendered / "reports/report.pdf")
    contents = next(i for i, text in enumerate(pages) if text.lstrip().startswith("Contents"))
    entries = re.findall(r"^(.+?)\s*\.{3,}\s*(\d+)\s*$", pages[contents], flags=re.MULTILINE)
    titles = [title.strip() for title, _ in entries]
    assert titles[:5] == [
        "Findings",
        "Dataset: data0",
        "Dataset: data1",
        "Dataset: data2",
        "Across datasets",
    ]
    assert {"Method", "Provenance"} <= set(titles)
    for title, number in entries:
        heading_page = pages[int(number) - 1]
        assert title.strip() in heading_page, (title, number)


def test_pdf_numbers_equal_summary_csv(rendered: Path) -> None:
    """Every cell's test accuracy and loss mean in summary.csv is printed in its dataset's pages."""
    text = " ".join(page_texts(rendered / "reports/report.pdf"))
    summary = pd.read_csv(rendered / "results/tables/summary.csv")
    for metric in ("test_accuracy", "test_loss", "test_f1_macro"):
        for row in summary[summary["metric"] == metric].itertuples():
            assert format_number(row.mean, 3) in text, (row.dataset, row.regularizer, metric)


def test_findings_report_the_real_effect_and_call_noise_indistinguishable(rendered: Path) -> None:
    """The fabricated +5 point regularizer is a finding; pure-noise ones are indistinguishable."""
    text = " ".join(page_texts(rendered / "reports/report.pdf"))
    text = re.sub(r"\s+", " ", text)
    for dataset in ("data0", "data1", "data2"):
        assert f"On {dataset} (mlp), l2_0 raises test accuracy by" in text
        assert re.search(
            rf"On {dataset} \(mlp\), l2_1 and l2_2 are indistinguishable from none", text
        )


def test_diverged_run_is_shown_not_averaged(rendered: Path) -> None:
    """A diverged run is listed with its epoch and excluded from its cell's n."""
    text = re.sub(r"\s+", " ", " ".join(page_texts(rendered / "reports/report.pdf")))
    assert "diverged at epoch 3" in text
    summary = pd.read_csv(rendered / "results/tables/summary.csv")
    cell = summary[
        (summary["dataset"] == "data2")
        & (summary["regularizer"] == "none")
        & (summary["metric"] == "test_accuracy")
    ].iloc[0]
    assert (cell["n"], cell["n_diverged"]) == (7, 1)


def test_pdf_fonts_are_embedded_and_metadata_set(rendered: Path) -> None:
    """Every font in the PDF is embedded, and title, subject, creator and date are set."""
    reader = PdfReader(rendered / "reports/report.pdf")
    fonts = {}
    for page in reader.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            for descendant in font.get("/DescendantFonts", [font]):
                descriptor = descendant.get_object().get("/FontDescriptor")
                if descriptor is not None:
                    descriptor = descriptor.get_object()
                    fonts[descriptor["/FontName"]] = any(
                        k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")
                    )
    assert fonts and all(fonts.values()), fonts
    meta = reader.metadata
    assert meta.title == "Fabricated study"
    assert meta.subject == "Fabricated results."
    assert meta.creator == "regbench"
    assert meta.creation_date is not None


def test_html_is_self_contained(rendered: Path) -> None:
    """The HTML carries its stylesheet and figures inline and names no external URL."""
    html = (rendered / "reports/report.html").read_text(encoding="utf-8")
    assert "<style>" in html and "@page" in html
    assert re.findall(r'(?:src|href)="(?!data:|#)', html) == []
    figures = json.loads((rendered / "results/figures/figures.json").read_text("utf-8"))
    assert html.count('src="data:image/svg+xml;base64,') >= len(figures) >= 3 * 3


class _Recorder(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"fetched")

    def log_message(self, *args: object) -> None:
        pass


def test_hostile_strings_render_as_text_and_nothing_is_fetched(tmp_path: Path) -> None:
    """HTML and URLs in config and data become text; the PDF attaches and fetches nothing."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spy = f"http://127.0.0.1:{server.server_port}/spy.png"
    try:
        hostile = (
            f'<img src="file:///etc/hostname"><script>alert(1)</script>'
            f'<link rel="attachment" href="file:///etc/passwd"><img src="{spy}">'
            " http://127.0.0.1:1/"
        )
        raw = study_config(datasets=2, regularizers=3, seeds=3, title="Title " + hostile)
        raw["study"]["description"] = "Description " + hostile
        raw["datasets"]["data0"]["description"] = "Dataset " + hostile
        study = fabricate_study(tmp_path, raw)
        card = tmp_path / "results/data/data1/card.json"
        card.write_text(
            card.read_text().replace('"0": 0.5', f'"{hostile.replace(chr(34), "")}": 0.5')
        )
        html_path, pdf_path = render_fabricated(tmp_path, study, TEMPLATES)
    finally:
        server.shutdown()
    html = html_path.read_text(encoding="utf-8")
    assert "<script>" not in html
    assert '<img src="file:' not in html and 'rel="attachment"' not in html
    assert "&lt;img src=&#34;file:///etc/hostname&#34;&gt;" in html
    assert _Recorder.hits == []
    reader = PdfReader(pdf_path)
    assert reader.attachments == {}
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "<script>alert(1)</script>" in text
    assert "http://127.0.0.1:1/" in text


BROWSER_HOSTS = r"(^|[./ ])(google\.com|googleapis\.com|gvt1\.com)(:\d+)?(/|$)"


class _Proxy(BaseHTTPRequestHandler):
    """A proxy that serves the report at one URL and records every request with its referrer."""

    report: ClassVar[bytes] = b""
    requests: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        type(self).requests.append((f"GET {self.path}", self.headers.get("Referer", "")))
        found = self.path == "http://report.test/report.html"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(type(self).report if found else b"")

    def do_CONNECT(self) -> None:
        type(self).requests.append((f"CONNECT {self.path}", self.headers.get("Referer", "")))
        self.send_response(403)
        self.end_headers()

    do_POST = do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_html_loads_in_chromium_with_no_other_request(rendered: Path, tmp_path: Path) -> None:
    """Headless Chromium, forced through a recording proxy, loads nothing but the report."""
    _Proxy.report = (rendered / "reports/report.html").read_bytes()
    _Proxy.requests = []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    screenshot = tmp_path / "report.png"
    try:
        subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}",
                f"--proxy-server=http://127.0.0.1:{proxy.server_port}",
                "--proxy-bypass-list=<-loopback>",
                "--window-size=1280,3000",
                f"--screenshot={screenshot}",
                "http://report.test/report.html",
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
    finally:
        proxy.shutdown()
    # Chromium's own background traffic (update and clock checks) goes to Google's
    # update hosts whatever the page; everything else came from loading the report.
    from_page = [r for r, _ in _Proxy.requests if not re.search(BROWSER_HOSTS, r)]
    assert from_page == ["GET http://report.test/report.html"]
    assert screenshot.stat().st_size > 20_000  # A rendered page, not a blank one.
