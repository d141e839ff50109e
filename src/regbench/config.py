"""Study config: validation, defaults, and the grid of fully resolved run specs.

The config is checked against ``config.schema.yaml`` before anything runs.
Each run is then identified by a small frozen :class:`RunKey` and described by
a fully resolved spec (defaults filled, numbers normalized) whose canonical
JSON is what Snakemake sees as ``params``: a config change reruns exactly the
runs whose spec changed, and rewording the YAML (key order, ``0.010`` for
``0.01``, comments) reruns nothing.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from regbench import custom
from regbench.inputs import (
    TARBALL_SUFFIXES,
    cached_file_name,
    check_sha256,
    is_tarball,
    parse_target_transform,
    quote,
)
from regbench.measures import (
    HIGHER_IS_BETTER,
    REFERENCE_METRICS,
    TUNING_CRITERIA,
    VALIDATION_METRICS,
    metric_range,
)
from regbench.shapes import known_data
from regbench.topology import (
    CONV_ONLY,
    INPUTS,
    INSERTED,
    PIECES,
    hidden_layer_kinds,
    is_image_dataset,
    select_layers,
)

__all__ = [
    "DEFAULT_MIN_DELTA",
    "DEFAULT_PATIENCE",
    "ERROR_FILE",
    "FIXED",
    "PLATEAU",
    "CellKey",
    "ConfigError",
    "RunKey",
    "Skipped",
    "Study",
    "canonical_json",
    "check_unique_keys",
    "load_config_file",
    "load_study",
    "prepared_folder",
    "resolve_references",
    "split_twins",
    "variant_name",
    "varies_split",
]

# Keys that only mean something for a downloaded dataset, and the format each belongs to.
_URL_KEYS = ("url", "sha256", "format", "csv", "npz")
_FORMAT_BLOCKS = {"csv": "csv", "npz": "npz"}

# A real study holds a few hundred values, nested a few levels deep. YAML
# aliases can make a ten-line file hold a billion ("billion laughs"), which
# every later step would expand: such a config is refused before anything reads it.
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_DEPTH = 32

# A sweep's variants are as many runs per cell and seed; a typo such as a list of a
# thousand values in each of three keys would plan a billion. Refused before expanding.
MAX_SWEEP_VARIANTS = 1000

# PyYAML follows YAML 1.1, which reads "1e-3" (no dot) as a string.
_SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")

# What each kind of model reads: regbench's builders, and a study's own function.
_BUILT_IN_MODEL_KEYS = (
    "units",
    "activation",
    "filters",
    "kernel_size",
    "pool_size",
    "padding",
    "pool",
)
_CUSTOM_MODEL_KEYS = ("function", "args", "input")


#: Where a failed run leaves its error, beside where its metrics.json would be.
ERROR_FILE = "error.txt"


class ConfigError(ValueError):
    """A study config that cannot be run; the message names the key at fault."""


@dataclass(frozen=True, order=True)
class CellKey:
    """One cell of the grid, trained by one job: a dataset, a model and a regularizer."""

    dataset: str
    model: str
    regularizer: str

    @property
    def path(self) -> str:
        """The cell's folder below ``results/runs`` (and its log's name below ``logs``)."""
        return f"{self.dataset}/{self.model}/{self.regularizer}"

    @property
    def benchmark(self) -> str:
        """Snakemake's benchmark file of the cell's training job."""
        return f"results/benchmarks/train_cell/{self.path}.tsv"

    @property
    def log(self) -> str:
        """The log of the cell's training job."""
        return f"logs/train_cell/{self.path}.log"

    @property
    def record(self) -> str:
        """The file the cell's job writes last: its seeds and how each ended.

        The tables wait for it, one file per cell, instead of for each run's files.
        """
        return f"results/runs/{self.path}/cell.json"

    def run(self, seed: int) -> RunKey:
        """The cell's run for ``seed``."""
        return RunKey(self.dataset, self.model, self.regularizer, seed)


@dataclass(frozen=True, order=True)
class RunKey:
    """One run of the grid: which dataset, model, regularizer and seed."""

    dataset: str
    model: str
    regularizer: str
    seed: int

    @property
    def cell(self) -> CellKey:
        """The cell the run belongs to; its job trains all of the cell's seeds."""
        return CellKey(self.dataset, self.model, self.regularizer)

    @property
    def path(self) -> str:
        """The run's folder below ``results/runs``."""
        return f"{self.cell.path}/seed{self.seed}"

    @classmethod
    def from_path(cls, path: str) -> RunKey:
        """The key of a run folder written as :attr:`path` names it."""
        dataset, model, regularizer, seed = path.split("/")
        return cls(dataset, model, regularizer, int(seed.removeprefix("seed")))

    def output(self, name: str) -> str:
        """One of the run's output files, relative to the study's folder."""
        return f"results/runs/{self.path}/{name}"

    @property
    def benchmark(self) -> str:
        """Snakemake's benchmark file of the job that trained the run: its cell's."""
        return self.cell.benchmark


def varies_split(dataset: Mapping[str, Any]) -> bool:
    """Whether each seed draws its own split of a dataset (``split.vary: seed``).

    ``dataset`` is a dataset's config entry or spec. A fixed split is the default
    and is left out of the resolved config, so that specs written before the
    key existed are unchanged.
    """
    return bool(dataset.get("split", {}).get("vary") == "seed")


def split_twins(config: Mapping[str, Any]) -> dict[str, str]:
    """Datasets run both ways: each dataset whose seeds draw their own splits, with a
    fixed-split dataset of the same data and settings, if the resolved ``config`` has one.

    Two datasets are the same data both ways when their entries are equal but for
    their description and ``split.vary``.
    """

    def data_of(body: Mapping[str, Any]) -> dict[str, Any]:
        entry = {k: v for k, v in body.items() if k != "description"}
        entry["split"] = {k: v for k, v in body["split"].items() if k != "vary"}
        return entry

    datasets = config["datasets"]
    fixed = [name for name, body in datasets.items() if not varies_split(body)]
    twins = {}
    for name, body in datasets.items():
        if varies_split(body):
            match = next((f for f in fixed if data_of(datasets[f]) == data_of(body)), None)
            if match is not None:
                twins[name] = match
    return twins


def prepared_folder(dataset: str, split_seed: int | str | None = None) -> str:
    """Where a dataset's prepared ``data.npz`` and ``card.json`` are, relative to the study.

    One folder for a fixed split; one below it per seed (``seed<seed>``) when
    each seed draws its own split.
    """
    folder = f"results/data/{dataset}"
    return folder if split_seed is None else f"{folder}/seed{split_seed}"


@dataclass(frozen=True)
class Skipped:
    """A dataset x model x regularizer combination left out, and why."""

    dataset: str
    model: str
    regularizer: str
    reason: str


@dataclass(frozen=True)
class Study:
    """A validated study: the resolved config and the grid it implies."""

    config: dict[str, Any]
    runs: tuple[RunKey, ...]
    skipped: tuple[Skipped, ...]
    #: The source digest of each module whose functions the study names, by module name.
    code: Mapping[str, str] = field(default_factory=dict)

    @property
    def datasets(self) -> dict[str, Any]:
        return self.config["datasets"]  # type: ignore[no-any-return]  # config: parsed YAML, Any

    @property
    def baseline(self) -> str:
        return self.config["baseline"]  # type: ignore[no-any-return]  # config: parsed YAML, Any

    def dataset_spec(self, dataset: str) -> dict[str, Any]:
        """The resolved spec of one dataset, as its preparation sees it."""
        body = self.config["datasets"][dataset]
        # A description is prose for the report: rewording it must rerun nothing.
        return {"name": dataset, **{k: v for k, v in body.items() if k != "description"}}

    def split_seeds(self, dataset: str) -> list[int | None]:
        """The splits a dataset is prepared in: ``[None]`` (one, fixed), or one per seed."""
        return list(self.seeds) if varies_split(self.datasets[dataset]) else [None]

    def split_spec(self, dataset: str, seed: int) -> dict[str, Any]:
        """What preparing one seed's split of a dataset sees: its spec and the seed."""
        spec = self.dataset_spec(dataset)
        if not varies_split(spec) or seed not in self.seeds:
            raise ValueError(
                f"dataset {dataset} has no split of its own for seed {seed}: only a dataset "
                "with split.vary: seed is prepared per seed, for the study's seeds"
            )
        return {**spec, "split": {**spec["split"], "seed": seed}}

    def prepared_files(self, dataset: str, name: str) -> list[str]:
        """One prepared file (``data.npz`` or ``card.json``) per split of a dataset."""
        return [f"{prepared_folder(dataset, s)}/{name}" for s in self.split_seeds(dataset)]

    def run_data(self, key: RunKey) -> str:
        """The prepared data one run trains on: its dataset's, or its seed's split of it."""
        split_seed = key.seed if varies_split(self.datasets[key.dataset]) else None
        return f"{prepared_folder(key.dataset, split_seed)}/data.npz"

    def cell_data(self, cell: CellKey) -> list[str]:
        """The data a cell trains on: one file all its seeds share, or one per seed, in order."""
        return list(dict.fromkeys(self.run_data(cell.run(seed)) for seed in self.seeds))

    def split_twins(self) -> dict[str, str]:
        """Datasets run both ways (see :func:`split_twins`)."""
        return split_twins(self.config)

    @property
    def cells(self) -> tuple[CellKey, ...]:
        """The grid's cells, in the order of its runs."""
        return tuple(dict.fromkeys(run.cell for run in self.runs))

    @property
    def seeds(self) -> list[int]:
        """The seeds every cell trains."""
        return list(self.config["seeds"])

    def cell_spec(self, cell: CellKey) -> dict[str, Any]:
        """What a cell's runs share: every part of their specs but the seed."""
        cfg = self.config
        model = {"name": cell.model, **cfg["models"][cell.model]}
        regularizer = {"name": cell.regularizer, **cfg["regularizers"][cell.regularizer]}
        # A study's own function: the digest of its module's source, so editing it retrains.
        if model["type"] == "custom":
            model["code"] = self.code[custom.module_of(model["function"])]
        if "custom" in regularizer:
            block = regularizer["custom"]
            regularizer["custom"] = {
                **block,
                "code": self.code[custom.module_of(block["function"])],
            }
        return {
            "dataset": self.dataset_spec(cell.dataset),
            "model": model,
            "regularizer": regularizer,
            "training": cfg["training"],
        }

    def run_spec(self, key: RunKey) -> dict[str, Any]:
        """The fully resolved spec of one run: everything that determines its result."""
        return {**self.cell_spec(key.cell), "seed": key.seed}

    @property
    def families(self) -> dict[str, dict[str, Any]]:
        """The sweep families: each declared sweep's ``swept`` keys, ``variants`` and ``values``.

        ``swept`` lists the keys (``piece.key``) whose values differ between the
        variants; ``variants`` the variants' regularizer names in order of
        strength (a list, so that the order survives canonical JSON); ``values``
        maps each to its swept values (``{"kernel.l2": 0.001}``).
        """
        return self.config["families"]  # type: ignore[no-any-return]  # config: parsed YAML, Any

    @property
    def references(self) -> list[dict[str, Any]]:
        """The study's published values, one per metric, with dataset and model filled in."""
        return resolve_references(self.config)

    def aggregation_settings(self) -> dict[str, Any]:
        """Everything the tables depend on besides the runs: what rule aggregate_runs gets.

        None of it reaches a run's spec, so changing it reruns the tables onwards only.
        """
        settings = {
            "baseline": self.baseline,
            "report": self.config["report"],
            "references": self.references,
            "epochs": self.config["training"]["epochs"],
            "protocol": self.config["training"]["protocol"],
            "families": self.families,
            "tuning": self.config["tuning"],
        }
        twins = self.split_twins()
        if twins:
            # Said only where there are any, so that other studies' tables keep their params.
            settings["split_twins"] = twins
        return settings


def canonical_json(value: Any) -> str:
    """Serialize canonically: sorted keys, no whitespace, floats as Python prints them."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def load_config_file(path: str) -> dict[str, Any]:
    """Read a YAML (or JSON) config file, naming the file in any error.

    A key given twice in one mapping is refused (:func:`check_unique_keys`).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        data = yaml.safe_load(text)
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    check_unique_keys(text)
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not {data!r}")
    return data


def check_unique_keys(text: str) -> None:
    """Refuse a key given twice in one mapping, naming it and both lines.

    YAML and JSON readers keep the last of two equal keys without a word, so a
    second ``l2:`` under ``regularizers`` would silently replace the first.
    The file is composed into nodes, which never runs a tag's constructor, and
    each node is visited once however many aliases share it. JSON is YAML but
    for tabs, which JSON allows only between tokens (where a space means the same).
    """
    try:
        root = yaml.compose(text.replace("\t", " "), Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return  # Unreadable as YAML: the reader that loaded it says what is wrong.
    seen: set[int] = set()

    def visit(node: yaml.Node, path: str) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    name = f"{path}.{key.value}" if path else key.value
                    line = key.start_mark.line + 1
                    if key.value in lines:
                        raise ConfigError(
                            f"{quote(name)[1:-1]} is given twice (lines {lines[key.value]} and "
                            f"{line}); a reader would keep only the second: keep one"
                        )
                    lines[key.value] = line
                    visit(value, name)
                else:
                    visit(value, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                visit(item, f"{path}.{index}" if path else str(index))

    if root is not None:
        visit(root, "")


def load_study(raw: Mapping[str, Any], code_dirs: Sequence[str | Path] = ()) -> Study:
    """Validate a raw config, fill its defaults and build the run grid.

    ``code_dirs`` are the folders of the study's files: where the modules of
    the functions a study names are looked up first. A study that names any
    is made importable there, in this process and the jobs it starts
    (:func:`regbench.custom.use_study_path`), and each function is imported
    and checked now.
    """
    _check_size(raw)
    schema = _schema()
    config = _apply_schema(copy.deepcopy(dict(raw)), schema, schema, fill=False)
    errors = sorted(_validator().iter_errors(config), key=lambda e: [str(p) for p in e.path])
    if errors:
        if len(errors) == 1:
            raise ConfigError(_describe(errors[0]))
        lines = "\n".join(f"  - {_describe(error)}" for error in errors)
        raise ConfigError(f"invalid study config ({len(errors)} problem(s)):\n{lines}")
    _check_model_keys(config)
    config["families"] = _expand_sweeps(config)
    config = _apply_schema(config, schema, schema, fill=True)
    _resolve_custom_models(config)
    _fill_validation_fraction(config)
    _check_semantics(config)
    _check_report(config)
    _check_tuning(config)
    _check_protocol(config)
    runs, skipped = _grid(config)
    if not runs:
        raise ConfigError(
            "the study grid is empty: every dataset x model x regularizer combination "
            "was skipped (" + "; ".join(s.reason for s in skipped) + ")"
        )
    _check_references(config, runs)
    code = _check_functions(config, code_dirs, runs)
    return Study(config=config, runs=tuple(runs), skipped=tuple(skipped), code=code)


def _check_size(raw: Any) -> None:
    """Refuse a config that expands beyond any real study, without expanding it.

    Values reached through several YAML aliases are one object in memory; each
    is sized once and its size reused, so this takes time in proportion to the
    file, not to what it expands to. Tuples and sets count as containers too:
    Snakemake reads a study with PyYAML's FullLoader, which builds them.
    """
    sizes: dict[int, int] = {}

    def size(value: Any, depth: int) -> int:
        if not isinstance(value, dict | list | tuple | set | frozenset):
            return 1
        if id(value) in sizes:
            return sizes[id(value)]
        if depth > MAX_CONFIG_DEPTH:
            # Also where a self-referencing alias ("&a [*a]") ends up.
            raise ConfigError(
                f"the config nests deeper than {MAX_CONFIG_DEPTH} levels; a study needs a "
                "few (is a YAML alias referring to itself?)"
            )
        children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_CONFIG_VALUES:
                raise ConfigError(
                    f"the config holds more than {MAX_CONFIG_VALUES:,} values once its YAML "
                    "aliases are expanded; a study needs far fewer (look for an alias "
                    "(*name) that repeats a large block, or a list of aliases of lists)"
                )
        sizes[id(value)] = total
        return total

    size(raw, 0)


def _sweepable_keys() -> dict[str, tuple[str, ...]]:
    """Per regularizer piece, the keys that take a number and so may take a list (a sweep).

    Read from the schema: a key is sweepable where it takes a number or a list
    of them (``layers`` takes a list of indices, but never one index alone).
    """
    schema = _schema()
    entry = schema["properties"]["regularizers"]["additionalProperties"]
    keys: dict[str, tuple[str, ...]] = {}
    for piece, piece_schema in entry["properties"].items():
        properties = _resolve(piece_schema, schema).get("properties", {})
        keys[piece] = tuple(
            key
            for key, sub in properties.items()
            if {"array", "number"}
            <= {_number_or(b, schema) for b in _resolve(sub, schema).get("oneOf", [])}
        )
    return {piece: found for piece, found in keys.items() if found}


def _number_or(branch: Mapping[str, Any], root: dict[str, Any]) -> str | None:
    """A schema branch's type, with ``integer`` counted as ``number``."""
    kind = _resolve(dict(branch), root).get("type")
    return "number" if kind == "integer" else kind


def variant_name(family: str, values: Mapping[str, float]) -> str:
    """The name of one variant of a sweep: the family, then its swept values.

    One swept key gives ``l2_0.001``; several give each key and value,
    ``l1l2_l1-0.01_l2-0.001``, the key as ``piece.key`` where two pieces
    sweep the same key. A value is written as Python writes the number
    (``0.0001``, ``1e-05``), without a trailing ``.0``: exactly, and only
    with digits, ``.``, ``e`` and ``-``, so names are path-safe and stable.
    """
    if len(values) == 1:
        return f"{family}_{_name_number(next(iter(values.values())))}"
    keys = [path.split(".", 1)[1] for path in values]
    parts = [
        f"{key if keys.count(key) == 1 else path}-{_name_number(value)}"
        for path, key, value in zip(values, keys, values.values(), strict=True)
    ]
    return "_".join([family, *parts])


def _name_number(value: float) -> str:
    text = repr(value).replace("e+", "e")
    return text.removesuffix(".0")


def _expand_sweeps(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Replace each sweep in ``regularizers`` by its variants, in place; return the families.

    A regularizer entry is a sweep when a key that takes a number holds a list,
    or when it has a ``sweep`` list of settings. Each setting (the entry alone
    without one) is merged onto the rest of the entry, and each gives one
    variant per combination of its lists' values. Variants are named by
    :func:`variant_name` and listed in order of strength; each one's body is
    exactly what a hand-written entry with the same settings resolves to.
    """
    sweepable = _sweepable_keys()
    declared = set(config["regularizers"])
    expanded: dict[str, Any] = {}
    families: dict[str, dict[str, Any]] = {}
    for name, body in config["regularizers"].items():
        settings = _sweep_settings(name, body, sweepable)
        if settings is None:
            expanded[name] = body
            continue
        entry = _schema()["properties"]["regularizers"]["additionalProperties"]
        variants = [_apply_schema(setting, entry, _schema(), fill=True) for setting in settings]
        family, ordered = _family(name, variants, sweepable)
        families[name] = family
        for variant, resolved in zip(family["variants"], ordered, strict=True):
            clash = variant in declared or variant in expanded
            if clash:
                what = (
                    "a declared regularizer" if variant in declared else "another sweep's variant"
                )
                raise ConfigError(
                    f"regularizers.{name}: its variant {variant!r} has the name of {what}; "
                    "rename the sweep or that regularizer"
                )
            expanded[variant] = resolved
    config["regularizers"] = expanded
    return families


def _sweep_settings(
    name: str, body: Mapping[str, Any], sweepable: Mapping[str, Sequence[str]]
) -> list[dict[str, Any]] | None:
    """Every setting a sweep entry declares, lists expanded; None for an entry that is no sweep."""
    base = {piece: value for piece, value in body.items() if piece != "sweep"}
    points = body.get("sweep", [{}])

    def lists(setting: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [
            (piece, key)
            for piece, keys in sweepable.items()
            for key in keys
            if isinstance(setting.get(piece, {}).get(key), list)
        ]

    if "sweep" not in body and not lists(base):
        return None
    merged = [
        {piece: {**base.get(piece, {}), **point.get(piece, {})} for piece in {**base, **point}}
        for point in points
    ]
    count = sum(math.prod(len(m[p][k]) for p, k in lists(m)) for m in merged)
    if count > MAX_SWEEP_VARIANTS:
        raise ConfigError(
            f"regularizers.{name}: the sweep declares {count:,} variants; at most "
            f"{MAX_SWEEP_VARIANTS:,} are allowed (each one trains on every cell and seed)"
        )
    settings = []
    for setting in merged:
        swept = lists(setting)
        for values in itertools.product(*(setting[p][k] for p, k in swept)):
            variant = copy.deepcopy(setting)
            for (piece, key), value in zip(swept, values, strict=True):
                variant[piece][key] = value
            settings.append(variant)
    return settings


def _family(
    name: str, variants: Sequence[Mapping[str, Any]], sweepable: Mapping[str, Sequence[str]]
) -> tuple[dict[str, Any], list[Mapping[str, Any]]]:
    """The family of a sweep's resolved variants, and the variants, both in order of strength.

    The family holds the swept keys and each variant's name and swept values.

    Variants may differ in numbers only: a sweep is one technique at several
    strengths, which its dose-response curve and tuned comparison assume.
    """

    def shape(variant: Mapping[str, Any]) -> dict[str, Any]:
        return {
            piece: {k: v for k, v in body.items() if k not in sweepable.get(piece, ())}
            for piece, body in variant.items()
        }

    for index, variant in enumerate(variants[1:], start=2):
        if shape(variant) != shape(variants[0]):
            difference = _difference(shape(variants[0]), shape(variant))
            raise ConfigError(
                f"regularizers.{name}: the settings of a sweep may differ only in numbers "
                f"({', '.join(f'{p}.{k}' for p, keys in sweepable.items() for k in keys)}); "
                f"its setting {index} differs from its first in {difference}"
            )
    # In the schema's order, so that a name does not depend on the order keys are written in.
    paths = [
        (piece, key)
        for piece, keys in sweepable.items()
        for key in keys
        if key in variants[0].get(piece, {})
    ]
    swept = [(p, k) for p, k in paths if len({v[p][k] for v in variants}) > 1]
    if len(variants) < 2 or not swept:
        raise ConfigError(
            f"regularizers.{name}: the sweep gives a single setting; a sweep needs two or more "
            "(write one number without brackets for a regularizer that is not swept)"
        )
    values = [{f"{p}.{k}": v[p][k] for p, k in swept} for v in variants]
    names = [variant_name(name, v) for v in values]
    for index, derived in enumerate(names):
        if derived in names[:index]:
            raise ConfigError(
                f"regularizers.{name}: settings {names.index(derived) + 1} and {index + 1} of the "
                f"sweep are the same variant, {derived}; list each setting once"
            )
        _check_derived_name(name, derived)
    order = sorted(range(len(values)), key=lambda i: tuple(values[i].values()))
    family = {
        "swept": [f"{p}.{k}" for p, k in swept],
        "variants": [names[i] for i in order],
        "values": {names[i]: values[i] for i in order},
    }
    return family, [variants[i] for i in order]


def _difference(first: Mapping[str, Any], other: Mapping[str, Any]) -> str:
    """What differs between two sweep settings (numbers aside): a piece, or a piece's key."""
    for piece in dict.fromkeys([*first, *other]):
        if piece not in first or piece not in other:
            return f"{piece}, which only one of them has"
        for key in dict.fromkeys([*first[piece], *other[piece]]):
            if first[piece].get(key) != other[piece].get(key):
                return f"{piece}.{key}"
    return "its settings"


def _check_derived_name(family: str, name: str) -> None:
    """A derived name obeys the name rule, which only its length can break."""
    rule = _resolve(_schema()["$defs"]["name"], _schema())
    if len(name) > rule["maxLength"] or not re.fullmatch(rule["pattern"], name):
        raise ConfigError(
            f"regularizers.{family}: its variant name {quote(name)} is not a usable name; "
            f"names are {rule['description']}: shorten the sweep's name"
        )


def skip_reason(
    dataset: Mapping[str, Any], model: Mapping[str, Any], regularizer: Mapping[str, Any]
) -> str | None:
    """Say why a dataset x model x regularizer combination makes no sense, or None when it does."""
    if not is_image_dataset(dataset):
        if model["type"] == "cnn" or model.get("input") == "image":
            kind = "a CNN" if model["type"] == "cnn" else "a custom model for images"
            return (
                f"model {model['name']} is {kind} and needs image data; "
                f"dataset {dataset['name']} is tabular"
            )
        if "augmentation" in regularizer:
            return (
                f"regularizer {regularizer['name']} augments images; "
                f"dataset {dataset['name']} is tabular"
            )
    if model["type"] == "custom":
        return _custom_model_skip(model, regularizer)
    kinds = hidden_layer_kinds(model)
    for piece in PIECES:
        scope = regularizer.get(piece, {}).get("layers")
        if scope == "all" and not kinds:
            return (
                f"regularizer {regularizer['name']} puts its {piece} on hidden layers; "
                f"model {model['name']} has none (units: []), so it would equal the "
                "unregularized model"
            )
        if isinstance(scope, str) and scope not in ("all", INPUTS) and scope not in kinds:
            return (
                f"regularizer {regularizer['name']} puts its {piece} on {scope} layers; "
                f"model {model['name']} has none, so it would equal the unregularized model"
            )
    for piece in sorted(CONV_ONLY & regularizer.keys()):
        if "conv" not in kinds:
            return (
                f"regularizer {regularizer['name']} puts its {piece} on convolutional layers; "
                f"model {model['name']} has none"
            )
    return None


def _custom_model_skip(model: Mapping[str, Any], regularizer: Mapping[str, Any]) -> str | None:
    """Why a custom model cannot take a regularizer: pieces that insert layers into the model."""
    for piece in PIECES:
        if piece in INSERTED and regularizer.get(piece, {}).get("layers", INPUTS) != INPUTS:
            return (
                f"model {model['name']} is built by the study's own function, so regbench "
                f"cannot insert the {piece} layers of regularizer {regularizer['name']} into it "
                "(build them into the function instead)"
            )
    return None


def _grid(config: dict[str, Any]) -> tuple[list[RunKey], list[Skipped]]:
    runs: list[RunKey] = []
    skipped: list[Skipped] = []
    for dataset, dataset_body in config["datasets"].items():
        for model, model_body in config["models"].items():
            for regularizer, reg_body in config["regularizers"].items():
                reason = skip_reason(
                    {"name": dataset, **dataset_body},
                    {"name": model, **model_body},
                    {"name": regularizer, **reg_body},
                )
                if reason is not None:
                    skipped.append(Skipped(dataset, model, regularizer, reason))
                    continue
                runs.extend(RunKey(dataset, model, regularizer, s) for s in config["seeds"])
    return sorted(runs), skipped


def _check_semantics(config: dict[str, Any]) -> None:
    for section in ("datasets", "models", "regularizers"):
        folded: dict[str, str] = {}
        for name in config[section]:
            other = folded.setdefault(name.lower(), name)
            if other != name:
                raise ConfigError(
                    f"{section}: {other!r} and {name!r} differ only in case; on a "
                    "case-insensitive filesystem (macOS, Windows) their results would share "
                    "one folder: rename one"
                )
    if config["baseline"] in config["families"]:
        variants = ", ".join(config["families"][config["baseline"]]["variants"])
        raise ConfigError(
            f"baseline {config['baseline']!r} is a sweep; name one of its variants ({variants}) "
            "or a regularizer that is not swept"
        )
    if config["baseline"] not in config["regularizers"]:
        declared = ", ".join(sorted(config["regularizers"]))
        raise ConfigError(
            f"baseline {config['baseline']!r} is not a declared regularizer (declared: {declared})"
        )
    for name, body in config["datasets"].items():
        if body["source"] == "synthetic":
            params = body["synthetic"]
            if params["n_informative"] + params["n_redundant"] > params["n_features"]:
                raise ConfigError(
                    f"datasets.{name}.synthetic: n_informative + n_redundant "
                    f"({params['n_informative']} + {params['n_redundant']}) must not exceed "
                    f"n_features ({params['n_features']})"
                )
            # make_classification puts 2 clusters per class on corners of a hypercube
            # of n_informative dimensions, which has 2**n_informative of them.
            if params["n_classes"] * 2 > 2 ** params["n_informative"]:
                raise ConfigError(
                    f"datasets.{name}.synthetic: n_classes {params['n_classes']} x 2 clusters "
                    f"need more than the 2**n_informative = {2 ** params['n_informative']} "
                    "corners make_classification has; raise n_informative"
                )
        _check_url_source(name, body)
        split = body["split"]
        held_out = split["test"]
        if split["validation_mode"] in ("random", "last"):
            held_out += split["validation"] * (1 - split["test"])
        if held_out >= 1:
            raise ConfigError(f"datasets.{name}.split leaves no training data")
    for model, model_body in config["models"].items():
        if model_body["type"] == "custom":
            continue  # Its layers are known only once its function has built it.
        kinds = hidden_layer_kinds(model_body)
        activation = model_body["activation"]
        if isinstance(activation, list) and len(activation) != len(kinds):
            raise ConfigError(
                f"models.{model}.activation lists {len(activation)} activations but the model "
                f"has {len(kinds)} hidden layer(s): give one per hidden layer, or a single name"
            )
        pool = model_body.get("pool")
        if pool is not None and len(pool) != len(model_body.get("filters", [])):
            raise ConfigError(
                f"models.{model}.pool has {len(pool)} entries but filters has "
                f"{len(model_body.get('filters', []))}: give one per convolution block"
            )
        _check_piece_layers(config, model, kinds)


def _check_piece_layers(config: Mapping[str, Any], model: str, kinds: list[str]) -> None:
    """Check that each piece's ``layers`` exist in ``model`` and suit the piece."""
    for regularizer, reg_body in config["regularizers"].items():
        for piece in PIECES:
            if piece not in reg_body:
                continue
            where = f"regularizers.{regularizer}.{piece} (with model {model})"
            try:
                chosen = select_layers(reg_body[piece]["layers"], kinds, where)
            except ValueError as error:
                raise ConfigError(str(error)) from None
            dense = [i for i in chosen if kinds[i] != "conv"]
            if piece in CONV_ONLY and "conv" in kinds and dense:
                raise ConfigError(
                    f"{where}.layers: hidden layer {dense[0]} is dense; {piece} drops whole "
                    "feature maps, so it applies to convolutional layers only (layers: conv)"
                )


def _check_report(config: dict[str, Any]) -> None:
    """Check that the report judges metrics the comparisons compute; add a missing primary."""
    report = config["report"]
    named = [("report.primary", report["primary"])]
    named += [(f"report.metrics[{i}]", name) for i, name in enumerate(report["metrics"])]
    for where, name in named:
        if name not in HIGHER_IS_BETTER:
            raise ConfigError(
                f"{where}: {name!r} is not a metric the comparisons compute; "
                f"expected one of: {', '.join(HIGHER_IS_BETTER)}"
            )
    for name in report["smallest_effect"]:
        if name not in HIGHER_IS_BETTER:
            raise ConfigError(
                f"report.smallest_effect.{name}: not a metric the comparisons compute; "
                f"expected one of: {', '.join(HIGHER_IS_BETTER)}"
            )
    if report["primary"] not in report["metrics"]:
        report["metrics"] = [report["primary"], *report["metrics"]]


def _check_model_keys(config: Mapping[str, Any]) -> None:
    """Refuse keys a model of that type does not read (before defaults are filled in)."""
    for name, body in config["models"].items():
        custom_model = body["type"] == "custom"
        own = _CUSTOM_MODEL_KEYS if custom_model else _BUILT_IN_MODEL_KEYS
        stray = [key for key in body if key not in ("type", *own)]
        if stray:
            kind = "mlp and cnn models" if custom_model else "custom models"
            raise ConfigError(
                f"models.{name}: {', '.join(stray)} only apply to {kind}, not type {body['type']}"
            )


def _resolve_custom_models(config: dict[str, Any]) -> None:
    """Give custom models and pieces their defaults; keep only the keys they read.

    Arguments are handed to the study's function as written, except that
    "1e-3", which YAML 1.1 reads as text, becomes the number it means.
    """
    for body in config["models"].values():
        if body["type"] == "custom":
            for key in _BUILT_IN_MODEL_KEYS:
                body.pop(key, None)
            body["args"] = _numbers(body.get("args", {}))
            body.setdefault("input", "any")
    for body in config["regularizers"].values():
        if "custom" in body:
            body["custom"]["args"] = _numbers(body["custom"]["args"])


def _numbers(value: Any) -> Any:
    """``value`` with every text in scientific notation read as a float."""
    if isinstance(value, dict):
        return {key: _numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers(item) for item in value]
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(value):
        return float(value)
    return value


def _check_functions(
    config: Mapping[str, Any], code_dirs: Sequence[str | Path], runs: Sequence[RunKey]
) -> dict[str, str]:
    """Check every function the study names, in a child process; each module's source digest.

    A model function is tried on the input shape and classes of each dataset
    it trains on, where the dataset's spec says them (:mod:`regbench.shapes`).
    """
    items: list[dict[str, Any]] = []
    for name, body in config["models"].items():
        if body["type"] == "custom":
            inputs = []
            for dataset in dict.fromkeys(key.dataset for key in runs if key.model == name):
                known = known_data(config["datasets"][dataset])
                if known is not None:
                    inputs.append([list(known.example_shape), known.classes])
            items.append(
                {
                    "where": f"models.{name}",
                    "function": body["function"],
                    "args": body["args"],
                    "kind": "model",
                    "block": {"name": name, **body},
                    "inputs": [i for n, i in enumerate(inputs) if i not in inputs[:n]],
                }
            )
    for name, body in config["regularizers"].items():
        if "custom" in body:
            block = body["custom"]
            items.append(
                {
                    "where": f"regularizers.{name}.custom",
                    "function": block["function"],
                    "args": block["args"],
                    "kind": "penalty",
                    "block": block,
                    "touches": _touched_kinds(config, name, runs),
                }
            )
    if not items:
        return {}
    custom.use_study_path(code_dirs)
    try:
        return custom.check_all(items)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _touched_kinds(
    config: Mapping[str, Any], regularizer: str, runs: Sequence[RunKey]
) -> list[str]:
    """The kinds of hidden layer ("conv", "dense") a custom penalty reaches in the study's runs.

    A custom model's layers are known only once built; they count as dense.
    """
    block = config["regularizers"][regularizer]["custom"]
    kinds: set[str] = set()
    for model in {key.model for key in runs if key.regularizer == regularizer}:
        body = config["models"][model]
        if body["type"] == "custom":
            kinds.add("dense")
            continue
        hidden = hidden_layer_kinds(body)
        kinds |= {hidden[i] for i in select_layers(block["layers"], hidden, regularizer)}
    return sorted(kinds) or ["dense"]


def _check_tuning(config: dict[str, Any]) -> None:
    """Check that the tuned comparison chooses variants by a validation metric."""
    criterion = config["tuning"]["criterion"]
    if criterion in VALIDATION_METRICS and criterion not in TUNING_CRITERIA:
        raise ConfigError(
            f"tuning.criterion: {criterion!r} is read at another epoch than the tested "
            f"weights'; use {' or '.join(TUNING_CRITERIA)} (the tested weights' value)"
        )
    if criterion not in TUNING_CRITERIA:
        raise ConfigError(
            f"tuning.criterion: {criterion!r} is not a validation metric; expected one of: "
            f"{', '.join(TUNING_CRITERIA)} (no test-set number may choose a variant)"
        )


#: The training protocols a study may declare (``training.protocol``, as the schema
#: describes them): ``fixed`` trains every seed ``training.epochs`` epochs and tests its
#: last weights; ``plateau`` trains each seed until its validation data loss has not
#: improved for ``training.patience`` epochs and tests its best validation epoch's.
FIXED, PLATEAU = "fixed", "plateau"

#: The patience of protocol plateau when a study gives none: long enough that the
#: validation loss of a small network on a few hundred rows, which wanders from epoch to
#: epoch, is not taken for a plateau after a short stall.
DEFAULT_PATIENCE = 20

#: The improvement of the validation data loss (nats) that protocol plateau counts when a
#: study gives none: a confident model's validation loss can drift down by ever smaller
#: steps for hundreds of epochs with no change in what it predicts.
DEFAULT_MIN_DELTA = 0.001


def _check_protocol(config: dict[str, Any]) -> None:
    """Fill the plateau protocol's patience; refuse settings the protocol cannot honour."""
    training = config["training"]
    if training["protocol"] != PLATEAU:
        for key in ("patience", "min_delta"):
            if key in training:
                raise ConfigError(
                    f"training.{key} applies only to protocol plateau; "
                    f"this study's protocol is {training['protocol']}"
                )
        return
    training.setdefault("patience", DEFAULT_PATIENCE)
    training.setdefault("min_delta", DEFAULT_MIN_DELTA)
    for name, body in config["datasets"].items():
        if body["split"]["validation_mode"] == "test":
            raise ConfigError(
                f"datasets.{name}.split.validation_mode: test would let protocol plateau pick "
                "each seed's tested weights on the test split; hold out a validation split"
            )


def _only_declared(config: Mapping[str, Any], kind: str, where: str, name: str | None) -> str:
    """Return the named dataset or model, or the study's only one; else one clear error."""
    declared: list[str] = list(config[kind])
    singular = kind.removesuffix("s")
    if name is None:
        if len(declared) == 1:
            return declared[0]
        raise ConfigError(
            f"{where}: the study has several {kind} ({', '.join(declared)}); say which one "
            f"this value is from with {singular}: <name>"
        )
    if name not in declared:
        raise ConfigError(
            f"{where}.{singular}: {name!r} is not a declared {singular} "
            f"(declared: {', '.join(declared)})"
        )
    return name


def resolve_references(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per published value (dataset, model, regularizer, metric, value, source).

    Each ``references`` entry is keyed by a declared regularizer and may omit
    its dataset and model where the study declares only one. Raises a
    :class:`ConfigError` naming the entry for an undeclared or ambiguous name,
    an unknown metric, an entry without values, or two values for one cell
    and metric.
    """
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str, str]] = set()
    for regularizer, body in config.get("references", {}).items():
        if regularizer not in config["regularizers"]:
            raise ConfigError(
                f"references.{regularizer}: not a declared regularizer "
                f"(declared: {', '.join(config['regularizers'])})"
            )
        entries = body if isinstance(body, list) else [body]
        for index, entry in enumerate(entries):
            where = f"references.{regularizer}" + (f"[{index}]" if isinstance(body, list) else "")
            dataset = _only_declared(config, "datasets", where, entry.get("dataset"))
            model = _only_declared(config, "models", where, entry.get("model"))
            values = {k: v for k, v in entry.items() if k not in ("source", "dataset", "model")}
            unknown = [name for name in values if name not in REFERENCE_METRICS]
            if unknown or not values:
                problem = f"{unknown[0]!r} is not a metric" if unknown else "gives no metric"
                raise ConfigError(
                    f"{where}: {problem}; expected metric: value pairs with metrics from "
                    f"{', '.join(REFERENCE_METRICS)} (e.g. test_accuracy: 0.75)"
                )
            for metric, value in values.items():
                low, high = metric_range(metric)
                if not low <= value <= high:
                    raise ConfigError(
                        f"{where}.{metric}: {quote(value)} is outside the metric's range "
                        f"[{low:g}, {high:g}]" + (" (a share: 0.75, not 75)" if high == 1 else "")
                    )
                if (dataset, model, regularizer, metric) in seen:
                    raise ConfigError(
                        f"{where}: a second {metric} for dataset {dataset}, model {model}; "
                        "give each cell and metric one value"
                    )
                seen.add((dataset, model, regularizer, metric))
                rows.append(
                    {
                        "dataset": dataset,
                        "model": model,
                        "regularizer": regularizer,
                        "metric": metric,
                        "value": value,
                        "source": entry["source"],
                    }
                )
    return rows


def _check_references(config: dict[str, Any], runs: list[RunKey]) -> None:
    """Check every reference names a cell the study runs."""
    cells = {(key.dataset, key.model, key.regularizer) for key in runs}
    for row in resolve_references(config):
        cell = (row["dataset"], row["model"], row["regularizer"])
        if cell not in cells:
            raise ConfigError(
                f"references.{row['regularizer']}: dataset {row['dataset']} with model "
                f"{row['model']} is a combination this study skips, so it has no runs to check"
            )


def _check_url_source(name: str, body: Mapping[str, Any]) -> None:
    """Check a dataset's download settings, or that it has none when it is not downloaded."""
    where = f"datasets.{name}"
    if body["source"] != "url":
        stray = [key for key in _URL_KEYS if key in body]
        if stray:
            raise ConfigError(
                f"{where}: {', '.join(stray)} only apply to source url, not {body['source']}"
            )
        return
    try:
        file_name = cached_file_name(body["url"])
    except ValueError as error:
        raise ConfigError(f"{where}.url: {error}") from None
    try:
        check_sha256(body["sha256"])
    except ValueError as error:
        raise ConfigError(f"{where}.sha256: {error}") from None
    fmt = body["format"]
    for block, owner in _FORMAT_BLOCKS.items():
        if block in body and owner != fmt:
            raise ConfigError(f"{where}.{block}: only applies to format {owner}, not {fmt}")
    if fmt == "cifar" and not is_tarball(file_name):
        raise ConfigError(
            f"{where}.url: format cifar expects a tarball ({', '.join(TARBALL_SUFFIXES)}), "
            f"but the URL names {quote(file_name)}"
        )
    transform = body.get("csv", {}).get("target_transform")
    if transform is not None:
        try:
            parse_target_transform(transform)
        except ValueError as error:
            raise ConfigError(f"{where}.csv.target_transform: {error}") from None


@cache
def _schema() -> dict[str, Any]:
    text = resources.files("regbench").joinpath("config.schema.yaml").read_text("utf-8")
    return yaml.safe_load(text)  # type: ignore[no-any-return]  # the schema file is a mapping


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref``, keeping the referring schema's own keys."""
    while "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _apply_schema(value: Any, schema: dict[str, Any], root: dict[str, Any], *, fill: bool) -> Any:
    """Normalize numbers as the schema types them and, with ``fill``, add defaults.

    A ``number`` becomes a float and an ``integer`` written as ``2.0`` an int;
    "1e-3" (a string to YAML 1.1) becomes a number only where the schema
    expects one. Lists of unique integers (seeds, layer indices) are sorted,
    since their order means nothing.
    """
    schema = _resolve(schema, root)
    if "oneOf" in schema:
        branch = next(
            (
                b
                for b in map(lambda b: _resolve(b, root), schema["oneOf"])
                if (b.get("type") == "array") == isinstance(value, list)
            ),
            None,
        )
        return value if branch is None else _apply_schema(value, branch, root, fill=fill)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        result = {}
        if fill:
            for key, sub in properties.items():
                sub = _resolve(sub, root)
                if key not in value and "default" in sub:
                    result[key] = _apply_schema(copy.deepcopy(sub["default"]), sub, root, fill=fill)
        for key, item in value.items():
            sub = properties.get(key, schema.get("additionalProperties"))
            result[key] = (
                _apply_schema(item, sub, root, fill=fill) if isinstance(sub, dict) else item
            )
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = [_apply_schema(item, schema["items"], root, fill=fill) for item in value]
        if schema.get("uniqueItems") and all(type(item) is int for item in items):
            items.sort()
        return items
    kind = schema.get("type")
    if kind in ("number", "integer") and isinstance(value, str) and _SCIENTIFIC.fullmatch(value):
        value = float(value)
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        if not _is_finite(value):
            return value  # refused by the validator, which names the key
        number = float(value)
        return 0.0 if number == 0 else number  # -0.0 and 0.0 are the same setting
    return value


def _fill_validation_fraction(config: dict[str, Any]) -> None:
    """Give each dataset without its own validation fraction the training one.

    Settings written two ways are normalized too: ``split.vary: fixed`` is
    left out (it is the default) and a sha256 is lower-cased.
    With ``validation_mode: test`` no fraction is held out, so none is recorded:
    the spec (and the data card) must not claim a hold-out that does not exist.
    """
    fraction = config["training"]["validation_fraction"]
    for name, body in config["datasets"].items():
        if body["split"]["validation_mode"] == "test":
            if "validation" in body["split"]:
                raise ConfigError(
                    f"datasets.{name}.split.validation: no fraction is held out with "
                    "validation_mode test (the test split doubles as validation); remove it"
                )
        else:
            body["split"].setdefault("validation", fraction)
        if body["split"].get("vary") == "fixed":
            # The default, left out so that writing it reruns nothing (see varies_split).
            del body["split"]["vary"]
        if isinstance(body.get("sha256"), str):
            # The cache is keyed by the lower-case digest; upper case is the same file.
            body["sha256"] = body["sha256"].lower()


@cache
def _validator() -> jsonschema.protocols.Validator:
    """A Draft 2020-12 validator with two corrections to what Python's defaults let through.

    ``pattern`` is applied with :func:`re.fullmatch`: JSON Schema patterns follow
    ECMA-262, whose ``$`` is the end of the string, but Python's ``$`` also
    matches before a final newline, so ``"evil\\n"`` passed ``^[a-z]+$``. And a
    ``number`` must be finite: ``.nan`` passes every bound (comparisons with NaN
    are false), and ``.inf`` passes every lower one.
    """
    base = jsonschema.Draft202012Validator

    def full_pattern(
        validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[jsonschema.ValidationError]:
        if validator.is_type(instance, "string") and not re.fullmatch(pattern, instance):
            yield jsonschema.ValidationError(f"{quote(instance)} does not match {pattern!r}")

    def finite_number(checker: Any, instance: Any) -> bool:
        # Any int is a number, however large: were a huge one "not a number", every
        # bound (minimum, maximum) would skip it, as JSON Schema's bounds skip non-numbers.
        if isinstance(instance, float):
            return math.isfinite(instance)
        return bool(base.TYPE_CHECKER.is_type(instance, "number"))

    def float_sized_type(
        validator: Any, types: Any, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[jsonschema.ValidationError]:
        yield from base.VALIDATORS["type"](validator, types, instance, schema)
        kinds = [types] if isinstance(types, str) else list(types)
        # An int beyond the float range where a float goes: it would overflow to inf.
        huge_int = isinstance(instance, int) and not _is_finite(instance)
        if huge_int and "number" in kinds and "integer" not in kinds:
            yield jsonschema.ValidationError(f"{quote(instance)} is not a finite number")

    extended = jsonschema.validators.extend(
        base,
        validators={"pattern": full_pattern, "type": float_sized_type},
        type_checker=base.TYPE_CHECKER.redefine("number", finite_number),
    )
    return extended(_schema())


def _is_finite(number: object) -> bool:
    """Whether a value is a real number, finite as a float (a huge int overflows to inf).

    Not a complex number, which Snakemake's YAML loader builds from ``!!python/complex``.
    """
    if isinstance(number, int):
        return abs(number) <= sys.float_info.max
    return isinstance(number, float) and math.isfinite(number)


def _describe(error: jsonschema.ValidationError) -> str:
    """One line for one schema violation: where, the value (shortened), and what is allowed."""
    where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    validator = error.validator
    value = quote(error.instance)
    hint = error.schema.get("description", "").strip() if isinstance(error.schema, dict) else ""
    if validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed), key=str)
        expected = f"expected one of: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key(s) {', '.join(map(quote, extra[:10]))}; {expected}"
    if validator == "required":
        return f"{where}: {error.message}"
    if validator in ("pattern", "maxLength", "minLength") and "pattern" in error.schema:
        return f"{where}: {value} is not a usable name; expected {hint}"
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{where}: {value} is out of range; expected {_bounds(error.schema)}" + (
            f" ({hint})" if hint else ""
        )
    if validator in ("minProperties", "minItems"):
        return f"{where}: is empty; declare at least one entry"
    if validator == "enum":
        options = ", ".join(map(repr, error.validator_value))
        return f"{where}: {value} is not one of {options}"
    if validator == "type":
        if isinstance(error.instance, int | float) and not _is_finite(error.instance):
            return f"{where}: {value} is not a finite number; expected {_bounds(error.schema)}"
        return f"{where}: expected {error.validator_value}, got {value}"
    if validator == "oneOf":
        branch = _matching_branch_error(error)
        return _describe(branch) if branch else f"{where}: {value} is not valid here ({hint})"
    if validator == "uniqueItems":
        return f"{where}: has repeated entries {value}"
    return f"{where}: {quote(error.message)[1:-1]}"


def _matching_branch_error(error: jsonschema.ValidationError) -> jsonschema.ValidationError | None:
    """The first error of the ``oneOf`` branch meant for the value: its list branch for a list.

    A value that fails both branches of "a number or a list of numbers" is
    best told what is wrong with it as the kind of value it is: ``1.5`` out of
    range, not "not valid here". None where no single branch is meant.
    """
    branches = error.schema.get("oneOf", []) if isinstance(error.schema, dict) else []
    is_list = isinstance(error.instance, list)
    meant = [
        index
        for index, branch in enumerate(branches)
        if (_resolve(branch, _schema()).get("type") == "array") == is_list
    ]
    if len(meant) != 1:
        return None
    found = [e for e in error.context or () if e.relative_schema_path[0] == meant[0]]
    return min(found, key=lambda e: [str(p) for p in e.absolute_path], default=None)


def _bounds(schema: Mapping[str, Any]) -> str:
    """What a numeric schema allows, as "a number >= 0 and < 1"."""
    kind = "an integer" if schema.get("type") == "integer" else "a number"
    limits = [
        f"{symbol} {schema[keyword]}"
        for keyword, symbol in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
        )
        if keyword in schema
    ]
    return " ".join([kind, " and ".join(limits)]).strip()
