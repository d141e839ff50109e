"""Datasets: load, split and scale reproducibly, then write arrays and a data card.

A dataset comes from scikit-learn, from ``make_classification``, or from a URL.
A URL's file is downloaded once into a cache keyed by its sha256 (by
:func:`regbench.download.download`, which rule ``download_dataset`` calls) and
read from there by :func:`load_raw`; preparation itself never touches the
network. This module, :mod:`regbench.formats` and :mod:`regbench.inputs`
decide a prepared dataset, so their source is the digest rule
``prepare_dataset`` gets (:data:`regbench.fingerprint.PREPARATION_MODULES`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from regbench.config import varies_split
from regbench.download import DownloadError, download_path, safe_extract, verify_cached
from regbench.formats import DataError, read_cifar, read_csv, read_npz
from regbench.inputs import cached_file_name, extraction_folder

__all__ = [
    "DataError",
    "PreparedData",
    "RawData",
    "check_split_sizes",
    "combine_cards",
    "data_card",
    "load_prepared",
    "load_raw",
    "prepare",
    "prepare_files",
    "split_random_state",
    "write_prepared",
]

SPLITS = ("train", "val", "test")

#: What a card of one seed's split records besides a fixed split's card.
_SEED_FIELDS = ("split_seed", "split_random_state", "test_rows", "test_classes")


# scikit-learn is imported where it is used: the Snakefile imports this module to
# plan downloads, and importing scikit-learn there would cost every invocation a second.
_SKLEARN_LOADERS = ("breast_cancer", "iris", "wine", "digits")


@dataclass(frozen=True)
class RawData:
    """Features and integer labels as loaded, before any split.

    ``x_test``/``y_test`` are set when the source fixes its own test split
    (CIFAR-10's test batch); otherwise the test split is cut from ``x``/``y``.
    """

    x: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    source: str
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    test_source: str = ""


@dataclass(frozen=True)
class PreparedData:
    """Split and scaled arrays; ``x_*`` are float32, ``y_*`` integer class indices."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1


@dataclass(frozen=True)
class _Plan:
    """Which rows go where: indices into the raw arrays (the test ones into the test arrays)."""

    train: np.ndarray
    val: np.ndarray | None  # None: the test split doubles as validation
    test: np.ndarray
    train_pool: int
    test_pool: int


# --------------------------------------------------------------------------- loading


def load_raw(spec: Mapping[str, Any], cache: Path | None = None) -> RawData:
    """Load a dataset as its spec describes, images as (n, height, width, channels).

    A URL dataset is read from the download cache, where
    :func:`regbench.download.download` put it.
    Bad data raises :class:`DataError` naming the dataset and the file.
    """
    if spec["source"] == "sklearn":
        from sklearn import datasets as skdatasets

        if spec["loader"] not in _SKLEARN_LOADERS:
            raise ValueError(f"dataset {spec['name']}: unknown loader {spec['loader']!r}")
        bunch = getattr(skdatasets, f"load_{spec['loader']}")()
        x = bunch.images[..., np.newaxis] if spec["loader"] == "digits" else bunch.data
        return RawData(
            x=np.asarray(x, dtype=np.float64),
            y=np.asarray(bunch.target, dtype=np.int64),
            feature_names=[str(n) for n in getattr(bunch, "feature_names", [])],
            class_names=[str(n) for n in bunch.target_names],
            source=f"scikit-learn load_{spec['loader']}()",
        )
    if spec["source"] == "synthetic":
        from sklearn import datasets as skdatasets

        params = dict(spec["synthetic"])
        x, y = skdatasets.make_classification(**params)
        return RawData(
            x=x,
            y=y.astype(np.int64),
            feature_names=[f"x{i}" for i in range(x.shape[1])],
            class_names=[str(c) for c in range(params["n_classes"])],
            source="scikit-learn make_classification("
            + ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
            + ")",
        )
    if spec["source"] == "url":
        try:
            return _load_downloaded(spec, download_path(spec, cache))
        except (DataError, DownloadError) as error:
            raise DataError(f"dataset {spec['name']}: {error}") from None
    raise ValueError(f"dataset {spec['name']}: unknown source {spec['source']!r}")


def _load_downloaded(spec: Mapping[str, Any], path: Path) -> RawData:
    if not path.is_file():
        raise DataError(
            f"{path}: not downloaded yet; rule download_dataset (or "
            f"regbench.download.download) fetches it from {spec['url']}"
        )
    # Verified when it was downloaded; checked again here, where its bytes are used.
    verify_cached(path, spec["sha256"])
    source = f"{spec['url']} (sha256 {spec['sha256']}, format {spec['format']})"
    if spec["format"] == "csv":
        options = spec["csv"]
        x, y, features, classes = read_csv(
            path,
            target=options["target"],
            delimiter=options["delimiter"],
            header=options["header"],
            target_transform=options.get("target_transform"),
        )
        return RawData(x=x, y=y, feature_names=features, class_names=classes, source=source)
    if spec["format"] == "npz":
        keys = spec["npz"]
        x, y, features, classes = read_npz(path, x_key=keys["x"], y_key=keys["y"])
        return RawData(x=x, y=y, feature_names=features, class_names=classes, source=source)
    if spec["format"] == "cifar":
        # Normally unpacked by the download rule already; then this only checks the marker.
        folder = safe_extract(path, extraction_folder(path))
        x_train, y_train, x_test, y_test, classes = read_cifar(folder)
        # Images stay uint8 until scaling: 60,000 CIFAR images are 1.4 GB as float64.
        return RawData(
            x=x_train,
            y=y_train,
            feature_names=[],
            class_names=classes,
            source=source,
            x_test=x_test,
            y_test=y_test,
            test_source=f"the official CIFAR-10 test batch ({len(y_test)} images)",
        )
    raise ValueError(f"unknown format {spec['format']!r}")


# --------------------------------------------------------------------------- preparation


def prepare(spec: Mapping[str, Any], raw: RawData) -> PreparedData:
    """Split into train / validation / test with a fixed random state, then scale on train."""
    plan = _plan(spec, raw)
    x_test_all = raw.x if raw.x_test is None else raw.x_test
    y_test_all = raw.y if raw.y_test is None else raw.y_test
    val = plan.test if plan.val is None else plan.val
    x_val_all, y_val_all = (x_test_all, y_test_all) if plan.val is None else (raw.x, raw.y)
    x_train, x_val, x_test = _scale(
        spec["scaling"], raw.x[plan.train], x_val_all[val], x_test_all[plan.test]
    )
    return PreparedData(
        x_train=x_train,
        y_train=raw.y[plan.train],
        x_val=x_val,
        y_val=y_val_all[val],
        x_test=x_test,
        y_test=y_test_all[plan.test],
    )


def split_random_state(split: Mapping[str, Any]) -> int:
    """The random state a dataset's split is drawn with.

    ``split.random_state`` for a fixed split. With ``vary: seed``, the split of
    seed ``s`` (``split.seed``, set for each seed's preparation) is drawn with
    the first 32-bit word numpy's ``SeedSequence([random_state, s])``
    generates: reproducible, one per seed, and unrelated to the fixed split's
    (so a study that runs a dataset both ways compares independent splits).
    """
    if not varies_split({"split": split}):
        return int(split["random_state"])
    words = np.random.SeedSequence([int(split["random_state"]), int(split["seed"])])
    return int(words.generate_state(1, np.uint32)[0])


def check_split_sizes(
    spec: Mapping[str, Any], rows: int, test_rows: int | None, classes: int
) -> None:
    """Refuse a split that cannot be made from ``rows`` rows of ``classes`` classes.

    Walks the steps of the split as :func:`prepare` takes them (test split,
    subsamples, validation hold-out), with scikit-learn's rounding: a fraction
    ``f`` of ``n`` rows holds out ``ceil(f * n)``, and a stratified split needs
    at least one row per class on either side. The study's loading asks this
    with the counts a spec implies (:func:`regbench.shapes.known_data`), and preparation with
    the data's own, so both refuse alike; the DataError names the key at fault.
    """
    where = f"datasets.{spec['name']}"
    split = spec["split"]
    stratified = bool(split["stratify"])

    def cut(key: str, what: str, pool: int, held_out: int, least: int) -> None:
        if min(pool - held_out, held_out) < least:
            need = f"at least {least} row(s) on each side" + (
                f" (one per class, {classes} classes)" if least > 1 else ""
            )
            raise DataError(
                f"{where}.{key}: the {what} of {pool} rows keeps {pool - held_out} and holds out "
                f"{held_out}; it needs {need}"
            )

    least = classes if stratified else 1
    if test_rows is None:
        held_out = math.ceil(split["test"] * rows)
        cut("split.test", "test split", rows, held_out, least)
        train, test = rows - held_out, held_out
    else:
        train, test = rows, test_rows
    subsample = spec.get("subsample", {})
    for which in ("train", "test"):
        size = subsample.get(which)
        pool = train if which == "train" else test
        if size is not None and size < pool:
            # Subsamples are always stratified.
            cut(f"subsample.{which}", "stratified subsample", pool, pool - size, classes)
            train, test = (size, test) if which == "train" else (train, size)
    if split["validation_mode"] == "last" and train < 2:
        raise DataError(
            f"{where}.split.validation: {train} training row(s) cannot be cut into a training "
            "and a validation part"
        )
    if split["validation_mode"] == "random":
        held_out = math.ceil(split["validation"] * train)
        cut("split.validation", "validation split", train, held_out, least)


def _plan(spec: Mapping[str, Any], raw: RawData) -> _Plan:
    """Decide the split (test, optional subsamples, validation); indices only, no copies.

    Everything is drawn with :func:`split_random_state`, except the subsample of
    an official test set: that test set is kept as it is for every seed.
    """
    split = spec["split"]
    labels = raw.y if raw.y_test is None else np.concatenate([raw.y, raw.y_test])
    check_split_sizes(
        spec, len(raw.y), None if raw.y_test is None else len(raw.y_test), len(np.unique(labels))
    )
    seed = split_random_state(split)
    subsample = spec.get("subsample", {})
    name = spec["name"]
    if raw.y_test is None:
        train, test = _split(
            name,
            "test split",
            np.arange(len(raw.y)),
            raw.y,
            split["test"],
            seed,
            split["stratify"],
        )
        test_labels = raw.y
    else:
        train, test = np.arange(len(raw.y)), np.arange(len(raw.y_test))
        test_labels = raw.y_test
    held_out_val: np.ndarray | None = None
    if split["validation_mode"] == "held_out":
        if raw.y_test is not None:
            raise DataError(
                f"dataset {name}: split.validation_mode held_out cuts validation from the "
                "held-out rows, but this dataset comes with its own test set; use random or last"
            )
        # As a notebook that holds out split.test of the rows and splits that part again
        # with the same random state: train_test_split keeps the validation share first.
        held_out_val, test = _split(
            name,
            "validation split",
            test,
            raw.y,
            1.0 - split["validation"],
            seed,
            split["stratify"],
        )
    train_pool, test_pool = len(train), len(test)
    test_seed = seed if raw.y_test is None else split["random_state"]
    train = _subsample(name, "train", train, raw.y, subsample.get("train"), seed)
    test = _subsample(name, "test", test, test_labels, subsample.get("test"), test_seed)

    val: np.ndarray | None
    if split["validation_mode"] == "test":
        val = None
    elif held_out_val is not None:
        val = held_out_val
    elif split["validation_mode"] == "last":
        # Keras's validation_split trains on the first floor(n * (1 - fraction)) rows,
        # unshuffled, and validates on the rest; here neither part may be empty.
        split_at = math.floor(len(train) * (1.0 - split["validation"]))
        split_at = min(max(1, split_at), len(train) - 1)
        train, val = train[:split_at], train[split_at:]
    else:
        train, val = _split(
            name,
            "validation split",
            train,
            raw.y,
            split["validation"],
            seed,
            split["stratify"],
        )
    return _Plan(train=train, val=val, test=test, train_pool=train_pool, test_pool=test_pool)


def _split(
    name: str,
    what: str,
    indices: np.ndarray,
    labels: np.ndarray,
    fraction: float,
    seed: int,
    stratify: bool,
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    try:
        kept, held_out = train_test_split(
            indices,
            test_size=fraction,
            random_state=seed,
            stratify=labels[indices] if stratify else None,
        )
    except ValueError as error:
        raise DataError(
            f"dataset {name}: cannot make the {what} ({fraction:g} of {len(indices)} rows"
            f"{', stratified' if stratify else ''}): {error}"
        ) from None
    return kept, held_out


def _subsample(
    name: str, which: str, indices: np.ndarray, labels: np.ndarray, size: int | None, seed: int
) -> np.ndarray:
    """A stratified, seeded subsample of ``size`` indices; all of them when there are no more."""
    if size is None or size >= len(indices):
        return indices
    from sklearn.model_selection import train_test_split

    try:
        kept, _ = train_test_split(
            indices, train_size=size, random_state=seed, stratify=labels[indices]
        )
    except ValueError as error:
        raise DataError(
            f"dataset {name}: cannot draw a stratified subsample.{which} of {size} from "
            f"{len(indices)} rows: {error}"
        ) from None
    return np.asarray(kept)


def _scale(
    method: str, train: np.ndarray, val: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if method in ("max", "none"):
        # Dividing by 1 leaves every float32 exactly as it is: "none" only converts.
        top = np.float32(1.0)
        if method == "max":
            top = np.float32(np.abs(train).max()) or top
        train, val, test = (np.asarray(a, dtype=np.float32) / top for a in (train, val, test))
        return train, val, test
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    scaler = StandardScaler() if method == "standard" else MinMaxScaler()
    shape = train.shape[1:]
    scaler.fit(train.reshape(len(train), -1))
    return tuple(
        scaler.transform(a.reshape(len(a), -1)).reshape((len(a), *shape)).astype(np.float32)
        for a in (train, val, test)
    )


# --------------------------------------------------------------------------- data card


def data_card(spec: Mapping[str, Any], raw: RawData, data: PreparedData) -> dict[str, Any]:
    """A small description of the prepared data for the report, caveats spelled out in notes."""
    labels = raw.y if raw.y_test is None else np.concatenate([raw.y, raw.y_test])
    counts = np.bincount(labels, minlength=len(raw.class_names))
    plan = _plan(spec, raw)
    split = spec["split"]
    notes = [_label_note(len(raw.class_names))]
    if raw.y_test is not None:
        notes.append(
            f"Test split: {raw.test_source}; split.test is not used, and training and "
            f"validation come from the {len(raw.y)} training images."
        )
    varied = varies_split(spec)
    if varied:
        notes.append(_varied_note(split, raw))
    subsampled = {}
    for which, pool, kept in (
        ("train", plan.train_pool, len(plan.train) + (0 if plan.val is None else len(plan.val))),
        ("test", plan.test_pool, len(plan.test)),
    ):
        if kept < pool:
            subsampled[which] = {"kept": kept, "of": pool}
            # Each seed's card carries the same notes: they are shown once per dataset.
            per_seed = varied and (which == "train" or raw.y_test is None)
            state = "of each seed's split" if per_seed else split["random_state"]
            notes.append(
                f"Subsampled: {kept} of {pool} {which} rows kept (stratified by class, "
                f"random_state {state})"
                + (", before the validation hold-out." if which == "train" else ".")
            )
    if split["validation_mode"] == "test":
        notes.append(
            "Validation = test: no hold-out was kept, so validation scores are test scores "
            "and are not an independent estimate (early stopping would select on the test set)."
        )
    card: dict[str, Any] = {
        "name": spec["name"],
        "description": spec.get("description", ""),
        "source": raw.source,
        "kind": "image" if raw.x.ndim == 4 else "tabular",
        "rows": len(labels),
        "features": int(np.prod(raw.x.shape[1:])),
        "input_shape": [int(d) for d in raw.x.shape[1:]],
        "classes": len(raw.class_names),
        "class_names": raw.class_names,
        "class_balance": {
            name: round(float(c) / len(labels), 4)
            for name, c in zip(raw.class_names, counts, strict=True)
        },
        "split_sizes": {
            "train": len(data.y_train),
            "validation": len(data.y_val),
            "test": len(data.y_test),
        },
        "split": dict(split),
        "validation": _validation_text(split),
        "subsampled": subsampled,
        "scaling": spec["scaling"],
        "notes": notes,
    }
    if varied:
        card.update(_seed_fields(split, raw, plan, data))
    if spec["source"] == "url":
        card["download"] = {
            "url": spec["url"],
            "sha256": spec["sha256"],
            "file": cached_file_name(spec["url"]),
        }
    return card


def _validation_text(split: Mapping[str, Any]) -> str:
    """Where the validation split comes from, in words."""
    if split["validation_mode"] == "test":
        return "the test split (validation = test)"
    if split["validation_mode"] == "last":
        return (
            f"the last {split['validation']:.1%} of the training split, unshuffled "
            "(Keras validation_split)"
        )
    if split["validation_mode"] == "held_out":
        return (
            f"a random {'stratified ' if split['stratify'] else ''}{split['validation']:.1%} "
            f"of the {split['test']:.0%} held out, the rest being the test split"
        )
    return (
        f"a random {'stratified ' if split['stratify'] else ''}"
        f"{split['validation']:.1%} of the training split"
    )


def _seed_fields(
    split: Mapping[str, Any], raw: RawData, plan: _Plan, data: PreparedData
) -> dict[str, Any]:
    """What the card of one seed's split adds: which seed, its random state, its test set."""
    counts = np.bincount(data.y_test, minlength=len(raw.class_names))
    return {
        "split_seed": int(split["seed"]),
        "split_random_state": split_random_state(split),
        # Which rows are the test set, in a few characters: equal digests, equal test sets.
        "test_rows": hashlib.sha256(np.sort(plan.test).astype("<i8").tobytes()).hexdigest()[:12],
        "test_classes": {name: int(c) for name, c in zip(raw.class_names, counts, strict=True)},
    }


def _varied_note(split: Mapping[str, Any], raw: RawData) -> str:
    """How each seed's split is drawn, the same words on every seed's card."""
    varied = "training and validation" if raw.y_test is not None else "the whole split"
    kept = "; the official test set is the same for every seed" if raw.y_test is not None else ""
    return (
        f"Split per seed (split.vary: seed): seed s draws {varied} with random_state "
        f"SeedSequence([{split['random_state']}, s]).generate_state(1)[0] (numpy){kept}."
    )


def combine_cards(cards: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """One card per dataset, by name: a fixed split's card, or its seeds' cards in one.

    A dataset whose seeds draw their own splits has one card per seed. Their
    common part becomes the dataset's card, ``split_sizes`` the smallest size
    of each part over the seeds (they are equal: a split's sizes depend only on
    the number of rows and the fractions), and ``seeds`` lists each seed's
    random state, split sizes, test rows (a digest) and test classes.
    """
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for card in cards:
        grouped.setdefault(str(card["name"]), []).append(card)
    combined = {}
    for name, group in grouped.items():
        if "split_seed" not in group[0]:
            combined[name] = dict(group[0])
            continue
        group = sorted(group, key=lambda card: int(card["split_seed"]))
        first = group[0]
        card = {k: v for k, v in first.items() if k not in _SEED_FIELDS}
        card["split"] = {k: v for k, v in first["split"].items() if k != "seed"}
        card["split_sizes"] = {
            part: min(int(one["split_sizes"][part]) for one in group)
            for part in first["split_sizes"]
        }
        card["seeds"] = [
            {
                "seed": one["split_seed"],
                "random_state": one["split_random_state"],
                "split_sizes": one["split_sizes"],
                "test_rows": one["test_rows"],
                "test_classes": one["test_classes"],
            }
            for one in group
        ]
        combined[name] = card
    return combined


def _label_note(n_classes: int) -> str:
    if n_classes == 2:
        return (
            "Labels: 0/1, one sigmoid output trained with binary cross-entropy (the same "
            "loss as a two-way softmax on one-hot labels)."
        )
    return (
        "Labels: integer class indices trained with sparse categorical cross-entropy, "
        "which is mathematically the same loss as one-hot labels with categorical "
        "cross-entropy (the one-hot matrix is just never built)."
    )


# --------------------------------------------------------------------------- files


def prepare_files(spec: Mapping[str, Any], npz: Path, card_path: Path) -> dict[str, Any]:
    """Load, split and scale one dataset; write its arrays and data card; return the card."""
    raw = load_raw(spec)
    data = prepare(spec, raw)
    card = data_card(spec, raw, data)
    write_prepared(data, card, npz, card_path)
    return card


def write_prepared(data: PreparedData, card: Mapping[str, Any], npz: Path, card_path: Path) -> None:
    """Write the arrays (compressed npz) and the card (JSON)."""
    np.savez_compressed(
        npz,
        **{f"{axis}_{part}": getattr(data, f"{axis}_{part}") for part in SPLITS for axis in "xy"},
    )
    card_path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_prepared(npz: Path) -> PreparedData:
    """Read arrays written by :func:`write_prepared`."""
    with np.load(npz) as arrays:
        return PreparedData(**{name: arrays[name] for name in arrays.files})
