"""The report read back: PDF structure, numbers, findings and safety, on fabricated runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
from fabricate import fabricate_study, render_fabricated, study_config, table_paths
from pypdf import PdfReader

from regbench.config import canonical_json, load_study
from regbench.wording import format_diff, format_value

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

#: The most pages the default study's PDF may take (issue 12).
MAX_PAGES = 25


def page_texts(pdf: Path) -> list[str]:
    """The text of each page, in order."""
    return [page.extract_text() or "" for page in PdfReader(pdf).pages]


def flat(text: str) -> str:
    """Text with every run of whitespace made one space."""
    return re.sub(r"\s+", " ", text).strip()


class _Tables(HTMLParser):
    """The tables of an HTML page: class, and per body row its cell texts, print-only rows."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, Any]] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_body = False
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table":
            self.tables.append({"class": classes, "rows": []})
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._hidden = int("screen-only" in classes)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            if not self._hidden:
                self._row.append(flat("".join(self._cell)))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1]["rows"].append([cell for cell in self._row if cell])
            self._row = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_tables(html: Path) -> list[dict[str, Any]]:
    """Every table of the report, as the reader of the PDF sees it (screen-only cells left out)."""
    parser = _Tables()
    parser.feed(html.read_text(encoding="utf-8"))
    return parser.tables


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fabricated 3-dataset study with one real effect and one diverged run, rendered."""
    root = tmp_path_factory.mktemp("report")
    raw = study_config(datasets=3, regularizers=4, seeds=8)
    # Made-up published values: one near the baseline's runs, one far from l2_0's.
    raw["references"] = {
        "none": {"dataset": "data0", "model": "mlp", "test_accuracy": 0.80, "source": "Paper A"},
        "l2_0": {"dataset": "data0", "model": "mlp", "test_accuracy": 0.60, "source": "Paper B"},
    }
    # One baseline and one regularized cell still improving at their last epoch.
    study = fabricate_study(
        root, raw, diverged=1, unconverged=[("data2", "none"), ("data1", "l2_1")]
    )
    render_fabricated(root, study, TEMPLATES)
    return root


@pytest.fixture(scope="module")
def default_sized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fabricated study larger than the default one: 5 datasets, 2 models, 11 regularizers."""
    root = tmp_path_factory.mktemp("default-sized")
    raw = study_config(datasets=5, regularizers=11, seeds=5, models=2)
    render_fabricated(root, fabricate_study(root, raw), TEMPLATES)
    return root


def test_page_one_answers_the_question(rendered: Path) -> None:
    """Page 1 carries At a glance, the verdict matrix, a verdict sentence and the caveats."""
    first = flat(page_texts(rendered / "reports/report.pdf")[0])
    assert "At a glance" in first
    assert "Paired effect on test accuracy against none" in first
    for row in ("data0 · mlp", "data1 · mlp", "data2 · mlp"):
        assert row in first
    comparisons = pd.read_csv(rendered / "results/tables/comparisons.csv")
    gains = comparisons[
        (comparisons["metric"] == "test_accuracy") & (comparisons["verdict"] == "better")
    ]
    assert set(gains["regularizer"]) == {"l2_0"}
    # data2's baseline had not converged: l2_0's gain is judged on data0 and data1 alone.
    assert gains["dataset"].tolist() == ["data0", "data1"]
    where = ", ".join(
        f"{row.dataset} · mlp {format_diff(row.mean_diff, 'test_accuracy')}"
        for row in gains.sort_values("mean_diff", key=abs, ascending=False).itertuples()
    )
    assert (f"Test accuracy is higher than with none for l2_0 ({where} points); ") in first
    # The other three are counted by verdict, each count agreeing with comparisons.csv, and
    # the four resting on unconverged runs are counted apart.
    others = comparisons[
        (comparisons["metric"] == "test_accuracy")
        & ~comparisons["verdict"].isin(["better", "undertrained"])
    ]["verdict"].value_counts()
    assert others.sum() == 3
    if len(others) == 1:
        assert f"the other 3 comparisons are {others.index[0]}" in first
    else:
        assert "of the other 3 comparisons, " in first
        for verdict, count in others.items():
            assert f"{count} {'is' if count == 1 else 'are'} {verdict}" in first
    assert "(4 more not judged: undertrained)." in first
    assert "Caveats" in first and "8 seeds per cell, paired by seed" in first
    # The matrix prints each cell's paired difference, in points, with its symbol.
    for row in gains.itertuples():
        assert f"▲ {format_diff(row.mean_diff, 'test_accuracy', compact=True)}" in first


def test_published_values_are_placed_against_the_prediction_interval(rendered: Path) -> None:
    """Made-up reference values read as consistent or outside, on page 1 and in their section."""
    pages = page_texts(rendered / "reports/report.pdf")
    references = pd.read_csv(rendered / "results/tables/references.csv")
    assert references["verdict"].tolist() == ["consistent", "outside"]
    inside = references[references["verdict"] == "consistent"].iloc[0]
    width = format_diff(inside["pi_high"] - inside["pi_low"], "test_accuracy", signed=False)
    assert (
        "Of 2 published values, 1 lies inside this study's 95% prediction interval for one "
        "run; 1 outside (l2_0 test accuracy). Inside is weak evidence where the interval is "
        f"wide: one run's interval spans {width} points of test accuracy."
    ) in flat(pages[0])
    text = flat(" ".join(pages))
    section = text[text.index("Published values Each value") :]
    for row in references.itertuples():
        interval = (
            f"{format_value(row.pi_low, 'test_accuracy')} to "
            f"{format_value(row.pi_high, 'test_accuracy')}"
        )
        assert (
            f"{row.regularizer} data0 · mlp Test accuracy (%) "
            f"{format_value(row.reference, 'test_accuracy')} {row.source} "
            f"{format_value(row.mean, 'test_accuracy')} (n = {row.n}) {interval} {row.verdict}"
        ) in section


def test_ranking_says_what_the_cross_dataset_test_could_detect(rendered: Path) -> None:
    """The ranking section prints Friedman, Iman-Davenport and the detectable rank difference."""
    tests = pd.read_csv(rendered / "results/tables/ranking_tests.csv")
    test = tests[(tests["model"] == "mlp") & (tests["metric"] == "test_accuracy")].iloc[0]
    text = flat(" ".join(page_texts(rendered / "reports/report.pdf")))
    assert (
        f"Iman–Davenport F({int(test.iman_davenport_df1)}, {int(test.iman_davenport_df2)}) = "
        f"{test.iman_davenport_f:.2f}"
    ) in text
    cd = f"{test.critical_difference:.2f}"
    if test.max_rank_difference < test.critical_difference:
        assert f"Across 3 datasets, two regularizers must differ by {cd} in average rank" in text
        assert f"about {int(test.datasets_needed)} datasets would be needed" in text
    else:
        assert "reaches the critical difference" in text


def test_page_one_leads_with_the_protocol_and_the_comparisons_not_judged(rendered: Path) -> None:
    """Page 1 states the training protocol and how many comparisons were judged; those resting
    on an unconverged run carry the undertrained mark and no verdict, counted from the table."""
    adequacy = pd.read_csv(rendered / "results/tables/adequacy.csv").set_index(
        ["dataset", "regularizer"]
    )
    assert not adequacy.loc[("data2", "none"), "converged"]
    assert not adequacy.loc[("data1", "l2_1"), "converged"]
    assert int(adequacy["converged"].sum()) == len(adequacy) - 2
    comparisons = pd.read_csv(rendered / "results/tables/comparisons.csv")
    judged = comparisons[comparisons["metric"].isin(["test_accuracy", "test_loss", "gap_accuracy"])]
    withheld = judged[judged["verdict"] == "undertrained"]
    # Every comparison on data2 (its baseline) and l2_1's on data1.
    assert set(zip(withheld["dataset"], withheld["regularizer"], strict=True)) == {
        ("data2", "l2_0"),
        ("data2", "l2_1"),
        ("data2", "l2_2"),
        ("data1", "l2_1"),
    }
    first = flat(page_texts(rendered / "reports/report.pdf")[0])
    assert (
        "Protocol: every seed trains a fixed 20 epochs and is tested with its last weights" in first
    )
    assert (
        f"Judged: {len(judged) - len(withheld)} of {len(judged)} comparisons; {len(withheld)} not "
        f"judged because a run had not converged (undertrained, †; {len(adequacy) - 2} of "
        f"{len(adequacy)} cells converged)."
    ) in first
    assert first.index("Protocol:") < first.index("Fabricated results.")
    assert "data2 · mlp†" in first and "data1 · mlp†" not in first
    text = flat("\n".join(page_texts(rendered / "reports/report.pdf")))
    assert "Not judged: undertrained" in text
    assert "may be ones of training length, not of regularization" in text


def test_table_of_contents_gives_the_right_page_numbers(rendered: Path) -> None:
    """Each contents entry's page number is the page where that section's heading is."""
    pages = page_texts(rendered / "reports/report.pdf")
    contents = next(i for i, text in enumerate(pages) if "\nContents\n" in text)
    entries = re.findall(r"^(.+?)\s*\.{3,}\s*(\d+)\s*$", pages[contents], flags=re.MULTILINE)
    titles = [title.strip() for title, _ in entries]
    assert titles == [
        "Findings",
        "Published values",
        "Dataset: data0",
        "Dataset: data1",
        "Dataset: data2",
        "Across datasets",
        "Method",
        "Appendix",
    ]
    for title, number in entries:
        heading_page = pages[int(number) - 1]
        assert title.strip() in heading_page, (title, number)


def dataset_text(pages: list[str], dataset: str) -> str:
    """The text of a dataset's section: from its heading to the next section's."""
    text = "\n".join(pages)
    start = text.index(f"\nDataset: {dataset}\n")
    end = min(
        i
        for i in (text.find("\nDataset: ", start + 1), text.find("\nAcross datasets\n", start))
        if i > 0
    )
    return text[start:end]


def test_pdf_rows_print_summary_csv_means_in_their_place(rendered: Path) -> None:
    """Each regularizer's row of its dataset's table prints its summary.csv mean and interval."""
    pages = page_texts(rendered / "reports/report.pdf")
    summary = pd.read_csv(rendered / "results/tables/summary.csv")
    for dataset in ("data0", "data1", "data2"):
        lines = dataset_text(pages, dataset).splitlines()
        for regularizer in ("none", "l2_0", "l2_1", "l2_2"):
            row = next(
                line
                for line in lines
                if re.match(rf"{re.escape(regularizer)}( \(baseline\))? ", line)
            )
            for metric in ("test_accuracy", "test_loss"):
                cell = summary[
                    (summary["dataset"] == dataset)
                    & (summary["regularizer"] == regularizer)
                    & (summary["metric"] == metric)
                ].iloc[0]
                half = format_value(cell["ci_high"] - cell["mean"], metric)
                assert f"{format_value(cell['mean'], metric)} ± {half}" in row, (row, metric)


def test_html_rows_carry_the_columns_the_pdf_leaves_out(rendered: Path) -> None:
    """Macro F1 is printed in the HTML's rows only, and the PDF says the HTML has it."""
    summary = pd.read_csv(rendered / "results/tables/summary.csv")
    html = (rendered / "reports/report.html").read_text(encoding="utf-8")
    f1 = summary[(summary["metric"] == "test_f1_macro") & (summary["dataset"] == "data0")]
    for row in f1.itertuples():
        assert f'<td class="screen-only">{format_value(row.mean, "test_f1_macro")} ± ' in html
    text = flat(" ".join(page_texts(rendered / "reports/report.pdf")))
    assert "Macro F1 and ROC AUC columns" in text and "report.html, has them" in text


def test_findings_group_the_real_effect_apart_from_noise(rendered: Path) -> None:
    """The +5 point regularizer is a clear gain on each dataset whose runs converged; noise is
    no detectable effect; comparisons resting on unconverged runs are apart, not judged."""
    text = flat(" ".join(page_texts(rendered / "reports/report.pdf")))
    start = text.index("Findings Every regularizer")
    findings = text[start : text.index("Dataset: data0 ", start)]
    gains = findings[findings.index("Clear gains") : findings.index("No significant difference")]
    assert "l2_0" in gains and "l2_1" not in gains and "l2_2" not in gains
    assert "data0 · mlp" in gains and "data1 · mlp" in gains and "data2 · mlp" not in gains
    assert "3 comparisons show no significant difference." in findings
    withheld = findings[findings.index("Not judged: undertrained") :]
    assert "4 comparisons rest on runs that had not converged" in withheld


def test_no_table_row_is_split_across_pages(default_sized: Path) -> None:
    """Every printed row of the results, findings and ranking tables lies whole on one page."""
    pages = [flat(text) for text in page_texts(default_sized / "reports/report.pdf")]
    tables = [
        t
        for t in html_tables(default_sized / "reports/report.html")
        if {"results", "effects", "ranks"} & set(t["class"])
    ]
    rows = [" ".join(row) for table in tables for row in table["rows"]]
    assert len(rows) > 100
    for row in rows:
        assert any(row in page for page in pages), row


def test_default_sized_study_fits_the_page_budget(default_sized: Path) -> None:
    """A study larger than the default one (10 cells, 11 regularizers) fits in MAX_PAGES pages."""
    pages = page_texts(default_sized / "reports/report.pdf")
    assert len(pages) <= MAX_PAGES
    assert "At a glance" in pages[0]


def test_no_missing_or_capped_number_reaches_the_pdf(rendered: Path) -> None:
    """No NaN, infinity or Python None is printed anywhere in the report."""
    text = flat(" ".join(page_texts(rendered / "reports/report.pdf")))
    # The Method section defines divergence in words; that NaN is prose, not a value.
    text = text.replace("a loss that became infinite or NaN", "")
    assert not re.search(r"\b(nan|NaN|inf|None)\b", text)


def method_section(config: dict[str, Any], rendered: Path, tmp_path: Path) -> str:
    """The Method section's words, from the report of ``config`` over the rendered tables."""
    from regbench.jobs import render_report

    html = tmp_path / "report.html"
    render_report(
        canonical_json(config),
        canonical_json([]),
        table_paths(rendered / "results/tables"),
        [str(rendered / f"results/data/{name}/card.json") for name in config["datasets"]],
        str(rendered / "results/figures"),
        str(TEMPLATES),
        str(html),
        str(tmp_path / "report.pdf"),
    )
    return flat(re.sub(r"<[^>]+>", " ", html.read_text(encoding="utf-8").split('id="method"')[1]))


def test_method_numbers_follow_the_constants_the_code_uses(
    rendered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changing a statistical constant changes what the Method section says."""
    from regbench import metrics, stats

    monkeypatch.setattr(stats, "AUTO_T_BELOW", 12)
    monkeypatch.setattr(stats, "NORMALITY_MIN_N", 6)
    monkeypatch.setattr(stats, "BOOTSTRAP_RESAMPLES", 4321)
    monkeypatch.setattr(metrics, "NEAR_ZERO", 1e-4)
    study = load_study(study_config(datasets=3, regularizers=4, seeds=8))
    method = method_section(study.config, rendered, tmp_path)
    assert "With fewer than 12 pairs the test is the paired t-test" in method
    assert "from 12 pairs on it is the Wilcoxon signed-rank test" in method
    assert "(4,321 resamples, seed 20240611) where a sample of at least 6 runs" in method
    assert "|w| &lt; 0.0001" in method


def test_method_says_how_the_studys_pieces_act_from_their_descriptions(
    rendered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Method section states how the pieces the study uses act (weight decay against L2),
    from regbench.wording's descriptions, and says nothing of pieces it does not use."""
    from regbench import wording

    decay = "Weight decay here is decoupled and differs from L2 by test."
    monkeypatch.setitem(wording.PIECE_METHODS, "weight_decay", decay)
    raw = study_config(datasets=3, regularizers=4, seeds=8)
    raw["regularizers"]["l2_0"]["weight_decay"] = {"rate": 1.0e-3}
    method = method_section(load_study(raw).config, rendered, tmp_path)
    assert decay in method
    assert wording.PIECE_METHODS["max_norm"] not in method
    plain = flat((rendered / "reports/report.html").read_text(encoding="utf-8"))
    assert "decoupled" not in plain


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


@pytest.mark.parametrize(
    ("regularizers", "expected"),
    [
        ({"none": {}, "l2": {"kernel": {"l2": 0.01}}}, "initialization and batch order"),
        (
            {"none": {}, "d": {"dropout": {"rate": 0.5}}, "n": {"gaussian_noise": {"stddev": 0.1}}},
            "initialization, dropout masks, noise and batch order",
        ),
    ],
)
def test_what_a_seed_varies_follows_the_regularizers_random_draws(
    regularizers: dict[str, Any], expected: str
) -> None:
    """A seed varies dropout masks or noise only in a study whose regularizers draw them."""
    from regbench.report import _seed_sources

    config = {"datasets": {"iris": {"source": "sklearn", "loader": "iris"}}}
    assert _seed_sources({**config, "regularizers": regularizers}) == expected


def test_the_one_example_caveat_agrees_in_number() -> None:
    """One difference of at most one example 'is'; two 'are'."""
    from regbench.report import _granularity_caveat

    cards = {"iris": {"split_sizes": {"test": 38}}}
    rows = {
        "metric": ["test_accuracy"] * 3,
        "within_one_example": [True, False, False],
        "mean_diff": [0.01, 0.2, 0.3],
    }
    one = _granularity_caveat(pd.DataFrame(rows), cards, "test_accuracy")
    assert "; 1 of the 3 differences in the matrix is at most one example per seed" in one
    rows["within_one_example"] = [True, True, False]
    two = _granularity_caveat(pd.DataFrame(rows), cards, "test_accuracy")
    assert "; 2 of the 3 differences in the matrix are at most one example per seed" in two
