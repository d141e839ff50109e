"""Everything checked before any job runs, asked in one call: the study as Snakemake read it.

``rules/common.smk`` calls :func:`load_checked` once. It refuses, with one
:class:`regbench.config.ConfigError` whose message starts with where the
fault is (the study file, or ``--config <key>`` for a value given on the
command line):

- a key given twice in a study file (:func:`regbench.config.check_unique_keys`);
- anything :func:`regbench.config.load_study` refuses (the schema, its
  bounds, the semantic rules, and the study's own functions, checked in a
  child process with a time limit: :func:`regbench.custom.check_all`);
- a split a dataset cannot make (:func:`regbench.datasets.check_split_sizes`,
  which preparation asks too);
- a cached download whose bytes no longer have the study's sha256
  (:func:`regbench.download.verify_cached`, which preparation asks too).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from regbench.config import ConfigError, Study, check_unique_keys, load_study
from regbench.datasets import DataError, check_split_sizes
from regbench.download import DownloadError, download_path, file_sha256, verify_cached
from regbench.shapes import known_data

__all__ = ["load_checked", "typed_overrides"]

# The key path a message starts with ("seeds.1: ...", "baseline 'x' is ...").
_KEY_PATH = re.compile(r"\s*(?:- )?([A-Za-z_][\w.-]*)")


def load_checked(
    config: Mapping[str, Any],
    files: Sequence[str | Path],
    overrides: Mapping[str, Any] | None = None,
    cache: Path | None = None,
) -> Study:
    """The validated study, or one ConfigError naming the file (or ``--config``) and the key.

    ``config`` is what Snakemake read: the ``files`` merged, then ``overrides``
    (its ``--config`` values) on top. Snakemake reads values inside a
    ``--config`` list or mapping as text ("[0, 1]" gives "0" and "1"); they
    are read as YAML would read them in a file (:func:`typed_overrides`).
    """
    overrides = dict(overrides or {})
    label = ", ".join(map(str, files)) or "config"
    for path in files:
        try:
            check_unique_keys(Path(path).read_text(encoding="utf-8"))
        except OSError:
            continue  # Snakemake read it a moment ago; it says what went wrong, if anything.
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
    raw = _merged(config, typed_overrides(overrides))
    try:
        study = load_study(raw, code_dirs=[Path(f).resolve().parent for f in files])
    except ConfigError as error:
        raise ConfigError(f"{_source(str(error), label, overrides)}: {error}") from None
    for name in study.datasets:
        spec = study.dataset_spec(name)
        where = _source(f"datasets.{name}", label, overrides)
        known = known_data(spec)
        if known is not None:
            try:
                # Every seed's split has the same sizes; the one of the first stands for all.
                check_split_sizes(spec, known.rows, known.test_rows, known.classes)
            except DataError as error:
                raise ConfigError(f"{where}: {error}") from None
        if spec["source"] == "url":
            path = download_path(spec, cache)
            if path.is_file():
                try:
                    verify_cached(path, spec["sha256"])
                except DownloadError:
                    actual, expected = file_sha256(path)[:12], spec["sha256"][:12]
                    raise ConfigError(
                        f"{where}: datasets.{name}: {path} edited since download (sha256 "
                        f"{actual}…, expected {expected}…); delete it to fetch it again"
                    ) from None
    return study


def typed_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``--config`` values with the text inside lists and mappings read as YAML reads a file."""

    def typed(value: Any, inside: bool) -> Any:
        if isinstance(value, Mapping):
            return {key: typed(item, True) for key, item in value.items()}
        if isinstance(value, list):
            return [typed(item, True) for item in value]
        if inside and isinstance(value, str):
            try:
                read = yaml.safe_load(value)
            except yaml.YAMLError:
                return value
            return read if isinstance(read, int | float | bool) or read is None else value
        return value

    return {key: typed(value, False) for key, value in overrides.items()}


def _merged(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``top`` merged in, mappings key by key (as Snakemake merges ``--config``)."""
    merged = dict(base)
    for key, value in top.items():
        old = merged.get(key)
        both = isinstance(old, Mapping) and isinstance(value, Mapping)
        merged[key] = _merged(old, value) if both else value  # type: ignore[arg-type]  # both: mappings
    return merged


def _source(message: str, label: str, overrides: Mapping[str, Any]) -> str:
    """Where a message's key came from: ``--config <key>`` when the command line gave it."""
    found = _KEY_PATH.match(message.splitlines()[-1] if "problem(s)" in message else message)
    if found is None:
        return label
    path = found[1].split(".")
    for given in _paths(overrides):
        common = min(len(given), len(path))
        if given[:common] == path[:common]:
            return f"--config {'.'.join(given)}"
    return label


def _paths(overrides: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[list[str]]:
    """The key path of every value ``--config`` gave (a mapping's leaves, a list as one)."""
    paths: list[list[str]] = []
    for key, value in overrides.items():
        if isinstance(value, Mapping) and value:
            paths.extend(_paths(value, (*prefix, str(key))))
        else:
            paths.append([*prefix, str(key)])
    return paths
