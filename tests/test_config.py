"""Tests of study config validation, defaults, canonical specs and the run grid."""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from regbench.config import (
    DEFAULT_MIN_DELTA,
    DEFAULT_PATIENCE,
    ConfigError,
    RunKey,
    Skipped,
    Study,
    canonical_json,
    load_config_file,
    load_study,
)

ROOT = Path(__file__).resolve().parents[1]


def raw_config() -> dict[str, Any]:
    """Return a small valid raw config: two datasets, an MLP and a CNN, three regularizers."""
    return {
        "study": {"name": "unit", "title": "Unit study"},
        "datasets": {
            "iris": {"source": "sklearn", "loader": "iris"},
            "digits": {
                "source": "sklearn",
                "loader": "digits",
                "scaling": "max",
                "split": {"validation": 0.25},
            },
        },
        "models": {
            "mlp": {"type": "mlp", "units": [8, 4]},
            "cnn": {"type": "cnn", "filters": [4], "units": [8]},
        },
        "regularizers": {
            "none": {},
            "l2": {"kernel": {"l2": 0.01}},
            "drop": {"dropout": {"rate": 0.5}},
        },
        "seeds": [0, 1],
        "training": {"epochs": 2, "validation_fraction": 0.3},
        "baseline": "none",
    }


def edited(edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """Return a copy of the small valid config with ``edit`` applied to it."""
    config = raw_config()
    edit(config)
    return config


def all_specs(study: Study) -> dict[RunKey, str]:
    """Map every run of a study to the canonical JSON of its spec."""
    return {key: canonical_json(study.run_spec(key)) for key in study.runs}


# --------------------------------------------------------------------------- valid configs


def test_valid_config_loads_and_keeps_declared_values() -> None:
    """A small valid config loads into a Study that keeps what was declared."""
    study = load_study(raw_config())

    assert study.baseline == "none"
    assert set(study.datasets) == {"iris", "digits"}
    assert study.config["models"]["mlp"]["units"] == [8, 4]
    assert study.config["regularizers"]["l2"]["kernel"]["l2"] == 0.01
    assert study.config["seeds"] == [0, 1]


def test_load_study_does_not_modify_the_raw_config() -> None:
    """Filling defaults works on a copy: the caller's mapping is left as it was."""
    raw = raw_config()
    before = copy.deepcopy(raw)

    load_study(raw)

    assert raw == before


def test_defaults_are_filled() -> None:
    """Missing optional keys get the schema defaults (batch size, optimizer, split, penalty)."""
    study = load_study(raw_config())
    config = study.config

    assert config["training"]["batch_size"] == 32
    assert config["training"]["optimizer"] == "adam"
    assert config["training"]["learning_rate"] == 0.001
    assert config["training"]["device"] == "auto"
    assert config["study"]["description"] == ""
    iris = study.dataset_spec("iris")
    assert iris["scaling"] == "standard"
    assert iris["split"]["test"] == 0.2
    assert iris["split"]["validation_mode"] == "random"
    assert iris["split"]["stratify"] is True
    assert iris["split"]["random_state"] == 42
    assert config["models"]["mlp"]["activation"] == "relu"
    kernel = config["regularizers"]["l2"]["kernel"]
    assert kernel == {"l1": 0.0, "l2": 0.01, "layers": "all"}
    assert config["regularizers"]["drop"]["dropout"]["layers"] == "all"


def test_synthetic_defaults_are_filled() -> None:
    """A synthetic dataset gets every make_classification default it does not set."""
    config = edited(
        lambda c: c["datasets"].update(syn={"source": "synthetic", "synthetic": {"n_samples": 50}})
    )

    synthetic = load_study(config).dataset_spec("syn")["synthetic"]

    assert synthetic == {
        "n_samples": 50,
        "n_features": 20,
        "n_informative": 5,
        "n_redundant": 2,
        "n_classes": 2,
        "class_sep": 1.0,
        "flip_y": 0.01,
        "random_state": 0,
    }


def test_validation_fraction_comes_from_training_unless_dataset_sets_it() -> None:
    """A dataset without its own validation fraction takes training.validation_fraction."""
    study = load_study(raw_config())

    assert study.dataset_spec("iris")["split"]["validation"] == 0.3
    assert study.dataset_spec("digits")["split"]["validation"] == 0.25


def test_validation_fraction_default_reaches_datasets() -> None:
    """With neither set, datasets get the default training.validation_fraction of 0.2."""
    config = edited(lambda c: c["training"].pop("validation_fraction"))

    study = load_study(config)

    assert study.config["training"]["validation_fraction"] == 0.2
    assert study.dataset_spec("iris")["split"]["validation"] == 0.2


def test_scientific_notation_string_is_a_number() -> None:
    """``1e-3`` (read by PyYAML as a string) is accepted as the number 0.001."""
    text = """
study: {name: unit, title: Unit study}
datasets: {iris: {source: sklearn, loader: iris}}
models: {mlp: {type: mlp}}
regularizers: {none: {}, l2: {kernel: {l2: 1e-3}}}
seeds: [0]
training: {epochs: 1, learning_rate: 1e-3}
baseline: none
"""
    raw = yaml.safe_load(text)
    assert raw["training"]["learning_rate"] == "1e-3"  # The premise: PyYAML keeps a string.

    study = load_study(raw)

    assert study.config["training"]["learning_rate"] == 0.001
    assert study.config["regularizers"]["l2"]["kernel"]["l2"] == 0.001


def test_scientific_looking_strings_stay_strings_in_string_fields() -> None:
    """A title or a regularizer name that looks like ``1e-3`` stays a string."""
    config = edited(lambda c: c["study"].update(title="1e6"))
    config["regularizers"]["1e-3"] = {"kernel": {"l2": 0.001}}
    config["baseline"] = "1e-3"

    study = load_study(config)

    assert study.config["study"]["title"] == "1e6"
    assert study.baseline == "1e-3"


def test_integral_floats_in_integer_fields_resolve_to_integers() -> None:
    """An integer field written as ``2.0`` or ``1e2`` resolves to the integer itself."""
    config = edited(lambda c: c["training"].update(epochs=2.0))
    config["seeds"] = [1.0]
    config["datasets"]["syn"] = {"source": "synthetic", "synthetic": {"n_samples": "1e2"}}

    study = load_study(config)

    assert type(study.config["training"]["epochs"]) is int
    assert type(study.dataset_spec("syn")["synthetic"]["n_samples"]) is int
    assert all(type(key.seed) is int for key in study.runs)
    assert {key.path.rsplit("/", 1)[1] for key in study.runs} == {"seed1"}


# --------------------------------------------------------------------------- canonical specs

CANONICAL_A = """
study: {name: unit, title: Unit study}
datasets:
  iris: {source: sklearn, loader: iris}
  syn:
    source: synthetic
    synthetic: {n_samples: 100, class_sep: 1.0, flip_y: 0.010}
models:
  mlp: {type: mlp, units: [8, 4]}
regularizers:
  none: {}
  l2: {kernel: {l2: 0.01}}
  l1: {kernel: {l1: 0.001}}
  es: {early_stopping: {min_delta: 0.0, patience: 3}}
seeds: [0, 1]
training: {epochs: 2, learning_rate: 0.001}
baseline: none
"""

# The same study reworded: keys reordered, 0.010 for 0.01, 1 for 1.0, 1e-2 for 0.01.
CANONICAL_B = """
baseline: none
training: {learning_rate: 1e-3, epochs: 2}
seeds: [0, 1]
regularizers:
  es: {early_stopping: {patience: 3, min_delta: 0}}
  l1: {kernel: {l1: 1.0e-3}}
  l2: {kernel: {l2: 1e-2}}
  none: {}
models:
  mlp: {units: [8, 4], type: mlp}
datasets:
  syn:
    synthetic: {flip_y: 0.01, class_sep: 1, n_samples: 100}
    source: synthetic
  iris: {loader: iris, source: sklearn}
study: {title: Unit study, name: unit}
"""


def test_rewording_leaves_every_spec_identical() -> None:
    """Key order and number spelling (0.010, 1 for 1.0, 1e-2) do not change any spec."""
    first = load_study(yaml.safe_load(CANONICAL_A))
    second = load_study(yaml.safe_load(CANONICAL_B))

    assert first.runs == second.runs
    assert all_specs(first) == all_specs(second)


def test_canonical_json_sorts_keys_and_prints_plain_floats() -> None:
    """canonical_json sorts keys, drops whitespace and writes floats as Python prints them."""
    assert canonical_json({"b": 0.010, "a": [1, 1.0]}) == '{"a":[1,1.0],"b":0.01}'


def test_number_fields_are_floats_in_specs() -> None:
    """A number field written as an integer is a float in the spec, so 1 and 1.0 agree."""
    study = load_study(yaml.safe_load(CANONICAL_B))

    spec = study.run_spec(RunKey("syn", "mlp", "es", 0))

    assert '"class_sep":1.0' in canonical_json(spec)
    assert '"min_delta":0.0' in canonical_json(spec)


def test_changing_one_strength_changes_only_that_regularizers_specs() -> None:
    """Changing the l2 strength changes the spec of every l2 run and of no other run."""
    before = load_study(yaml.safe_load(CANONICAL_A))
    raw = yaml.safe_load(CANONICAL_A)
    raw["regularizers"]["l2"]["kernel"]["l2"] = 0.02
    after = load_study(raw)

    old, new = all_specs(before), all_specs(after)

    assert old.keys() == new.keys()
    changed = {key for key in old if old[key] != new[key]}
    assert changed == {key for key in old if key.regularizer == "l2"}
    assert changed  # The study has l2 runs, so the comparison above is not vacuous.


def test_run_spec_holds_everything_that_determines_a_run() -> None:
    """A run's spec names its dataset, model, regularizer and seed and holds the training."""
    study = load_study(raw_config())
    key = RunKey("iris", "mlp", "l2", 1)

    spec = study.run_spec(key)

    assert spec["dataset"]["name"] == "iris"
    assert spec["dataset"]["loader"] == "iris"
    assert spec["model"] == {"name": "mlp", **study.config["models"]["mlp"]}
    assert spec["regularizer"]["name"] == "l2"
    assert spec["regularizer"]["kernel"]["l2"] == 0.01
    assert spec["training"]["epochs"] == 2
    assert spec["seed"] == 1
    assert key.path == "iris/mlp/l2/seed1"


# --------------------------------------------------------------------------- report and references


def test_report_defaults_and_primary_is_added_to_metrics() -> None:
    """Without a report key the defaults apply; a primary missing from metrics goes first."""
    assert load_study(raw_config()).config["report"] == {
        "primary": "test_accuracy",
        "metrics": ["test_accuracy", "test_loss", "gap_accuracy"],
        "smallest_effect": {},
    }
    study = load_study(edited(lambda c: c.update(report={"primary": "test_loss"})))
    assert study.config["report"]["metrics"] == ["test_accuracy", "test_loss", "gap_accuracy"]
    chosen = {"primary": "test_roc_auc", "metrics": ["test_loss"]}
    study = load_study(edited(lambda c: c.update(report=chosen)))
    assert study.config["report"]["metrics"] == ["test_roc_auc", "test_loss"]


@pytest.mark.parametrize(
    ("report", "where"),
    [
        ({"primary": "test_objective"}, "report.primary: 'test_objective'"),
        ({"metrics": ["test_accuracy", "accuracy"]}, r"report.metrics\[1\]: 'accuracy'"),
        ({"smallest_effect": {"accuracy": 0.02}}, r"report.smallest_effect.accuracy: "),
    ],
)
def test_report_metric_must_be_compared(report: dict[str, Any], where: str) -> None:
    """A report metric the comparisons do not compute is named with the allowed names."""
    with pytest.raises(ConfigError, match=where + r".*not a metric the comparisons compute.*"):
        load_study(edited(lambda c: c.update(report=report)))
    with pytest.raises(ConfigError, match=r"expected one of: test_accuracy, test_f1_macro"):
        load_study(edited(lambda c: c.update(report=report)))


def test_references_resolve_to_one_row_per_value() -> None:
    """A reference keyed by regularizer gives one row per metric, its cell filled in."""
    reference = {"test_loss": 0.72, "test_accuracy": "7.5e-1", "source": "Notebook A, cell 12"}
    reference |= {"dataset": "iris", "model": "mlp"}
    study = load_study(edited(lambda c: c.update(references={"none": reference})))
    assert study.references == [
        {
            "dataset": "iris",
            "model": "mlp",
            "regularizer": "none",
            "metric": metric,
            "value": value,
            "source": "Notebook A, cell 12",
        }
        for metric, value in (("test_loss", 0.72), ("test_accuracy", 0.75))
    ]
    single = edited(lambda c: (c["datasets"].pop("digits"), c["models"].pop("cnn")))
    single["references"] = {"l2": [{"test_objective": 0.8, "source": "paper"}]}
    (row,) = load_study(single).references
    assert (row["dataset"], row["model"], row["metric"]) == ("iris", "mlp", "test_objective")


@pytest.mark.parametrize(
    ("references", "message"),
    [
        ({"l3": {"test_loss": 0.7, "source": "x"}}, r"references.l3: not a declared regularizer"),
        (
            {"none": {"test_loss": 0.7, "source": "x", "model": "mlp"}},
            r"references.none: the study has several datasets \(iris, digits\); say which one",
        ),
        (
            {"none": {"test_loss": 0.7, "source": "x", "dataset": "wine", "model": "mlp"}},
            r"references.none.dataset: 'wine' is not a declared dataset \(declared: iris, digits\)",
        ),
        (
            {"none": [{"loss": 0.7, "source": "x", "dataset": "iris", "model": "mlp"}]},
            r"references.none\[0\]: 'loss' is not a metric; expected .* test_objective",
        ),
        (
            {"none": {"source": "x", "dataset": "iris", "model": "mlp"}},
            r"references.none: gives no metric",
        ),
        (
            {
                "none": [
                    {"test_loss": 0.7, "source": "x", "dataset": "iris", "model": "mlp"},
                    {"test_loss": 0.6, "source": "y", "dataset": "iris", "model": "mlp"},
                ]
            },
            r"references.none\[1\]: a second test_loss for dataset iris, model mlp",
        ),
        (
            {"none": {"test_loss": 0.7, "source": "x", "dataset": "iris", "model": "cnn"}},
            r"references.none: dataset iris with model cnn is a combination this study skips",
        ),
        (
            {"none": {"test_loss": "high", "source": "x", "dataset": "iris", "model": "mlp"}},
            r"references.none.test_loss: expected number, got 'high'",
        ),
    ],
)
def test_bad_references_are_named(references: dict[str, Any], message: str) -> None:
    """An undeclared, ambiguous, unknown, empty, repeated or skipped reference: one clear error."""
    with pytest.raises(ConfigError, match=message):
        load_study(edited(lambda c: c.update(references=references)))


def test_report_and_references_reach_no_run_spec() -> None:
    """Changing what the report judges or its references changes no run, only aggregation."""
    before = load_study(raw_config())

    def edit(config: dict[str, Any]) -> None:
        config["report"] = {"primary": "test_loss", "metrics": ["test_roc_auc"]}
        config["references"] = {"l2": {"test_loss": 0.5, "source": "x", "dataset": "iris"}}
        config["references"]["l2"]["model"] = "mlp"

    after = load_study(edited(edit))
    assert all_specs(after) == all_specs(before)
    settings = after.aggregation_settings()
    assert settings["report"] == {
        "primary": "test_loss",
        "metrics": ["test_loss", "test_roc_auc"],
        "smallest_effect": {},
    }
    assert settings["references"] == after.references and len(after.references) == 1
    assert (settings["baseline"], settings["epochs"]) == ("none", 2)
    assert settings != before.aggregation_settings()


# --------------------------------------------------------------------------- the grid


def test_grid_is_the_product_minus_skipped_combinations() -> None:
    """Runs are datasets x models x regularizers x seeds without the CNN on tabular data."""
    study = load_study(raw_config())
    raw = raw_config()

    product = set(
        itertools.product(raw["datasets"], raw["models"], raw["regularizers"], raw["seeds"])
    )
    expected = {RunKey(*cell) for cell in product if not (cell[1] == "cnn" and cell[0] != "digits")}

    assert len(study.runs) == len(set(study.runs))
    assert set(study.runs) == expected
    assert len(study.runs) == 2 * 2 * 3 * 2 - 3 * 2


def test_skipped_combinations_carry_the_reason() -> None:
    """Each skipped combination is listed once per regularizer with a reason naming both sides."""
    study = load_study(raw_config())

    assert {(s.dataset, s.model, s.regularizer) for s in study.skipped} == {
        ("iris", "cnn", regularizer) for regularizer in ("none", "l2", "drop")
    }
    for skipped in study.skipped:
        assert isinstance(skipped, Skipped)
        assert "cnn" in skipped.reason and "iris" in skipped.reason
        assert "image" in skipped.reason and "tabular" in skipped.reason


def test_cnn_on_image_data_is_not_skipped() -> None:
    """With only image datasets, nothing is skipped and the CNN runs on them."""
    config = edited(lambda c: c["datasets"].pop("iris"))

    study = load_study(config)

    assert study.skipped == ()
    assert {key.model for key in study.runs} == {"mlp", "cnn"}


# --------------------------------------------------------------------------- bad configs


def test_unknown_top_level_key_is_named() -> None:
    """An unknown top-level key is named together with the keys allowed there."""
    config = edited(lambda c: c.update(extra=1))

    with pytest.raises(ConfigError, match=r"\(top level\): unknown key\(s\) 'extra'; expected"):
        load_study(config)


def test_unknown_nested_key_is_named_with_its_path() -> None:
    """An unknown key deep inside is named by its dotted path and the allowed keys."""
    config = edited(lambda c: c["regularizers"]["l2"]["kernel"].update(l3=1))

    with pytest.raises(
        ConfigError,
        match=r"regularizers\.l2\.kernel: unknown key\(s\) 'l3'; expected one of: l1, l2, layers",
    ):
        load_study(config)


def test_wrong_type_is_named() -> None:
    """A value of the wrong type is named with the type expected and the value given."""
    config = edited(lambda c: c["training"].update(epochs="ten"))

    with pytest.raises(ConfigError, match=r"training\.epochs: expected integer, got 'ten'"):
        load_study(config)


@pytest.mark.parametrize("name", ["a/b", "..", "x y", "."])
@pytest.mark.parametrize("section", ["datasets", "models", "regularizers"])
def test_unsafe_names_are_rejected(section: str, name: str) -> None:
    """A dataset, model or regularizer name that is not safe as a path part is rejected."""
    bodies = {
        "datasets": {"source": "sklearn", "loader": "wine"},
        "models": {"type": "mlp"},
        "regularizers": {},
    }
    config = edited(lambda c: c[section].update({name: bodies[section]}))

    with pytest.raises(
        ConfigError, match=rf"{section}: {re.escape(repr(name))} is not a usable name"
    ):
        load_study(config)


def test_baseline_must_be_declared() -> None:
    """A baseline that is not a declared regularizer is named with the declared ones."""
    config = edited(lambda c: c.update(baseline="l1"))

    with pytest.raises(
        ConfigError,
        match=r"baseline 'l1' is not a declared regularizer \(declared: drop, l2, none\)",
    ):
        load_study(config)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c.update(datasets={}), "datasets"),
        (lambda c: c.update(models={}), "models"),
        (lambda c: c.update(regularizers={}), "regularizers"),
        (lambda c: c.update(seeds=[]), "seeds"),
    ],
    ids=["datasets", "models", "regularizers", "seeds"],
)
def test_empty_axis_is_rejected(edit: Callable[[dict[str, Any]], object], key: str) -> None:
    """An empty grid axis (no datasets, models, regularizers or seeds) is named."""
    with pytest.raises(ConfigError, match=rf"{key}: is empty; declare at least one entry"):
        load_study(edited(edit))


def test_grid_where_everything_is_skipped_is_rejected() -> None:
    """A CNN-only study on tabular data has an empty grid, and the error says why."""

    def cnn_on_tabular(config: dict[str, Any]) -> None:
        del config["models"]["mlp"]
        del config["datasets"]["digits"]

    with pytest.raises(
        ConfigError, match=r"grid is empty.*model cnn is a CNN and needs image data"
    ):
        load_study(edited(cnn_on_tabular))


def test_missing_required_key_is_named() -> None:
    """A missing required key is named with the mapping that lacks it."""
    config = edited(lambda c: c["study"].pop("title"))

    with pytest.raises(ConfigError, match=r"study: 'title' is a required property"):
        load_study(config)


def test_dropout_rate_above_one_is_rejected() -> None:
    """A dropout rate of 1.5 is named together with the bound it breaks."""
    config = edited(lambda c: c["regularizers"]["drop"]["dropout"].update(rate=1.5))

    with pytest.raises(
        ConfigError,
        match=r"dropout\.rate: 1\.5 is out of range; expected a number > 0 and < 1",
    ):
        load_study(config)


def test_layer_index_out_of_range_is_named() -> None:
    """A ``layers`` index beyond the model's hidden layers names the piece, model and count."""
    config = edited(lambda c: c["regularizers"]["l2"]["kernel"].update(layers=[2]))

    with pytest.raises(
        ConfigError,
        match=r"regularizers\.l2\.kernel \(with model mlp\)\.layers: hidden layer index 2 "
        r"does not exist; the model has 2 hidden layer\(s\)",
    ):
        load_study(config)


def test_layer_index_in_range_for_every_model_is_accepted() -> None:
    """Index 1 exists in both the MLP (two dense) and the CNN (one conv, one dense)."""
    config = edited(lambda c: c["regularizers"]["l2"]["kernel"].update(layers=[1]))

    study = load_study(config)

    assert study.config["regularizers"]["l2"]["kernel"]["layers"] == [1]


def test_synthetic_features_must_hold_informative_and_redundant() -> None:
    """n_informative + n_redundant above n_features is named with the three numbers."""
    synthetic = {"n_features": 5, "n_informative": 4, "n_redundant": 2}
    config = edited(
        lambda c: c["datasets"].update(syn={"source": "synthetic", "synthetic": synthetic})
    )

    with pytest.raises(
        ConfigError,
        match=r"datasets\.syn\.synthetic: n_informative \+ n_redundant \(4 \+ 2\) "
        r"must not exceed n_features \(5\)",
    ):
        load_study(config)


def test_cnn_pool_list_must_match_filters() -> None:
    """A ``pool`` list whose length differs from ``filters`` names both lengths."""
    config = edited(lambda c: c["models"]["cnn"].update(pool=[True, False]))

    with pytest.raises(ConfigError, match=r"models\.cnn\.pool has 2 entries but filters has 1"):
        load_study(config)


def test_every_problem_is_reported_at_once() -> None:
    """Two schema problems in different places are both listed in one error."""

    def two_problems(config: dict[str, Any]) -> None:
        config["training"]["epochs"] = "ten"
        config["study"]["extra"] = True

    with pytest.raises(ConfigError, match=r"2 problem\(s\)") as caught:
        load_study(edited(two_problems))

    assert "training.epochs" in str(caught.value)
    assert "study: unknown key(s) 'extra'" in str(caught.value)


# --------------------------------------------------------------------------- config files


def test_load_config_file_names_a_missing_file(tmp_path: Path) -> None:
    """A missing config file is named in the error."""
    path = tmp_path / "missing.yaml"

    with pytest.raises(ConfigError, match=rf"cannot read config file {re.escape(str(path))}"):
        load_config_file(str(path))


def test_load_config_file_names_a_file_with_invalid_yaml(tmp_path: Path) -> None:
    """A file that is not valid YAML is named in the error."""
    path = tmp_path / "broken.yaml"
    path.write_text("study: [unclosed\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=rf"config file {re.escape(str(path))} is not valid YAML"):
        load_config_file(str(path))


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", ""], ids=["list", "str", "empty"])
def test_load_config_file_names_a_file_without_a_mapping(tmp_path: Path, text: str) -> None:
    """A file whose YAML is not a mapping (a list, a scalar, nothing) is named in the error."""
    path = tmp_path / "flat.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(
        ConfigError, match=rf"config file {re.escape(str(path))} must hold a mapping"
    ):
        load_config_file(str(path))


def test_load_config_file_reads_a_mapping(tmp_path: Path) -> None:
    """A YAML mapping is returned as a dict, ready for load_study."""
    path = tmp_path / "study.yaml"
    path.write_text(CANONICAL_A, encoding="utf-8")

    assert load_config_file(str(path)) == yaml.safe_load(CANONICAL_A)


def test_repository_config_is_a_valid_study() -> None:
    """The default config.yaml validates and has at least five seeds and five datasets."""
    study = load_study(load_config_file(str(ROOT / "config.yaml")))

    assert len(study.config["seeds"]) >= 5
    assert len(study.datasets) >= 5
    assert study.baseline in study.config["regularizers"]
    assert study.runs


def test_regularizer_on_layers_the_model_lacks_is_skipped_with_its_reason() -> None:
    """Dropout on conv layers runs for the CNN and is skipped for the MLP, which has none."""
    study = load_study(
        edited(
            lambda c: c["regularizers"].update(
                conv_drop={"dropout": {"rate": 0.2, "layers": "conv"}}
            )
        )
    )

    assert {k.model for k in study.runs if k.regularizer == "conv_drop"} == {"cnn"}
    reasons = {s.reason for s in study.skipped if s.regularizer == "conv_drop" and s.model == "mlp"}
    assert reasons == {
        "regularizer conv_drop puts its dropout on conv layers; model mlp has none, "
        "so it would equal the unregularized model"
    }


def test_activation_may_be_given_per_hidden_layer() -> None:
    """A list gives each hidden layer its activation; a list of the wrong length is refused."""
    study = load_study(edited(lambda c: c["models"]["mlp"].update(activation=["tanh", "relu"])))
    assert study.config["models"]["mlp"]["activation"] == ["tanh", "relu"]

    with pytest.raises(
        ConfigError, match=r"models\.mlp\.activation lists 3 activations .* 2 hidden"
    ):
        load_study(edited(lambda c: c["models"]["mlp"].update(activation=["tanh"] * 3)))


def test_rewording_a_dataset_description_changes_no_run_spec() -> None:
    """Descriptions are prose for the report and never reach a run's spec."""
    before = all_specs(load_study(raw_config()))
    after = all_specs(
        load_study(edited(lambda c: c["datasets"]["iris"].update(description="Fisher's iris")))
    )
    assert before == after


def test_the_plateau_protocol_gets_its_defaults_and_enters_every_spec() -> None:
    """Protocol plateau fills patience and min_delta; changing either changes every cell's
    spec (a rerun), and protocol fixed, the default, records neither."""
    fixed = load_study(raw_config())
    assert fixed.config["training"]["protocol"] == "fixed"
    assert "patience" not in fixed.config["training"]
    plateau = load_study(edited(lambda c: c["training"].update(protocol="plateau")))
    assert plateau.config["training"]["patience"] == DEFAULT_PATIENCE
    assert plateau.config["training"]["min_delta"] == DEFAULT_MIN_DELTA
    patient = load_study(
        edited(lambda c: c["training"].update(protocol="plateau", patience=DEFAULT_PATIENCE + 1))
    )
    assert all(
        all_specs(plateau)[key] != all_specs(patient)[key] != all_specs(fixed)[key]
        for key in plateau.runs
    )
    assert plateau.aggregation_settings()["protocol"] == "plateau"


@pytest.mark.parametrize(
    ("training", "split", "message"),
    [
        (
            {"patience": 5},
            {},
            "training.patience applies only to protocol plateau; this study's protocol is fixed",
        ),
        (
            {"min_delta": 0.01},
            {},
            "training.min_delta applies only to protocol plateau",
        ),
        (
            {"protocol": "plateau"},
            {"validation_mode": "test"},
            "datasets.iris.split.validation_mode: test would let protocol plateau pick each "
            "seed's tested weights on the test split",
        ),
    ],
    ids=["patience-without-plateau", "min-delta-without-plateau", "plateau-on-the-test-split"],
)
def test_protocol_settings_it_cannot_honour_are_refused(
    training: dict[str, Any], split: dict[str, Any], message: str
) -> None:
    """A protocol setting that would not act, or a plateau read on the test split, is refused."""

    def edit(config: dict[str, Any]) -> None:
        config["training"].update(training)
        config["datasets"]["iris"]["split"] = split

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_study(edited(edit))
