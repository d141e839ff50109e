"""The modern pieces and a study's own functions in the config: validated, skipped with a
reason where they make no sense, imported and checked at load, fingerprinted in the specs."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_config import edited, raw_config

from regbench import custom
from regbench.config import CellKey, ConfigError, canonical_json, load_study

#: One regularizer per new piece, each in its plainest form.
MODERN: dict[str, Any] = {
    "decay": {"weight_decay": {"rate": 1.0e-4}},
    "noise_in": {"gaussian_noise": {"stddev": 0.1, "layers": "inputs"}},
    "noise": {"gaussian_noise": {"stddev": 0.1}},
    "max_norm": {"max_norm": {"value": 3}},
    "smooth": {"label_smoothing": {"amount": 0.1}},
    "augment": {"augmentation": {"flip": "horizontal", "translate": 0.1}},
    "spatial": {"spatial_dropout": {"rate": 0.2}},
}

PENALTY = """
from keras import ops


def scaled_l1(strength):
    return lambda weights: strength * ops.sum(ops.abs(weights))
"""

NETS = """
import keras


def tiny(input_shape, n_classes, units=4):
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(n_classes, activation="softmax")(x))
"""


@pytest.fixture
def study_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A study folder with a package of its own functions, importable only through the study.

    Each test gets a package of its own name, so modules never leak between tests.
    """
    monkeypatch.setenv(custom.STUDY_PATH_ENV, "")
    monkeypatch.setattr(sys, "path", list(sys.path))
    package = tmp_path / f"own_{tmp_path.name.replace('-', '_')}"
    package.mkdir()
    (package / "__init__.py").write_text("", "utf-8")
    (package / "penalties.py").write_text(PENALTY, "utf-8")
    (package / "nets.py").write_text(NETS, "utf-8")
    return tmp_path


def package(study_dir: Path) -> str:
    return next(p.name for p in study_dir.iterdir() if p.name.startswith("own_"))


def with_custom(study_dir: Path, edit: Callable[[dict[str, Any], str], None]) -> dict[str, Any]:
    """The small config with a custom regularizer and a custom model from the study's package."""
    name = package(study_dir)
    config = raw_config()
    config["regularizers"]["mine"] = {
        "custom": {"function": f"{name}.penalties:scaled_l1", "args": {"strength": "1e-3"}}
    }
    config["models"]["own"] = {"type": "custom", "function": f"{name}.nets:tiny"}
    edit(config, name)
    return config


def test_each_new_piece_validates_with_its_defaults() -> None:
    """Every new piece loads, with layers defaulting to all (spatial dropout: conv)."""
    study = load_study(edited(lambda c: c["regularizers"].update(MODERN)))
    regularizers = study.config["regularizers"]
    assert regularizers["decay"]["weight_decay"] == {"rate": 1.0e-4, "layers": "all"}
    assert regularizers["max_norm"]["max_norm"] == {"value": 3.0, "layers": "all"}
    assert regularizers["noise"]["gaussian_noise"]["layers"] == "all"
    assert regularizers["spatial"]["spatial_dropout"]["layers"] == "conv"
    cell = study.cell_spec(CellKey("digits", "cnn", "augment"))
    assert cell["regularizer"]["augmentation"] == {"flip": "horizontal", "translate": 0.1}


def test_nonsensical_combinations_are_skipped_with_reasons() -> None:
    """Augmenting tabular data and spatial dropout without convolutions are skipped, and say why;
    everything else about the new pieces runs."""
    study = load_study(edited(lambda c: c["regularizers"].update(MODERN)))
    reasons = {(s.dataset, s.model, s.regularizer): s.reason for s in study.skipped}
    assert reasons[("iris", "mlp", "augment")] == (
        "regularizer augment augments images; dataset iris is tabular"
    )
    assert reasons[("digits", "mlp", "spatial")] == (
        "regularizer spatial puts its spatial_dropout on conv layers; model mlp has none, "
        "so it would equal the unregularized model"
    )
    cells = set(study.cells)
    assert CellKey("digits", "mlp", "augment") in cells  # An MLP takes augmented images too.
    assert CellKey("digits", "cnn", "spatial") in cells
    assert {CellKey("iris", "mlp", name) for name in ("decay", "noise_in", "smooth")} <= cells


def test_spatial_dropout_on_a_dense_layer_is_refused() -> None:
    """Spatial dropout chosen for a dense layer of a CNN names the layer and what is allowed."""
    config = edited(lambda c: c["regularizers"].update(spatial={"spatial_dropout": {"rate": 0.2}}))
    config["regularizers"]["spatial"]["spatial_dropout"]["layers"] = "all"
    with pytest.raises(
        ConfigError,
        match=r"regularizers\.spatial\.spatial_dropout \(with model cnn\)\.layers: hidden layer 1 "
        r"is dense; spatial_dropout drops whole feature maps",
    ):
        load_study(config)


@pytest.mark.parametrize(
    ("piece", "message"),
    [
        ({"gaussian_noise": {"stddev": 1.5}}, r"stddev: 1\.5 is out of range"),
        ({"label_smoothing": {"amount": 1}}, r"amount: 1\.0 is out of range"),
        ({"augmentation": {}}, r"augmentation: is empty"),
        ({"augmentation": {"flip": "diagonal"}}, r"flip: 'diagonal' is not one of"),
        ({"max_norm": {"value": 0}}, r"value: 0\.0 is out of range"),
        ({"custom": {"function": "no_colon"}}, r"function: 'no_colon' is not a usable name"),
    ],
    ids=["noise", "smoothing", "augmentation", "flip", "max_norm", "reference"],
)
def test_bad_piece_settings_are_refused(piece: dict[str, Any], message: str) -> None:
    """An out-of-range or unknown setting of a new piece names its key and what is allowed."""
    with pytest.raises(ConfigError, match=message):
        load_study(edited(lambda c: c["regularizers"].update(bad=piece)))


def test_the_new_pieces_strengths_can_be_swept() -> None:
    """A list of weight decay rates, max-norm values, noise deviations, spatial dropout rates or
    smoothing amounts declares a sweep family: one variant per value, in order."""
    swept = {
        "decay": {"weight_decay": {"rate": [1.0e-3, 1.0e-2]}},
        "max_norm": {"max_norm": {"value": [1, 3]}},
        "noise": {"gaussian_noise": {"stddev": [0.1, 0.2], "layers": "inputs"}},
        "spatial": {"spatial_dropout": {"rate": [0.1, 0.2]}},
        "smooth": {"label_smoothing": {"amount": [0.05, 0.1]}},
    }
    study = load_study(edited(lambda c: c["regularizers"].update(swept)))
    assert {name: len(family["variants"]) for name, family in study.config["families"].items()} == {
        name: 2 for name in swept
    }
    regularizers = study.config["regularizers"]
    assert regularizers["decay_0.01"]["weight_decay"] == {"rate": 1.0e-2, "layers": "all"}
    assert regularizers["smooth_0.05"]["label_smoothing"] == {"amount": 0.05}


def test_a_custom_function_is_imported_checked_and_fingerprinted(study_dir: Path) -> None:
    """The study's functions load from its folder; each cell's spec carries the digest of the
    module its function lives in, and "1e-3" reaches the function as a number."""
    study = load_study(with_custom(study_dir, lambda c, n: None), [study_dir])
    name = package(study_dir)
    assert os.environ[custom.STUDY_PATH_ENV] == str(study_dir.resolve())
    mine = study.cell_spec(CellKey("iris", "mlp", "mine"))["regularizer"]["custom"]
    assert mine == {
        "function": f"{name}.penalties:scaled_l1",
        "args": {"strength": 1.0e-3},
        "penalizes": "kernel",
        "layers": "all",
        "code": custom.module_digest(f"{name}.penalties"),
    }
    own = study.cell_spec(CellKey("iris", "own", "none"))["model"]
    assert own == {
        "name": "own",
        "type": "custom",
        "function": f"{name}.nets:tiny",
        "args": {},
        "input": "any",
        "code": custom.module_digest(f"{name}.nets"),
    }
    assert "code" not in study.config["models"]["own"]  # The config stays as written.


def test_editing_a_module_changes_exactly_the_specs_that_use_it(study_dir: Path) -> None:
    """A changed penalty module changes the specs of the custom regularizer's cells only."""
    config = with_custom(study_dir, lambda c, n: None)
    before = load_study(config, [study_dir])
    penalties = study_dir / package(study_dir) / "penalties.py"
    penalties.write_text(PENALTY.replace("ops.abs", "ops.square"), "utf-8")
    after = load_study(config, [study_dir])
    changed = {
        cell
        for cell in before.cells
        if canonical_json(before.cell_spec(cell)) != canonical_json(after.cell_spec(cell))
    }
    assert changed == {cell for cell in before.cells if cell.regularizer == "mine"}
    assert changed


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c, n: c["models"]["own"].update(function="missing_pkg.nets:tiny"),
            r"models\.own\.function: cannot find module 'missing_pkg\.nets'; modules are looked "
            r"up in "
            r".+ \(the study file's folder\), on PYTHONPATH and among the installed packages",
        ),
        (
            lambda c, n: c["models"]["own"].update(function=f"{n}.nets:huge"),
            r"models\.own\.function: module own_\w+\.nets \(.+nets\.py\) has no function 'huge'",
        ),
        (
            lambda c, n: c["regularizers"]["mine"]["custom"].update(args={"strenght": 1}),
            r"regularizers\.mine\.custom\.function: own_\w+\.penalties:scaled_l1\(strength\) "
            r"cannot be called as scaled_l1\(\*\*args\) with strenght=1: missing a required "
            r"argument: 'strength'",
        ),
        (
            lambda c, n: c["models"]["own"].update(args={"n_classes": 3}),
            r"models\.own\.function: .+ cannot be called as tiny\(input_shape, n_classes, "
            r"\*\*args\) with n_classes=3: multiple values for argument 'n_classes'",
        ),
        (
            lambda c, n: c["regularizers"]["mine"]["custom"].update(function="json:__version__"),
            r"regularizers\.mine\.custom\.function: json:__version__ is a str, not a function",
        ),
    ],
    ids=["no-module", "no-function", "wrong-argument", "model-signature", "not-callable"],
)
def test_a_bad_function_stops_the_study_with_one_message(
    study_dir: Path, edit: Callable[[dict[str, Any], str], None], message: str
) -> None:
    """A function that cannot be found or called as the contract says is refused at load."""
    with pytest.raises(ConfigError, match=message):
        load_study(with_custom(study_dir, edit), [study_dir])


def test_a_module_that_fails_to_import_is_named(study_dir: Path) -> None:
    """A module raising on import is refused with its error, before any job runs."""
    nets = study_dir / package(study_dir) / "nets.py"
    nets.write_text("import keras\n1 / 0\n", "utf-8")
    with pytest.raises(
        ConfigError,
        match=r"models\.own\.function: importing own_\w+\.nets \(.+nets\.py\) raised "
        r"ZeroDivisionError: division by zero",
    ):
        load_study(with_custom(study_dir, lambda c, n: None), [study_dir])


def test_a_custom_model_gets_the_pieces_it_can_take(study_dir: Path) -> None:
    """A custom model takes penalties, constraints, decay, smoothing and input noise; pieces that
    insert layers into it are skipped with a reason, as is an image model on tabular data."""

    def edit(config: dict[str, Any], name: str) -> None:
        config["regularizers"].update(MODERN)
        config["models"]["own_images"] = {
            "type": "custom",
            "function": f"{name}.nets:tiny",
            "input": "image",
        }

    study = load_study(with_custom(study_dir, edit), [study_dir])
    reasons = {(s.dataset, s.model, s.regularizer): s.reason for s in study.skipped}
    assert reasons[("digits", "own", "drop")] == (
        "model own is built by the study's own function, so regbench cannot insert the dropout "
        "layers of regularizer drop into it (build them into the function instead)"
    )
    assert "gaussian_noise layers" in reasons[("digits", "own", "noise")]
    assert ("digits", "own", "noise_in") not in reasons
    assert reasons[("iris", "own_images", "none")] == (
        "model own_images is a custom model for images and needs image data; dataset iris is "
        "tabular"
    )
    taken = {c.regularizer for c in study.cells if (c.dataset, c.model) == ("digits", "own")}
    assert taken == {"none", "l2", "mine", "decay", "noise_in", "max_norm", "smooth", "augment"}


def test_keys_of_the_other_kind_of_model_are_refused(study_dir: Path) -> None:
    """units on a custom model, or a function on an MLP, is refused; a custom model's resolved
    config holds only what it reads."""
    with pytest.raises(ConfigError, match=r"models\.own: units only apply to mlp and cnn models"):
        load_study(with_custom(study_dir, lambda c, n: c["models"]["own"].update(units=[4])))
    with pytest.raises(ConfigError, match=r"models\.mlp: function only apply to custom models"):
        load_study(with_custom(study_dir, lambda c, n: c["models"]["mlp"].update(function="a.b:c")))
    with pytest.raises(ConfigError, match=r"models\.own: 'function' is a required property"):
        load_study(with_custom(study_dir, lambda c, n: c["models"]["own"].pop("function")))
