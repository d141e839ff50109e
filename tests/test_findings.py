"""The report's words: findings grouped by effect, plain answers and the verdict matrix.

Comparisons come from the real statistics layer on hand-made runs, so each
sentence is checked against the numbers it was written from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from regbench import stats
from regbench.findings import (
    answer_sentences,
    findings_by_effect,
    inert_sentences,
    judged_sentence,
    saturation_sentences,
    suite_summary,
    tuned_table,
    verdict_matrix,
)
from regbench.wording import MINUS, format_diff, format_value, join_names


def make_runs(
    metrics: Mapping[str, Mapping[str, Sequence[float]]], dataset: str = "wine", model: str = "mlp"
) -> pd.DataFrame:
    """Runs, one per seed and regularizer, from metric -> regularizer -> per-seed values."""
    rows: dict[tuple[str, int], dict[str, object]] = {}
    for metric, by_regularizer in metrics.items():
        for regularizer, values in by_regularizer.items():
            for seed, value in enumerate(values):
                row = rows.setdefault(
                    (regularizer, seed),
                    {
                        "dataset": dataset,
                        "model": model,
                        "regularizer": regularizer,
                        "seed": seed,
                        "status": "ok",
                    },
                )
                row[metric] = value
    return pd.DataFrame(list(rows.values()))


def study_a_like() -> pd.DataFrame:
    """Ten regularizers: eight lower test loss clearly, none moves test accuracy beyond noise."""
    rng = np.random.default_rng(3)
    base_loss = 0.60 + rng.normal(0, 0.01, 5)
    base_accuracy = 0.75 + rng.normal(0, 0.01, 5)
    loss = {"none": list(base_loss)}
    accuracy = {"none": list(base_accuracy)}
    for index in range(10):
        shift = -0.05 - 0.01 * index if index < 8 else 0.0
        loss[f"reg{index}"] = list(base_loss + shift + rng.normal(0, 0.004, 5))
        accuracy[f"reg{index}"] = list(base_accuracy + rng.normal(0, 0.01, 5))
    runs = make_runs({"test_loss": loss, "test_accuracy": accuracy})
    return stats.compare_to_baseline(
        runs, "none", ["test_accuracy", "test_loss"], test_sizes={"wine": 320}
    )


def test_answers_say_loss_drops_while_accuracy_stays_within_noise() -> None:
    """A study where penalties lower test loss but not accuracy is answered in those words."""
    comparisons = study_a_like()
    sentences = answer_sentences(comparisons, ["test_accuracy", "test_loss"], "none", 5)
    assert sentences[0] == (
        "No regularizer changes test accuracy by the smallest effect of interest "
        "(±1.0 points): all 10 comparisons are inconclusive (neither a difference nor "
        "equivalence shown)."
    )
    loss = comparisons[comparisons["metric"] == "test_loss"]
    better = loss[loss["verdict"] == "better"]
    assert len(better) == 8
    smallest = format_diff(better["mean_diff"].abs().min(), "test_loss", signed=False)
    largest = format_diff(better["mean_diff"].abs().max(), "test_loss", signed=False)
    assert sentences[1] == (
        "Test loss is lower than with none for 8 of 10 regularizers (all but reg8 and reg9), "
        f"by {smallest} to {largest}; the other 2 comparisons are equivalent (shown within "
        "the smallest effect)."
    )
    assert 2 <= len(sentences) <= 5


def test_no_sentence_names_more_than_three_regularizers() -> None:
    """Effects spread over many regularizers are counted, not listed name by name."""
    comparisons = study_a_like()
    findings = findings_by_effect(comparisons, "test_loss", "none")
    sentences = [
        *answer_sentences(comparisons, ["test_loss", "test_accuracy"], "none", 5),
        *findings["no_effect"],
    ]
    for sentence in sentences:
        named = set(re.findall(r"\breg\d\b", sentence))
        assert len(named) <= 3, sentence


def test_gains_are_grouped_by_regularizer_with_their_numbers() -> None:
    """Each clear gain is one table row carrying the difference, its interval and Holm's p."""
    comparisons = study_a_like()
    findings = findings_by_effect(comparisons, "test_loss", "none")
    assert [effect["heading"] for effect in findings["effects"]] == [
        "Clear gains (better than none by at least 0.010)"
    ]
    rows = findings["effects"][0]["rows"]
    assert [row["regularizer"] for row in rows] == [f"reg{i}" for i in range(7, -1, -1)]
    assert all(row["first"] for row in rows)
    loss = comparisons[(comparisons["metric"] == "test_loss")].set_index("regularizer")
    first = loss.loc["reg7"]
    assert rows[0]["diff"] == format_diff(first["mean_diff"], "test_loss")
    assert rows[0]["ci"] == (
        f"{format_diff(first['diff_ci_low'], 'test_loss')} to "
        f"{format_diff(first['diff_ci_high'], 'test_loss')}"
    )
    assert rows[0]["diff"].startswith(MINUS)
    assert (
        findings["test_note"]
        == "Every difference listed was tested with a paired t-test on 5 seed pairs."
    )
    assert findings["show_cell"] is False


def test_a_difference_of_one_test_example_is_named() -> None:
    """A mean difference no larger than one test example is said to be so, wherever it appears."""
    base = [0.80, 0.82, 0.78, 0.81, 0.79]
    # One seed gains one of 50 test examples (2 points); the mean gain is 0.4 points.
    one_flip = [b + (0.02 if seed == 0 else 0.0) for seed, b in enumerate(base)]
    runs = make_runs({"test_accuracy": {"none": base, "flip": one_flip}}, dataset="tiny")
    comparisons = stats.compare_to_baseline(
        runs, "none", ["test_accuracy"], test_sizes={"tiny": 50}
    )
    row = comparisons.iloc[0]
    assert row["one_example"] == 1 / 50 and bool(row["within_one_example"])
    findings = findings_by_effect(comparisons, "test_accuracy", "none")
    assert (
        "In 1 of them the mean difference is at most one test example per seed (flip)."
        in (findings["no_effect"])
    )
    matrix = verdict_matrix(comparisons, "test_accuracy", [("tiny", "mlp")], ["flip"])
    assert matrix[0]["entries"][0]["one_example"] is True
    assert matrix[0]["entries"][0]["diff"] == "+0.4"


def test_seeds_needed_beyond_the_cap_never_reaches_the_words() -> None:
    """Noise-sized differences get 'no practically detectable effect', never a seed count."""
    rng = np.random.default_rng(11)
    base = 0.8 + rng.normal(0, 0.02, 5)
    runs = make_runs(
        {"test_accuracy": {"none": list(base), "noise": list(base + rng.normal(0, 1e-4, 5))}}
    )
    # A smallest effect far below the noise keeps the comparison inconclusive.
    comparisons = stats.compare_to_baseline(
        runs, "none", ["test_accuracy"], smallest_effects={"test_accuracy": 1e-6}
    )
    assert comparisons.iloc[0]["verdict"] == "inconclusive"
    needed = comparisons.iloc[0]["seeds_needed"]
    assert pd.isna(needed) or needed > 100
    text = " ".join(findings_by_effect(comparisons, "test_accuracy", "none")["no_effect"])
    assert "no practically detectable effect" in text
    assert "seeds)" not in text and "nan" not in text.lower()


def test_a_difference_within_the_default_smallest_effect_is_called_equivalent() -> None:
    """Noise-sized differences are equivalent within one point, and the words say so."""
    rng = np.random.default_rng(11)
    base = 0.8 + rng.normal(0, 0.02, 5)
    runs = make_runs(
        {"test_accuracy": {"none": list(base), "noise": list(base + rng.normal(0, 1e-4, 5))}}
    )
    comparisons = stats.compare_to_baseline(runs, "none", ["test_accuracy"])
    assert comparisons.iloc[0]["verdict"] == "equivalent"
    text = " ".join(findings_by_effect(comparisons, "test_accuracy", "none")["no_effect"])
    assert (
        "It is shown equivalent: two one-sided tests put the difference within ±1.0 points" in text
    )
    assert "More seeds" not in text and "Up to" not in text


def test_verdict_matrix_marks_each_verdict_and_leaves_skipped_cells_empty() -> None:
    """Better, worse, equivalent and inconclusive cells carry their symbol; skipped ones None."""
    base = [0.80, 0.82, 0.78, 0.81, 0.79]
    runs = make_runs(
        {
            "test_accuracy": {
                "none": base,
                "up": [b + 0.05 + 0.001 * i for i, b in enumerate(base)],
                "down": [b - 0.05 + 0.001 * i for i, b in enumerate(base)],
                "same": [b + (0.001 if i % 2 else -0.001) for i, b in enumerate(base)],
                "noisy": [
                    b + d for b, d in zip(base, [0.06, -0.05, 0.04, -0.07, 0.03], strict=True)
                ],
            }
        }
    )
    comparisons = stats.compare_to_baseline(runs, "none", ["test_accuracy"])
    matrix = verdict_matrix(
        comparisons,
        "test_accuracy",
        [("wine", "mlp")],
        ["up", "down", "same", "noisy", "skipped"],
    )
    entries = matrix[0]["entries"]
    assert [e["symbol"] for e in entries[:4]] == ["▲", "▼", "■", "○"]
    assert [e["verdict"] for e in entries[:4]] == ["better", "worse", "equivalent", "inconclusive"]
    assert entries[4] is None
    assert entries[0]["diff"] == "+5.2"


def _three_verdicts() -> pd.DataFrame:
    """Comparisons of ``up`` (better), ``down`` (worse) and ``same`` (equivalent) with ``none``."""
    base = [0.80, 0.82, 0.78, 0.81, 0.79]
    runs = make_runs(
        {
            "test_accuracy": {
                "none": base,
                "up": [b + 0.05 + 0.001 * i for i, b in enumerate(base)],
                "down": [b - 0.05 + 0.001 * i for i, b in enumerate(base)],
                "same": [b + (0.001 if i % 2 else -0.001) for i, b in enumerate(base)],
            }
        }
    )
    return stats.compare_to_baseline(runs, "none", ["test_accuracy"])


def test_suite_summary_counts_verdicts_per_regularizer_gains_first() -> None:
    """Each regularizer's verdicts are counted over the cells; one a wording does not know yet
    gets its own column, last; the rows with the most gains come first."""
    one = _three_verdicts()
    other = one.assign(dataset="iris")
    other.loc[other["regularizer"] == "same", "verdict"] = "not yet worded"
    summary = suite_summary(pd.concat([one, other]), "test_accuracy", ["same", "down", "up"])

    assert [v["name"] for v in summary["verdicts"]] == [
        "better",
        "worse",
        "equivalent",
        "not yet worded",
    ]
    assert [row["name"] for row in summary["rows"]] == ["up", "same", "down"]
    counts = {row["name"]: [c["text"] for c in row["counts"]] for row in summary["rows"]}
    assert counts == {
        "up": ["2", "", "", ""],
        "same": ["", "", "1", "1"],
        "down": ["", "2", "", ""],
    }
    up = one[one["regularizer"] == "up"].iloc[0]
    assert summary["rows"][0]["median"] == format_diff(up["mean_diff"], "test_accuracy")


def test_tuned_table_counts_each_pair_over_the_cells() -> None:
    """One row per comparison of the tuned sweeps, its verdicts counted over the cells."""
    one = _three_verdicts()
    table = tuned_table(pd.concat([one, one.assign(dataset="iris")]), "test_accuracy")

    rows = {row["comparison"]: row for row in table["rows"]}
    assert sorted(rows) == [f"down {MINUS} none", f"same {MINUS} none", f"up {MINUS} none"]
    assert {row["of"] for row in table["rows"]} == {"2"}
    assert [v["name"] for v in table["verdicts"]] == ["better", "worse", "equivalent"]
    assert rows[f"down {MINUS} none"]["counts"][1] == {"text": "2", "verdict": "worse"}


def test_wording_units_match_between_tables_and_sentences() -> None:
    """Proportions print in percent and their differences in points; losses stay plain."""
    assert format_value(0.9561, "test_accuracy") == "95.6"
    assert format_diff(0.0123, "test_accuracy", unit=True) == "+1.2 points"
    assert format_diff(-0.0042, "test_accuracy") == f"{MINUS}0.42"
    assert format_diff(-0.0042, "test_accuracy", compact=True) == f"{MINUS}0.4"
    assert format_diff(0.0, "test_loss") == "0"
    assert format_value(0.10505, "test_loss") == "0.105"
    assert format_diff(-0.0462, "test_loss") == f"{MINUS}0.046"
    assert join_names(["a", "b", "c"]) == "a, b and c"


def test_comparisons_without_enough_pairs_say_why() -> None:
    """One pair, no baseline runs, no regularized runs and disjoint seeds each get their reason."""
    ok, failed = "ok", "failed"
    runs = make_runs(
        {
            "test_accuracy": {
                "none": [0.80, 0.82, 0.78, 0.81],
                "single": [0.85, 0.9, 0.9, 0.9],
                "broken": [0.9, 0.9, 0.9, 0.9],
                "disjoint": [0.9, 0.9, 0.7, 0.7],
            }
        }
    )
    statuses = {
        "none": [ok, ok, failed, failed],
        "single": [ok, failed, failed, ok],
        "broken": [failed] * 4,
        "disjoint": [failed, failed, ok, ok],
    }
    runs["status"] = [
        statuses[r][s] for r, s in zip(runs["regularizer"], runs["seed"], strict=True)
    ]
    comparisons = stats.compare_to_baseline(runs, "none", ["test_accuracy"])
    sentences = findings_by_effect(comparisons, "test_accuracy", "none")["not_comparable"]
    assert sentences == [
        "Only one seed pairs single with none on test accuracy (single-seed difference "
        "+5.0 points); one pair allows no test.",
        "broken cannot be compared with none on test accuracy: every run failed, diverged, "
        "is missing or lacks a value.",
        "disjoint cannot be compared with none on test accuracy: the successful runs share "
        "no seed with none's.",
    ]
    other = make_runs({"test_accuracy": {"none": [0.8, 0.8], "l2": [0.9, 0.9]}}, dataset="wine")
    other.loc[other["regularizer"] == "none", "status"] = "missing"
    missing = stats.compare_to_baseline(other, "none", ["test_accuracy"])
    assert findings_by_effect(missing, "test_accuracy", "none")["not_comparable"] == [
        "Nothing can be compared with none on test accuracy on wine · mlp: no successful "
        "none run has a value for it."
    ]


def test_page_one_and_findings_state_the_same_detectable_difference() -> None:
    """Page one and the findings state one median detectable difference, identical runs aside."""
    base = [0.80, 0.82, 0.78, 0.81, 0.79]
    rng = np.random.default_rng(5)
    values = {"none": base, "same": list(base)}
    values |= {f"noise{i}": list(np.add(base, rng.normal(0, 0.01, 5))) for i in range(3)}
    comparisons = stats.compare_to_baseline(
        make_runs({"test_accuracy": values}), "none", ["test_accuracy"]
    )
    varying = comparisons[comparisons["test"] != "identical"]
    median = format_diff(varying["min_detectable_diff"].median(), "test_accuracy", signed=False)
    (sentence,) = [
        s for s in answer_sentences(comparisons, ["test_accuracy"], "none", 5) if "unseen" in s
    ]
    assert f"smaller than about {median} points" in sentence
    text = " ".join(findings_by_effect(comparisons, "test_accuracy", "none")["no_effect"])
    assert f"is typically {median} points" in text
    assert "1 of them is identical to the baseline on every seed (same)." in text


def test_a_metric_at_its_ceiling_is_said_to_tell_nothing_and_gives_no_verdict() -> None:
    """100% test accuracy everywhere: page one says so, and no answer sentence judges it."""
    full = {name: [1.0] * 5 for name in ("none", "activity", "combined")}
    loss = {
        "none": [0.010, 0.012, 0.011, 0.013, 0.012],
        "activity": [0.0109, 0.0128, 0.0120, 0.0139, 0.0131],
        "combined": [0.011, 0.013, 0.012, 0.014, 0.013],
    }
    gap = {name: [0.0] * 5 for name in full}
    runs = make_runs(
        {"test_accuracy": full, "gap_accuracy": gap, "test_loss": loss}, dataset="iris"
    )
    metrics = ["test_accuracy", "test_loss", "gap_accuracy"]
    comparisons = stats.compare_to_baseline(runs, "none", metrics, test_sizes={"iris": 38})
    accuracy = comparisons[comparisons["metric"] != "test_loss"]
    assert set(accuracy["verdict"]) == {"saturated"}
    summary = stats.describe_cells(runs, metrics)
    rows = {("iris", "mlp"): ["none", "activity", "combined"]}
    sentences = saturation_sentences(stats.saturated_cells(summary), rows, metrics)
    assert sentences == [
        "Test accuracy is 100% in every run of every variant on iris · mlp: this test set "
        "cannot tell the variants apart on it, nor can the train–test accuracy gap, whose "
        "test side it is, so no verdict there is evidence either way."
    ]
    answers = answer_sentences(comparisons, metrics, "none", 5)
    assert not any("accuracy" in sentence for sentence in answers)
    # The loss rises by about 0.001 nats on every seed: significant, yet negligible.
    loss_rows = comparisons[comparisons["metric"] == "test_loss"].set_index("regularizer")
    assert loss_rows.loc["activity", "significant"]
    assert loss_rows.loc["activity", "verdict"] == "negligible"
    assert "negligible" in answers[0]
    saturated = findings_by_effect(comparisons, "test_accuracy", "none")["saturated"]
    assert saturated and "no evidence either way" in saturated[0]


def test_a_smaller_gap_reads_as_underfitting_when_test_accuracy_fell() -> None:
    """Dropout_0.9-like: gap 1.1 points smaller, accuracy 1.8 lower, is underfitting."""
    base = [0.75, 0.76, 0.74, 0.75, 0.77]
    gap = [0.10, 0.11, 0.09, 0.10, 0.12]
    shrink = [0.011, 0.010, 0.012, 0.011, 0.011]
    runs = make_runs(
        {
            "test_accuracy": {"none": base, "heavy": [b - 0.018 for b in base], "mild": base},
            "gap_accuracy": {
                "none": gap,
                "heavy": [g - d for g, d in zip(gap, shrink, strict=True)],
                "mild": [g - d for g, d in zip(gap, shrink, strict=True)],
            },
        }
    )
    metrics = ["test_accuracy", "gap_accuracy"]
    comparisons = stats.compare_to_baseline(runs, "none", metrics)
    sentence = answer_sentences(comparisons, ["gap_accuracy"], "none", 5)[0]
    assert sentence.startswith(
        "The train–test accuracy gap is smaller than with none (less overfitting: the test "
        "score did not get worse) for mild"
    )
    assert "underfitting rather than less overfitting, for heavy" in sentence
    headings = [
        e["heading"] for e in findings_by_effect(comparisons, "gap_accuracy", "none")["effects"]
    ]
    assert headings[0].startswith("Less overfitting")
    assert headings[1].startswith("Smaller gap, worse test score (underfitting")
    matrix = verdict_matrix(comparisons, "gap_accuracy", [("wine", "mlp")], ["heavy", "mild"])
    assert [e["symbol"] for e in matrix[0]["entries"]] == ["◁", "▲"]


def test_undertrained_comparisons_are_counted_apart_and_never_worded_as_effects() -> None:
    """A clear difference resting on an unconverged run is not a gain: the answer counts it as
    not judged, the findings name it under its own heading, and page 1 says how many."""
    values = {
        "none": [0.70, 0.71, 0.69, 0.70, 0.72],
        "l2": [0.80, 0.82, 0.79, 0.81, 0.80],
        "l1": [0.80, 0.82, 0.79, 0.81, 0.80],
    }
    runs = make_runs({"test_accuracy": values})
    runs[stats.CONVERGED] = runs["regularizer"] != "l1"
    comparisons = stats.compare_to_baseline(runs, "none", ["test_accuracy"])
    answer = answer_sentences(comparisons, ["test_accuracy"], "none", 5)[0]
    assert "higher than with none for l2" in answer and "l1" not in answer
    assert answer.endswith("(1 more not judged: undertrained).")
    found = findings_by_effect(comparisons, "test_accuracy", "none")
    gains = [row["regularizer"] for group in found["effects"] for row in group["rows"]]
    assert gains == ["l2"]
    assert found["undertrained"][0].startswith("1 comparison rests on runs that had not converged")
    adequacy = pd.DataFrame({"protocol": ["plateau"] * 3, "converged": [True, True, False]})
    assert judged_sentence(comparisons, adequacy, ["test_accuracy"]) == (
        "Judged: 1 of 2 comparisons; 1 not judged because a run had not converged "
        "(undertrained, †; 2 of 3 cells converged). To judge them, raise training.epochs."
    )


def test_an_undertrained_difference_smaller_than_the_smallest_effect_says_so() -> None:
    """A withheld comparison whose difference is below the smallest effect of interest is
    named negligible in size, never judged: study C's tiny test-loss rises read so."""
    values = {
        "none": [0.300, 0.301, 0.299, 0.300, 0.302],
        "l1": [0.3009, 0.3019, 0.2999, 0.3009, 0.3029],
        "l2": [0.350, 0.352, 0.349, 0.351, 0.350],
    }
    runs = make_runs({"test_loss": values})
    runs[stats.CONVERGED] = False
    comparisons = stats.compare_to_baseline(runs, "none", ["test_loss"])
    assert set(comparisons["verdict"]) == {stats.UNDERTRAINED}
    practical = comparisons.set_index("regularizer")["practical"].to_dict()
    assert practical == {"l1": "negligible", "l2": "relevant"}
    answer = answer_sentences(comparisons, ["test_loss"], "none", 5)[0]
    assert answer == (
        "No comparison on test loss could be judged: all 2 with none rest on runs that had not "
        "converged (undertrained); 1 of them is smaller than the smallest effect that matters "
        "so far."
    )
    sentences = findings_by_effect(comparisons, "test_loss", "none")["undertrained"]
    margin = format_diff(comparisons["smallest_effect"].iloc[0], "test_loss", signed=False)
    assert sentences[1] == (
        f"1 of them is, at this training length, smaller than the smallest effect that "
        f"matters ({margin}): negligible in size, though not judged."
    )


def test_variants_that_did_nothing_say_so() -> None:
    """An early-stopping variant that never stopped a run, and a variant identical to the
    baseline on every seed and metric, are named with what that means."""
    values = {"none": [0.70, 0.71, 0.69], "es": [0.70, 0.71, 0.69], "l2": [0.75, 0.74, 0.76]}
    runs = make_runs({"test_accuracy": values, "test_loss": values})
    comparisons = stats.compare_to_baseline(runs, "none", ["test_accuracy", "test_loss"])
    adequacy = pd.DataFrame(
        {
            "dataset": ["wine"] * 3,
            "model": ["mlp"] * 3,
            "regularizer": ["es", "l2", "none"],
            "n_runs": [3, 3, 3],
            "n_stopped_early": [0, 0, 0],
        }
    )
    sentences = inert_sentences(comparisons, adequacy, ["es"])
    assert sentences == [
        "es on wine · mlp never triggered in 3 of 3 runs: it trained as long as the baseline here.",
        "Identical to the baseline on every seed and metric: es on wine · mlp; it changed "
        "nothing these metrics measure there.",
    ]
    adequacy.loc[0, "n_stopped_early"] = 2
    assert len(inert_sentences(comparisons, adequacy, ["es"])) == 1
