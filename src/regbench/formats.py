"""Read downloaded or local data files into arrays, with one clear error per bad input.

The tabular readers return ``(x, y, feature_names, class_names)`` with ``x`` as
float32 of shape ``(n_samples, n_features)`` and ``y`` as int64 class indices into
``class_names``. Every problem with a file raises :class:`DataError`, whose
message names the file (and the column or line where that helps) and says what
was expected. Nothing here evaluates text from a file or a config.
"""

from __future__ import annotations

import csv
import io
import operator
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from regbench.inputs import parse_target_transform, quote

__all__ = [
    "CIFAR_FOLDER",
    "DataError",
    "read_cifar",
    "read_csv",
    "read_npz",
]

FloatArray = npt.NDArray[np.float32]
LabelArray = npt.NDArray[np.int64]
ImageArray = npt.NDArray[np.uint8]
Table = tuple[FloatArray, LabelArray, list[str], list[str]]

#: The folder inside the CIFAR-10 python tarball that holds the batches.
CIFAR_FOLDER = "cifar-10-batches-py"

# Cell texts read as missing values rather than as numbers or labels.
_MISSING = frozenset({"", "?", "na", "n/a", "nan", "null", "none"})
_DELIMITER_CANDIDATES = (",", ";", "\t", "|", ":", " ")
_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
_NEGATIONS = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!="}
_CIFAR_SIDE = 32
_CIFAR_PIXELS = 3 * _CIFAR_SIDE * _CIFAR_SIDE


class DataError(ValueError):
    """A data file is unreadable or not what was expected; the message names the file."""


# --------------------------------------------------------------------------- CSV


def read_csv(
    path: Path | str,
    *,
    target: str,
    delimiter: str = ",",
    header: bool = True,
    target_transform: str | None = None,
) -> Table:
    """Read a delimited text file whose columns are numeric features and one target column.

    Without a header the columns are named ``"0"``, ``"1"``, ... and ``target`` is one
    of those names. ``target_transform`` is ``"<op> <number>"`` with op one of
    ``>=, >, <=, <, ==``: the target becomes 1 where the comparison holds and 0
    elsewhere (``">= 6"`` turns wine quality into good/not good). Without it the
    target's distinct values become 0..k-1 in sorted order (numeric order when all
    are numbers) and ``class_names`` are their string forms. Blank lines are skipped;
    ``""``, ``?``, ``NA``, ``NaN``, ``null`` and ``None`` count as missing values.

    Raises:
        DataError: the file is missing or empty, the delimiter is wrong, the target
            column is absent, a feature value is missing or not a finite number, or
            the target yields a single class.
    """
    path = Path(path)
    comparison = None
    if target_transform is not None:
        try:
            comparison = parse_target_transform(target_transform)
        except ValueError as error:
            raise DataError(f"target_transform {error}") from None
    if len(delimiter) != 1:
        raise DataError(f"{path}: delimiter must be a single character, got {delimiter!r}")
    names, data_rows = _table(path, delimiter, header, target)
    lines = [line for line, _ in data_rows]
    columns = {
        name: [row[index].strip() for _, row in data_rows] for index, name in enumerate(names)
    }
    _check_missing(path, columns, lines)

    feature_names = [name for name in names if name != target]
    features = [_numeric_column(path, name, columns[name], lines) for name in feature_names]
    x = np.column_stack(features).astype(np.float32)
    _check_float32(path, x, feature_names, lines)
    if comparison is None:
        y, class_names = _encode_labels(path, target, columns[target])
    else:
        values = _numeric_column(path, target, columns[target], lines)
        y, class_names = _threshold_labels(path, target, values, comparison)
    return x, y, feature_names, class_names


def _table(
    path: Path, delimiter: str, header: bool, target: str
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The column names and the data rows (with their line numbers), checked for shape."""
    text = _read_text(path)
    rows = _csv_rows(path, text, delimiter)
    if not rows:
        raise DataError(f"{path}: the file is empty; expected a header line and data rows")
    width = len(rows[0][1])
    if width == 1:
        raise DataError(_single_column_message(path, text, delimiter, target))
    if header:
        names = [name.strip() for name in rows[0][1]]
        _check_column_names(path, names)
        data_rows = rows[1:]
    else:
        names = [str(index) for index in range(width)]
        data_rows = rows
    if not data_rows:
        raise DataError(f"{path}: the file has a header but no data rows")
    for line, row in data_rows:
        if len(row) != width:
            raise DataError(
                f"{path}, line {line}: {len(row)} fields with delimiter {delimiter!r}, "
                f"expected {width} like the first line"
            )
    if target not in names:
        available = ", ".join(repr(name) for name in names)
        raise DataError(f"{path}: no target column {target!r}; available columns: {available}")
    return names, data_rows


def _threshold_labels(
    path: Path, target: str, values: npt.NDArray[np.float64], comparison: tuple[str, str]
) -> tuple[LabelArray, list[str]]:
    """0/1 labels from ``<target> <op> <number>``, refusing a target that gives one class."""
    op, threshold_text = comparison
    y = _COMPARISONS[op](values, float(threshold_text)).astype(np.int64)
    class_names = [
        f"{target} {_NEGATIONS[op]} {threshold_text}",
        f"{target} {op} {threshold_text}",
    ]
    present = np.unique(y)
    if len(present) < 2:
        raise DataError(
            f"{path}: target {target!r} with transform '{op} {threshold_text}' gives a single "
            f"class ({class_names[int(present[0])]!r}) for all {len(y)} rows; "
            "expected both classes"
        )
    return y, class_names


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not UTF-8 text (undecodable byte at offset {error.start}); "
            "expected a delimited text file"
        ) from None
    except OSError as error:
        raise DataError(f"{path}: cannot read the file: {error.strerror or error}") from None


def _csv_rows(path: Path, text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """Return the non-blank rows with the line number each starts on."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, list[str]]] = []
    previous_end = 0
    try:
        for row in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if any(cell.strip() for cell in row):
                rows.append((start, row))
    except csv.Error as error:
        raise DataError(
            f"{path}, line {reader.line_num}: not valid delimited text: {error}"
        ) from None
    return rows


def _single_column_message(path: Path, text: str, delimiter: str, target: str) -> str:
    """Explain a file that parsed as one column, suggesting the delimiter it seems to use."""
    sample = [line for line in text.splitlines() if line.strip()][:20]
    for candidate in _DELIMITER_CANDIDATES:
        if candidate == delimiter:
            continue
        widths = {len(row) for row in csv.reader(sample, delimiter=candidate)}
        if len(widths) == 1 and widths.pop() > 1:
            return (
                f"{path}: every line parsed as a single column with delimiter {delimiter!r}; "
                f"the file looks {candidate!r}-separated (pass delimiter={candidate!r})"
            )
    return (
        f"{path}: the file parsed as a single column with delimiter {delimiter!r}; expected "
        f"feature columns and the target column {target!r}"
    )


def _check_column_names(path: Path, names: list[str]) -> None:
    for index, name in enumerate(names):
        if not name:
            raise DataError(f"{path}: header column {index + 1} has no name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        listed = ", ".join(repr(name) for name in duplicates)
        raise DataError(f"{path}: duplicate column names in the header: {listed}")


def _check_missing(path: Path, columns: dict[str, list[str]], lines: list[int]) -> None:
    """Refuse missing values, listing every affected column with its count and first line."""
    problems = []
    for name, values in columns.items():
        missing = [index for index, value in enumerate(values) if value.lower() in _MISSING]
        if missing:
            problems.append(
                f"column {name!r}: {len(missing)} missing (first on line {lines[missing[0]]})"
            )
    if problems:
        raise DataError(
            f"{path}: missing values in {'; '.join(problems)}; expected a value in every cell "
            "(drop or impute them before reading)"
        )


def _numeric_column(
    path: Path, name: str, values: list[str], lines: list[int]
) -> npt.NDArray[np.float64]:
    """Convert one column to float64, naming the first offending value and its line."""
    try:
        converted = np.array(values, dtype=np.float64)
    except ValueError:
        bad = [index for index, value in enumerate(values) if not _is_number(value)]
        first = bad[0]
        raise DataError(
            f"{path}: column {name!r} must be numeric, but line {lines[first]} has "
            f"{values[first]!r} ({len(bad)} non-numeric value(s) in this column)"
        ) from None
    infinite = np.flatnonzero(~np.isfinite(converted))
    if infinite.size:
        first = int(infinite[0])
        raise DataError(
            f"{path}: column {name!r} must hold finite numbers, but line {lines[first]} has "
            f"{values[first]!r}"
        )
    return converted


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_float32(path: Path, x: FloatArray, feature_names: list[str], lines: list[int]) -> None:
    overflow = np.argwhere(~np.isfinite(x))
    if overflow.size:
        row, column = (int(index) for index in overflow[0])
        raise DataError(
            f"{path}: column {feature_names[column]!r} on line {lines[row]} is too large "
            "for float32"
        )


def _encode_labels(path: Path, target: str, values: list[str]) -> tuple[LabelArray, list[str]]:
    """Map distinct target values to 0..k-1 in sorted order (numeric order when all are numbers)."""
    if all(_is_number(value) for value in values):
        numbers = np.array(values, dtype=np.float64)
        distinct, codes = np.unique(numbers, return_inverse=True)
        class_names = [_format_number(float(value)) for value in distinct]
    else:
        distinct_text, codes = np.unique(np.array(values, dtype=str), return_inverse=True)
        class_names = [str(value) for value in distinct_text]
    if len(class_names) < 2:
        raise DataError(
            f"{path}: target {target!r} has the single value {class_names[0]!r} in all "
            f"{len(values)} rows; expected at least two classes"
        )
    return codes.astype(np.int64).reshape(-1), class_names


def _format_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


# --------------------------------------------------------------------------- NPZ


def read_npz(path: Path | str, *, x_key: str = "x", y_key: str = "y") -> Table:
    """Read features and labels from an ``.npz`` archive, never unpickling anything.

    ``x`` has shape ``(n_samples, ...)`` and any numeric dtype; ``y`` holds one
    label per sample (integers or strings; an ``(n, 1)`` column is accepted). Labels
    become 0..k-1 in sorted order with their string forms as class names, unless the
    archive has a ``class_names`` array, in which case ``y`` must already index it.
    Feature names come from a ``feature_names`` array if present, else they are
    ``feature_0``, ... for 2-D ``x`` and empty for images.

    Raises:
        DataError: the file is not a readable ``.npz``, a key is missing, an array
            holds Python objects, is not numeric or not finite, or the lengths differ.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a readable .npz archive ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single array; expected an .npz archive with named arrays")
    with archive:
        available = list(archive.files)
        x_raw = _npz_array(path, archive, x_key, available)
        y_raw = _npz_array(path, archive, y_key, available)
        names_raw = (
            _npz_array(path, archive, "class_names", available)
            if "class_names" in available
            else None
        )
        features_raw = (
            _npz_array(path, archive, "feature_names", available)
            if "feature_names" in available
            else None
        )

    if x_raw.ndim < 2 or x_raw.shape[0] == 0:
        raise DataError(
            f"{path}: array {x_key!r} has shape {x_raw.shape}; expected (n_samples, ...) "
            "with at least one sample"
        )
    if x_raw.dtype.kind not in "biuf":
        raise DataError(f"{path}: array {x_key!r} has dtype {x_raw.dtype}; expected numbers")
    x = x_raw.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: array {x_key!r} holds NaN or infinite values (as float32)")
    if y_raw.ndim == 2 and y_raw.shape[1] == 1:
        y_raw = y_raw[:, 0]
    if y_raw.ndim != 1:
        raise DataError(
            f"{path}: array {y_key!r} has shape {y_raw.shape}; expected one label per sample"
        )
    if len(y_raw) != len(x):
        raise DataError(
            f"{path}: {x_key!r} has {len(x)} samples but {y_key!r} has {len(y_raw)} labels; "
            "expected the same number"
        )

    if names_raw is not None:
        class_names = [str(name) for name in names_raw.reshape(-1)]
        y = _indices(path, y_key, y_raw, len(class_names))
    else:
        y, class_names = _npz_labels(path, y_key, y_raw)

    if features_raw is not None:
        feature_names = [str(name) for name in features_raw.reshape(-1)]
        if x.ndim != 2 or len(feature_names) != x.shape[1]:
            raise DataError(
                f"{path}: 'feature_names' has {len(feature_names)} entries for {x_key!r} of "
                f"shape {x.shape}; expected one name per column"
            )
    else:
        feature_names = [f"feature_{index}" for index in range(x.shape[1])] if x.ndim == 2 else []
    return x, y, feature_names, class_names


def _npz_array(path: Path, archive: Any, key: str, available: list[str]) -> np.ndarray[Any, Any]:
    if key not in available:
        listed = ", ".join(repr(name) for name in available) or "none"
        raise DataError(f"{path}: no array {key!r}; the archive holds: {listed}")
    try:
        return np.asarray(archive[key])
    except ValueError:
        raise DataError(
            f"{path}: array {key!r} holds Python objects, which are not loaded "
            "(no pickles); expected a numeric or string array"
        ) from None


def _integral(path: Path, key: str, labels: np.ndarray[Any, Any]) -> npt.NDArray[np.int64]:
    if labels.dtype.kind in "biu":
        return labels.astype(np.int64)
    if (
        labels.dtype.kind == "f"
        and np.all(np.isfinite(labels))
        and np.all(labels == np.round(labels))
    ):
        return labels.astype(np.int64)
    raise DataError(
        f"{path}: array {key!r} has dtype {labels.dtype} with non-integer labels; expected "
        "integer or string class labels"
    )


def _indices(path: Path, key: str, labels: np.ndarray[Any, Any], count: int) -> LabelArray:
    indices = _integral(path, key, labels)
    outside = indices[(indices < 0) | (indices >= count)]
    if outside.size:
        raise DataError(
            f"{path}: array {key!r} has label {int(outside[0])}, outside 0..{count - 1} "
            f"given by 'class_names'"
        )
    return indices


def _npz_labels(path: Path, key: str, labels: np.ndarray[Any, Any]) -> tuple[LabelArray, list[str]]:
    if labels.dtype.kind not in "US":
        labels = _integral(path, key, labels)
    distinct, codes = np.unique(labels, return_inverse=True)
    if len(distinct) < 2:
        raise DataError(
            f"{path}: array {key!r} has a single class; expected at least two (or a "
            "'class_names' array)"
        )
    names = [value.decode() if isinstance(value, bytes) else str(value) for value in distinct]
    return codes.astype(np.int64).reshape(-1), names


# --------------------------------------------------------------------------- CIFAR


def read_cifar(
    folder: Path | str, *, batches: int = 5
) -> tuple[ImageArray, LabelArray, ImageArray, LabelArray, list[str]]:
    """Read CIFAR-10's python batches into ``(x_train, y_train, x_test, y_test, class_names)``.

    ``folder`` is where the tarball was extracted (holding ``cifar-10-batches-py/``)
    or that folder itself; it must hold ``data_batch_1`` .. ``data_batch_<batches>``,
    ``test_batch`` and ``batches.meta``. Images come back as uint8 of shape
    ``(n, 32, 32, 3)``, channels last, exactly as stored: scaling to [0, 1] happens
    later, when a dataset is prepared.

    The batches are pickles. They are trusted only because the archive they came
    from had its sha256 verified by :func:`regbench.download.fetch`; as a second
    line of defence the unpickler accepts no globals other than those that rebuild
    numpy arrays.

    Raises:
        DataError: a batch file is missing or extra, or one is not a CIFAR batch.
    """
    root = Path(folder)
    if (root / CIFAR_FOLDER).is_dir():
        root = root / CIFAR_FOLDER
    expected = [f"data_batch_{index}" for index in range(1, batches + 1)]
    expected += ["test_batch", "batches.meta"]
    missing = [name for name in expected if not (root / name).is_file()]
    if missing:
        raise DataError(
            f"{root}: missing {', '.join(missing)}; expected data_batch_1..data_batch_{batches}, "
            "test_batch and batches.meta (the CIFAR-10 python layout)"
        )
    extra = sorted(
        path.name
        for path in root.glob("data_batch_*")
        if path.name not in expected and path.name.removeprefix("data_batch_").isdigit()
    )
    if extra:
        raise DataError(f"{root}: found {', '.join(extra)} beyond the {batches} batches expected")

    meta = _load_pickle(root / "batches.meta")
    raw_names = meta.get(b"label_names")
    if (
        not isinstance(raw_names, list)
        or not raw_names
        or not all(isinstance(name, bytes | str) for name in raw_names)
    ):
        raise DataError(
            f"{root / 'batches.meta'}: expected a non-empty b'label_names' list of names"
        )
    class_names = [name.decode() if isinstance(name, bytes) else str(name) for name in raw_names]

    train = [_read_batch(root / name, len(class_names)) for name in expected[:batches]]
    x_test, y_test = _read_batch(root / "test_batch", len(class_names))
    x_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([labels for _, labels in train])
    return x_train, y_train, x_test, y_test, class_names


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals needed to rebuild numpy arrays."""

    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load the global {module}.{name}")
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict[Any, Any]:
    try:
        with open(path, "rb") as stream:
            loaded = _NumpyOnlyUnpickler(stream, encoding="bytes").load()
    except OSError as error:
        raise DataError(f"{path}: cannot read the file: {error.strerror or error}") from None
    except Exception as error:
        # Unpickling a damaged file can raise almost any exception type; all mean "bad file".
        reason = quote(f"{type(error).__name__}: {error}")
        raise DataError(f"{path}: not a CIFAR pickle ({reason})") from None
    if not isinstance(loaded, dict):
        raise DataError(f"{path}: holds a {type(loaded).__name__}; expected a CIFAR batch dict")
    return loaded


def _read_batch(path: Path, class_count: int) -> tuple[ImageArray, LabelArray]:
    """One batch's images and labels, checked before anything is converted.

    A pickle can make a list hold the same list many times over, so a small
    file can describe a billion labels; nothing here walks more than the
    top-level list, and only an array already built from the file's bytes
    becomes the images.
    """
    batch = _load_pickle(path)
    data = batch.get(b"data")
    labels = batch.get(b"labels")
    if data is None or labels is None:
        raise DataError(f"{path}: expected keys b'data' and b'labels', found {quote(list(batch))}")
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != _CIFAR_PIXELS
    ):
        found = (
            f"{data.dtype} of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else f"a {type(data).__name__}"
        )
        raise DataError(
            f"{path}: b'data' is {found}; expected a uint8 array of shape (n, {_CIFAR_PIXELS})"
        )
    label_array = _batch_labels(path, labels, len(data), class_count)
    # CIFAR stores each image channel-major (all red, then green, then blue rows).
    images = data.reshape(-1, 3, _CIFAR_SIDE, _CIFAR_SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), label_array


def _batch_labels(path: Path, labels: Any, count: int, class_count: int) -> LabelArray:
    """A batch's labels: a list of ``count`` ints (or such an array) in 0..class_count-1."""
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        values: list[Any] = labels.tolist()
    elif isinstance(labels, list):
        values = labels
    else:
        raise DataError(
            f"{path}: b'labels' is a {type(labels).__name__}; expected a list of integers"
        )
    if len(values) != count:
        raise DataError(f"{path}: {count} images but {len(values)} labels; expected one label each")
    for value in values:
        if type(value) is not int or not 0 <= value < class_count:
            raise DataError(
                f"{path}: label {quote(value)} is not an integer in 0..{class_count - 1} "
                "given by batches.meta"
            )
    return np.array(values, dtype=np.int64)
