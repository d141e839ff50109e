"""What each figure shows, read from its data and drawn objects (not pixels), and where it goes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib.figure
import numpy as np
import pandas as pd
import pytest
import yaml
from fabricate import aggregate_fabricated, fabricate_study, study_config

from regbench import figures
from regbench.config import RunKey, load_study
from regbench.figures import (
    FIGURE_KINDS,
    FigureSettings,
    critical_difference,
    figure_file,
    learning_curves,
    mean_curve,
    near_zero_label,
    paired_differences,
    weight_histograms,
)
from regbench.jobs import figure_settings, plot_figures
from regbench.metrics import NEAR_ZERO
from regbench.wording import VERDICT_STYLES

REPO = Path(__file__).resolve().parents[1]
SETTINGS = FigureSettings.from_json(figure_settings(load_study(study_config(1, 4, 2)).config))


def render(root: Path, study: Any) -> list[dict[str, Any]]:
    """Aggregate fabricated runs and draw their figures; return the manifest read back."""
    tables = aggregate_fabricated(root, study)
    out = root / "results/figures"
    plot_figures(
        str(tables / "runs.csv"),
        str(tables / "comparisons.csv"),
        str(tables / "rankings.csv"),
        figure_settings(study.config),
        str(out),
        root=str(root),
        dose_response_csv=str(tables / "dose_response.csv"),
    )
    manifest: list[dict[str, Any]] = json.loads((out / "figures.json").read_text("utf-8"))
    return manifest


def colliding_config() -> dict[str, Any]:
    """Names that joined with '__' used to give one file to two cells, and a dataset 'ranking'."""
    raw = study_config(datasets=1, regularizers=3, seeds=3)
    synthetic = {"source": "synthetic", "synthetic": {"random_state": 0}}
    raw["datasets"] = {name: synthetic for name in ("a", "a__b", "ranking")}
    raw["models"] = {name: {"type": "mlp", "units": [8]} for name in ("b__c", "c")}
    return raw


def test_colliding_names_get_distinct_files_with_their_own_figures(tmp_path: Path) -> None:
    """Datasets a, a__b, ranking x models b__c, c: every cell and ranking has its own files."""
    study = fabricate_study(tmp_path, colliding_config())
    # All weights of a/b__c are zero, so its histogram alone says 100% are near zero.
    for key in study.runs:
        if (key.dataset, key.model) == ("a", "b__c"):
            np.savez(tmp_path / key.output("weights.npz"), hidden0_dense=np.zeros((20, 8)))
    manifest = render(tmp_path, study)

    out = tmp_path / "results/figures"
    files = [entry["file"] for entry in manifest]
    assert len(set(files)) == len(files)
    assert all((out / file).is_file() for file in files)
    assert len(list(out.rglob("*.svg"))) == len(files)
    cells = {(e["dataset"], e["model"]) for e in manifest if e["dataset"] is not None}
    assert cells == {(d, m) for d in ("a", "a__b", "ranking") for m in ("b__c", "c")}
    rankings = [e for e in manifest if e["dataset"] is None]
    assert {e["model"] for e in rankings} == {"b__c", "c"}
    assert all(e["kind"] == "critical_difference" for e in rankings)
    for entry in manifest:
        if entry["dataset"] is not None:
            others = cells - {(entry["dataset"], entry["model"])}
            assert f"{entry['dataset']} · {entry['model']}:" in entry["caption"]
            assert not any(f"{d} · {m}:" in entry["caption"] for d, m in others)
        else:
            assert f"of {entry['model']} across 3 datasets" in entry["caption"]
    weights = {
        (e["dataset"], e["model"]): out / e["file"] for e in manifest if e["kind"] == "weights"
    }
    assert "100.0%" in weights["a", "b__c"].read_text("utf-8")
    assert not any(
        "100.0%" in path.read_text("utf-8")
        for cell, path in weights.items()
        if cell != ("a", "b__c")
    )


def test_every_cell_gets_each_kind_once_and_no_ranking_without_a_critical_difference(
    tmp_path: Path,
) -> None:
    """With one dataset there is no ranking (NaN CD): the manifest lists cell figures only."""
    study = fabricate_study(tmp_path, study_config(datasets=1, regularizers=3, seeds=3))
    manifest = render(tmp_path, study)
    rankings = pd.read_csv(tmp_path / "results/tables/rankings.csv")
    assert rankings["critical_difference"].isna().all()
    # No ranking with one dataset, and no response to strength without a sweep.
    cell_kinds = [k for k in FIGURE_KINDS if k not in ("critical_difference", "dose_response")]
    assert [e["kind"] for e in manifest] == cell_kinds
    assert all(e["file"].startswith("cells/data0/mlp/") for e in manifest)


@pytest.mark.parametrize(
    ("names", "bad"),
    [(("..", "mlp", "weights"), ".."), (("a/b", "mlp", "weights"), "a/b"), ((None, ".", "x"), ".")],
)
def test_figure_file_refuses_names_that_are_not_one_file_name(
    names: tuple[str | None, str, str], bad: str
) -> None:
    """A name that is not a single path component cannot place a figure outside its folder."""
    with pytest.raises(ValueError, match=f"single file names, got '{bad}'"):
        figure_file(*names)


def fabricated_comparisons(tmp_path: Path, **overrides: Any) -> pd.DataFrame:
    """The comparisons of a fabricated 4-regularizer study where l2_0 gains 5 points."""
    study = fabricate_study(tmp_path, study_config(datasets=1, regularizers=4, seeds=8))
    tables = aggregate_fabricated(tmp_path, study)
    return pd.read_csv(tables / "comparisons.csv").assign(**overrides)


def drawn_points(figure: matplotlib.figure.Figure) -> list[list[tuple[float, float, str]]]:
    """Per axis: each single-point marker as (x, y, marker)."""
    return [
        [
            (float(line.get_xdata()[0]), float(line.get_ydata()[0]), str(line.get_marker()))
            for line in axis.get_lines()
            if len(line.get_xdata()) == 1 and line.get_linestyle() == "None"
        ]
        for axis in figure.axes
    ]


def test_paired_figure_plots_each_comparison_at_its_difference_marked_by_verdict(
    tmp_path: Path,
) -> None:
    """One point per regularizer and judged metric at mean_diff (accuracy in points), by verdict."""
    comparisons = fabricated_comparisons(tmp_path)
    regularizers = ["none", "l2_0", "l2_1", "l2_2"]
    figure, _ = paired_differences(comparisons, regularizers, SETTINGS)

    assert [axis.get_title() for axis in figure.axes] == [
        "test accuracy",
        "test loss",
        "train–test accuracy gap",
    ]
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    positions = dict(zip(labels, figure.axes[0].get_yticks(), strict=True))
    assert sorted(labels) == ["l2_0", "l2_1", "l2_2"]
    markers = {style.marker: verdict for verdict, style in VERDICT_STYLES.items()}
    for axis, points, metric in zip(
        figure.axes, drawn_points(figure), SETTINGS.judged, strict=True
    ):
        rows = comparisons[comparisons["metric"] == metric].set_index("regularizer")
        scale = 100.0 if "accuracy" in metric else 1.0
        assert len(points) == len(rows)
        for x, y, marker in points:
            name = next(n for n, p in positions.items() if p == y)
            assert x == pytest.approx(rows.loc[name, "mean_diff"] * scale)
            assert markers[marker] == rows.loc[name, "verdict"]
        better = "better →" if rows["higher_is_better"].iloc[0] else "← better"
        assert better in axis.get_xlabel()
        assert ("points" in axis.get_xlabel()) == (scale == 100.0)
    accuracy = comparisons[comparisons["metric"] == "test_accuracy"].set_index("regularizer")
    assert accuracy.loc["l2_0", "verdict"] == "better"
    assert markers["^"] == "better"


def test_paired_caption_states_the_confidence_and_level_the_table_records(tmp_path: Path) -> None:
    """The caption's confidence level and test level come from the comparisons table's columns."""
    comparisons = fabricated_comparisons(tmp_path, confidence=0.9, alpha=0.01)
    _, caption = paired_differences(comparisons, ["none", "l2_0", "l2_1", "l2_2"], SETTINGS)
    assert "90% confidence interval" in caption
    assert "at the 1% level" in caption
    assert "(8 pairs)" in caption
    assert "95%" not in caption and "5% level" not in caption


def test_paired_figure_marks_a_comparison_without_pairs_instead_of_a_point(tmp_path: Path) -> None:
    """A not-comparable row with no mean difference gets no point and a 'no pairs' note."""
    comparisons = fabricated_comparisons(tmp_path)
    gone = comparisons["regularizer"] == "l2_2"
    comparisons.loc[gone, ["mean_diff", "diff_ci_low", "diff_ci_high"]] = np.nan
    comparisons.loc[gone, "verdict"] = "not comparable"
    figure, _ = paired_differences(comparisons, ["none", "l2_0", "l2_1", "l2_2"], SETTINGS)
    assert [len(points) for points in drawn_points(figure)] == [2, 2, 2]
    assert all("no pairs" in [t.get_text().strip() for t in axis.texts] for axis in figure.axes)


def test_a_judged_metric_missing_from_the_comparisons_is_named(tmp_path: Path) -> None:
    """Asking for a metric comparisons.csv lacks fails with the metric and the ones it has."""
    study = fabricate_study(tmp_path, study_config(datasets=1, regularizers=2, seeds=2))
    tables = aggregate_fabricated(tmp_path, study)
    with pytest.raises(ValueError, match=r"judges test_roc_auc, which comparisons.csv does not"):
        plot_figures(
            str(tables / "runs.csv"),
            str(tables / "comparisons.csv"),
            str(tables / "rankings.csv"),
            figure_settings(
                {**study.config, "report": {"primary": "test_roc_auc", "metrics": ["test_roc_auc"]}}
            ),
            str(tmp_path / "other"),
        )


def history(epochs: int, accuracy: float) -> pd.DataFrame:
    """A flat history of ``epochs`` epochs."""
    return pd.DataFrame(
        {
            "epoch": np.arange(1, epochs + 1),
            "loss": np.full(epochs, 1 - accuracy),
            "accuracy": np.full(epochs, accuracy),
            "val_loss": np.full(epochs, 1 - accuracy),
            "val_accuracy": np.full(epochs, accuracy),
        }
    )


def test_mean_curve_averages_only_the_runs_still_training() -> None:
    """A seed that stopped at epoch 4 counts until epoch 4 and not after: no droop, no lift."""
    runs = [history(10, 0.9), history(10, 0.9), history(4, 0.3)]
    curve = mean_curve(runs, "accuracy")
    assert curve["running"].tolist() == [3] * 4 + [2] * 6
    assert curve["mean"].iloc[:4].to_numpy() == pytest.approx(0.7)
    assert curve["mean"].iloc[4:].to_numpy() == pytest.approx(0.9)


def test_mean_curve_equals_pandas_over_epoch_aligned_runs() -> None:
    """Mean, sample sd and count per epoch agree with pandas' over runs aligned by epoch."""
    rng = np.random.default_rng(1)
    runs = [
        pd.DataFrame({"epoch": np.arange(1, n + 1), "loss": rng.random(n)}) for n in (12, 7, 12, 1)
    ]
    aligned = pd.concat([h.set_index("epoch")["loss"] for h in runs], axis=1)
    curve = mean_curve(runs, "loss")
    assert curve["mean"].to_numpy() == pytest.approx(aligned.mean(axis=1).to_numpy())
    assert curve["sd"].to_numpy() == pytest.approx(aligned.std(axis=1).to_numpy(), nan_ok=True)
    assert curve["running"].tolist() == aligned.notna().sum(axis=1).tolist()


def test_learning_curves_show_loss_and_accuracy_and_say_how_many_runs_stopped() -> None:
    """Each panel holds data loss over accuracy; the thick mean ends where the first run stops."""
    histories = {"none": [history(10, 0.8)] * 3, "early": [history(10, 0.9), history(6, 0.5)]}
    figure, caption = learning_curves(histories, "iris · mlp")
    loss, accuracy, early_loss, early_accuracy = figure.axes
    assert (loss.get_ylabel(), accuracy.get_ylabel()) == ("data loss", "accuracy")
    assert loss.get_title() == "none\n3 runs"
    assert early_loss.get_title() == "early\n1/2 stop early"
    thin, thick = early_accuracy.get_lines()[:2]
    assert list(thin.get_xdata()) == list(range(1, 11))
    assert list(thick.get_xdata()) == list(range(1, 7))
    assert list(thin.get_ydata())[6:] == pytest.approx([0.9] * 4)
    stop_ticks = early_accuracy.get_lines()[-1]
    assert list(stop_ticks.get_xdata()) == [6]
    assert "data loss (cross-entropy without penalty terms" in caption
    assert "dropout on" in caption and "batch normalization" in caption


def test_weight_histogram_titles_give_the_share_below_the_code_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shares use NEAR_ZERO, sit in titles above the axes, and no caption says 'exactly'."""
    values = np.array([0.0, 0.0005, -0.002, 0.5, -0.5, 0.009, 0.02, 0.3])
    _, caption = weight_histograms({"l1": [values]}, "iris · mlp")
    assert f"|w| < {NEAR_ZERO:g}" in caption and "exactly" not in caption
    monkeypatch.setattr(figures, "NEAR_ZERO", 0.01)
    figure, caption = weight_histograms({"l1": [values], "none": []}, "iris · mlp")
    assert near_zero_label() == "|w| < 0.01"
    assert "|w| < 0.01," in caption
    assert figure.texts[0].get_text().endswith("|w| < 0.01")
    assert [axis.get_title() for axis in figure.axes] == ["l1\n50.0%", "none\nno successful run"]
    assert all(not axis.texts for axis in figure.axes)


def fabricated_ranks(tmp_path: Path, datasets: int, regularizers: int) -> pd.DataFrame:
    """The test-accuracy ranking of a fabricated study."""
    study = fabricate_study(tmp_path, study_config(datasets, regularizers, seeds=3))
    ranks = pd.read_csv(aggregate_fabricated(tmp_path, study) / "rankings.csv")
    return ranks[ranks["metric"] == "test_accuracy"]


def test_critical_difference_text_is_8_pt_and_the_figure_is_as_tall_as_its_content(
    tmp_path: Path,
) -> None:
    """No text below 8 pt, and text spans most of the figure's height (not a mostly blank box)."""
    ranks = fabricated_ranks(tmp_path, datasets=3, regularizers=11)
    figure, caption = critical_difference(ranks)
    figure.draw_without_rendering()
    texts = figure.axes[0].texts
    assert min(t.get_fontsize() for t in texts) >= 8
    boxes = [t.get_window_extent() for t in texts]
    covered = max(b.y1 for b in boxes) - min(b.y0 for b in boxes)
    assert covered / (figure.get_figheight() * figure.dpi) > 0.8
    assert all(b.x0 >= 0 and b.x1 <= figure.get_figwidth() * figure.dpi for b in boxes)
    cd = ranks["critical_difference"].iloc[0]
    assert f"CD = {cd:.2f}" in [t.get_text() for t in texts]
    assert f"CD = {cd:.2f}" in caption and "across 3 datasets" in caption


def test_every_figure_is_the_report_width_with_text_of_at_least_8_pt(tmp_path: Path) -> None:
    """All figures of a study share one width, and none of their text is smaller than 8 pt."""
    config = study_config(datasets=2, regularizers=5, seeds=3)
    config["regularizers"]["drop"] = {"dropout": {"rate": [0.1, 0.5]}}  # A sweep, for its figure.
    study = fabricate_study(tmp_path, config)
    manifest = render(tmp_path, study)
    assert {e["kind"] for e in manifest} == set(FIGURE_KINDS)
    for entry in manifest:
        svg = (tmp_path / "results/figures" / entry["file"]).read_text("utf-8")
        # Matplotlib's SVG user unit is the point: width in pt, font sizes in those units.
        assert f'width="{figures.FULL_WIDTH * 72:g}pt"' in svg
        sizes = [float(size) for size in re.findall(r"font-size: ([\d.]+)px", svg)]
        assert sizes and min(sizes) >= 8, entry["file"]


def test_plot_figures_rule_depends_on_the_tables_not_on_every_run(tmp_path: Path) -> None:
    """A dry run lists only the four tables as the figure job's input, whatever the grid."""
    config = study_config(datasets=2, regularizers=3, seeds=4)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(tmp_path / "config.yaml"),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    job = result.stdout.split("rule plot_figures:", 1)[1]
    inputs = job.split("input:", 1)[1].splitlines()[0].strip()
    assert inputs == (
        "results/tables/runs.csv, results/tables/comparisons.csv, results/tables/rankings.csv, "
        "results/tables/dose_response.csv"
    )


def test_run_files_are_read_where_runkey_puts_them(tmp_path: Path) -> None:
    """plot_figures reads each run's history and weights at RunKey.output below the study root."""
    study = fabricate_study(tmp_path, study_config(datasets=1, regularizers=2, seeds=2))
    for seed, value in ((0, 1.0), (1, 0.0)):
        key = RunKey("data0", "mlp", "l2_0", seed)
        np.savez(tmp_path / key.output("weights.npz"), hidden0_dense=np.full((20, 8), value))
    manifest = render(tmp_path, study)
    weights = next(e for e in manifest if e["kind"] == "weights")
    svg = (tmp_path / "results/figures" / weights["file"]).read_text("utf-8")
    assert "50.0%" in svg  # l2_0's two seeds: one all ones, one all zeros.


def test_figures_list_the_baseline_first_then_regularizers_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows and panels: baseline, then by name, as the report's tables, whatever the YAML order."""
    raw = study_config(datasets=1, regularizers=4, seeds=3)
    order = ("l2_2", "l2_0", "none", "l2_1")
    raw["regularizers"] = {name: raw["regularizers"][name] for name in order}
    study = fabricate_study(tmp_path, raw)
    drawn: dict[str, matplotlib.figure.Figure] = {}
    monkeypatch.setattr(figures, "_save", lambda figure, path: drawn.setdefault(path.stem, figure))
    render(tmp_path, study)
    paired = drawn["paired_differences"].axes[0]
    ticks = zip(paired.get_yticks(), paired.get_yticklabels(), strict=True)
    top_to_bottom = [label.get_text() for _, label in sorted(ticks, key=lambda t: -t[0])]
    assert top_to_bottom == ["l2_0", "l2_1", "l2_2"]
    titles = [axis.get_title().split("\n")[0] for axis in drawn["weights"].axes]
    assert titles == ["none", "l2_0", "l2_1", "l2_2"]


def test_figure_settings_change_with_what_figures_show_and_nothing_else() -> None:
    """Titles, descriptions and entry order leave the param alone; baseline and metrics do not."""
    raw = study_config(datasets=1, regularizers=3, seeds=2)

    def settings_of(config: dict[str, Any]) -> str:
        return figure_settings(load_study(config).config)

    settings = settings_of(raw)
    assert json.loads(settings) == {
        "baseline": "none",
        "metrics": ["test_accuracy", "test_loss", "gap_accuracy"],
        "primary": "test_accuracy",
        "swept": {},
    }
    retitled = {**raw, "study": {**raw["study"], "title": "Another", "description": "Other."}}
    reordered = {**raw, "regularizers": dict(reversed(raw["regularizers"].items()))}
    assert settings_of(retitled) == settings_of(reordered) == settings
    assert settings_of({**raw, "baseline": "l2_0"}) != settings
    judged = {**raw, "report": {"primary": "test_loss", "metrics": ["test_loss"]}}
    assert FigureSettings.from_json(settings_of(judged)).judged == ("test_loss",)
    swept = {**raw, "regularizers": {"none": {}, "l2": {"kernel": {"l2": [0.1, 0.2]}}}}
    assert json.loads(settings_of(swept))["swept"] == {"l2": ["kernel.l2"]}
