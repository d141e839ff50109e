"""Tests for regbench.formats: CSV, npz and CIFAR readers and the CIFAR writer."""

from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from datafiles import write_cifar_tarball

from regbench.formats import DataError, read_cifar, read_csv, read_npz

WINE_LIKE = (
    '"fixed acidity";"volatile acidity";"alcohol";"quality"\n'
    "7.4;0.7;9.4;5\n"
    "7.8;0.88;9.8;6\n"
    "11.2;0.28;9.8;7\n"
    "7.4;0.66;9.4;5\n"
)


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- CSV


def test_read_csv_with_transform_gives_binary_target(tmp_path: Path) -> None:
    """A '>= 6' transform turns the target into 0/1 and names both classes."""
    path = write(tmp_path, WINE_LIKE)

    x, y, features, classes = read_csv(
        path, target="quality", delimiter=";", target_transform=">= 6"
    )

    assert x.dtype == np.float32 and x.shape == (4, 3)
    np.testing.assert_allclose(x[2], [11.2, 0.28, 9.8], rtol=1e-6)
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 1, 0]
    assert features == ["fixed acidity", "volatile acidity", "alcohol"]
    assert classes == ["quality < 6", "quality >= 6"]


def test_read_csv_without_transform_sorts_numeric_classes(tmp_path: Path) -> None:
    """Numeric target values become 0..k-1 in numeric (not text) order."""
    path = write(tmp_path, "a,label\n1,10\n2,9\n3,3\n4,9\n")

    _, y, _, classes = read_csv(path, target="label")

    assert classes == ["3", "9", "10"]
    assert y.tolist() == [2, 1, 0, 1]


def test_read_csv_maps_text_labels(tmp_path: Path) -> None:
    """Text target values become 0..k-1 in sorted order with their names kept."""
    path = write(tmp_path, "petal,species\n1.4,setosa\n4.7,versicolor\n6.0,virginica\n1.3,setosa\n")

    _, y, _, classes = read_csv(path, target="species")

    assert classes == ["setosa", "versicolor", "virginica"]
    assert y.tolist() == [0, 1, 2, 0]


def test_read_csv_without_header_names_columns_by_position(tmp_path: Path) -> None:
    """Without a header the columns are '0', '1', ... and the target is named by position."""
    path = write(tmp_path, "0.5\t1.5\ta\n2.5\t3.5\tb\n")

    x, y, features, classes = read_csv(path, target="2", delimiter="\t", header=False)

    assert x.tolist() == [[0.5, 1.5], [2.5, 3.5]]
    assert features == ["0", "1"] and classes == ["a", "b"] and y.tolist() == [0, 1]


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_read_csv_rejects_an_empty_file(text: str, tmp_path: Path) -> None:
    """An empty file says so, naming the file."""
    path = write(tmp_path, text, "empty.csv")

    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        read_csv(path, target="quality")


def test_read_csv_suggests_the_right_delimiter(tmp_path: Path) -> None:
    """A ';'-separated file read with ',' names the delimiter used and suggests ';'."""
    path = write(tmp_path, WINE_LIKE)

    with pytest.raises(
        DataError,
        match=r"single column with delimiter ','; the file looks ';'-separated "
        r"\(pass delimiter=';'\)",
    ):
        read_csv(path, target="quality")


def test_read_csv_lists_columns_when_the_target_is_missing(tmp_path: Path) -> None:
    """A missing target column is named and the available columns are listed."""
    path = write(tmp_path, WINE_LIKE)

    with pytest.raises(
        DataError,
        match=r"no target column 'Quality'; available columns: 'fixed acidity', "
        r"'volatile acidity', 'alcohol', 'quality'",
    ):
        read_csv(path, target="Quality", delimiter=";")


def test_read_csv_names_a_non_numeric_value(tmp_path: Path) -> None:
    """A non-numeric feature names its column, the value and its line."""
    path = write(tmp_path, "a,b,y\n1,2,0\n3,4,1\n5,1.5.2,0\n6,abc,1\n")

    with pytest.raises(
        DataError, match=r"column 'b' must be numeric, but line 4 has '1\.5\.2' \(2 non-numeric"
    ):
        read_csv(path, target="y")


def test_read_csv_counts_missing_values_per_column(tmp_path: Path) -> None:
    """Missing values name every affected column with its count."""
    path = write(tmp_path, "a,b,y\n1,,0\n,NA,1\n5,?,0\n6,7,1\n")

    with pytest.raises(
        DataError,
        match=r"missing values in column 'a': 1 missing \(first on line 3\); "
        r"column 'b': 3 missing \(first on line 2\)",
    ):
        read_csv(path, target="y")


def test_read_csv_rejects_a_single_class_after_the_transform(tmp_path: Path) -> None:
    """A transform that puts every row in one class is refused, naming that class."""
    path = write(tmp_path, WINE_LIKE)

    with pytest.raises(
        DataError, match=r"transform '>= 9' gives a single class \('quality < 9'\) for all 4 rows"
    ):
        read_csv(path, target="quality", delimiter=";", target_transform=">= 9")


def test_read_csv_rejects_a_single_class_without_transform(tmp_path: Path) -> None:
    """A target with one distinct value is refused."""
    path = write(tmp_path, "a,y\n1,5\n2,5\n")

    with pytest.raises(DataError, match=r"target 'y' has the single value '5' in all 2 rows"):
        read_csv(path, target="y")


@pytest.mark.parametrize(
    "transform", [">=", "=> 6", "6", ">= six", ">= 6 and 1", "__import__('os').getcwd()"]
)
def test_read_csv_refuses_a_malformed_transform(transform: str, tmp_path: Path) -> None:
    """Anything but '<op> <number>' is refused before the file is read, never evaluated."""
    with pytest.raises(DataError, match=r"is not of the form '<op> <number>'"):
        read_csv(tmp_path / "never-read.csv", target="quality", target_transform=transform)


def test_read_csv_names_a_ragged_line(tmp_path: Path) -> None:
    """A line with the wrong number of fields is named."""
    path = write(tmp_path, "a,b,y\n1,2,0\n3,4\n")

    with pytest.raises(
        DataError, match=r"data\.csv, line 3: 2 fields with delimiter ',', expected 3"
    ):
        read_csv(path, target="y")


def test_read_csv_rejects_a_header_without_rows(tmp_path: Path) -> None:
    """A header line alone is not a data set."""
    path = write(tmp_path, "a,b,y\n")

    with pytest.raises(DataError, match=r"has a header but no data rows"):
        read_csv(path, target="y")


def test_read_csv_rejects_infinite_values(tmp_path: Path) -> None:
    """Infinite feature values are refused with their line."""
    path = write(tmp_path, "a,y\n1,0\ninf,1\n")

    with pytest.raises(
        DataError, match=r"column 'a' must hold finite numbers, but line 3 has 'inf'"
    ):
        read_csv(path, target="y")


def test_read_csv_reports_a_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is a DataError naming it."""
    with pytest.raises(DataError, match=r"absent\.csv: no such file"):
        read_csv(tmp_path / "absent.csv", target="y")


# --------------------------------------------------------------------------- npz


def test_read_npz_reads_features_and_labels(tmp_path: Path) -> None:
    """x and y come back as float32 and 0..k-1 int64 with generated names."""
    path = tmp_path / "data.npz"
    np.savez(path, x=np.arange(6, dtype=np.int32).reshape(3, 2), y=np.array([[7], [3], [7]]))

    x, y, features, classes = read_npz(path)

    assert x.dtype == np.float32 and x.tolist() == [[0, 1], [2, 3], [4, 5]]
    assert y.tolist() == [1, 0, 1] and classes == ["3", "7"]
    assert features == ["feature_0", "feature_1"]


def test_read_npz_uses_stored_class_names(tmp_path: Path) -> None:
    """A class_names array is used as is, with y indexing it."""
    path = tmp_path / "data.npz"
    np.savez(
        path,
        features=np.zeros((2, 2)),
        labels=np.array([0, 0]),
        class_names=np.array(["neg", "pos"]),
    )

    _, y, _, classes = read_npz(path, x_key="features", y_key="labels")

    assert y.tolist() == [0, 0] and classes == ["neg", "pos"]


def test_read_npz_lists_keys_when_one_is_missing(tmp_path: Path) -> None:
    """A missing key is named and the archive's keys are listed."""
    path = tmp_path / "data.npz"
    np.savez(path, features=np.zeros((2, 2)), y=np.array([0, 1]))

    with pytest.raises(DataError, match=r"no array 'x'; the archive holds: 'features', 'y'"):
        read_npz(path)


def test_read_npz_rejects_mismatched_lengths(tmp_path: Path) -> None:
    """x and y of different lengths are refused with both counts."""
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((3, 2)), y=np.array([0, 1]))

    with pytest.raises(DataError, match=r"'x' has 3 samples but 'y' has 2 labels"):
        read_npz(path)


def test_read_npz_never_unpickles(tmp_path: Path) -> None:
    """An object array (which would need pickle) is refused."""
    path = tmp_path / "data.npz"
    np.savez(path, x=np.array([[1.0], [2.0]]), y=np.array([{"a": 1}, {"b": 2}], dtype=object))

    with pytest.raises(DataError, match=r"array 'y' holds Python objects, which are not loaded"):
        read_npz(path)


def test_read_npz_rejects_a_non_archive(tmp_path: Path) -> None:
    """A file that is not an npz archive is named."""
    path = tmp_path / "data.npz"
    path.write_bytes(b"plain text, not an archive")

    with pytest.raises(DataError, match=r"data\.npz: not a readable \.npz archive"):
        read_npz(path)


# --------------------------------------------------------------------------- CIFAR


def small_cifar(tmp_path: Path, batches: int = 2) -> tuple[Path, dict[str, npt.NDArray[Any]]]:
    rng = np.random.default_rng(3)
    arrays: dict[str, npt.NDArray[Any]] = {
        "x_train": rng.integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=12),
        "x_test": rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=6),
    }
    names = [f"class{index}" for index in range(10)]
    tarball = write_cifar_tarball(
        tmp_path / "cifar.tar.gz",
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
        names,
        batches=batches,
    )
    folder = tmp_path / "extracted"
    with tarfile.open(tarball) as tar:
        tar.extractall(folder, filter="data")
    return folder, arrays


def test_cifar_writer_and_reader_round_trip(tmp_path: Path) -> None:
    """Images written in CIFAR's layout read back pixel for pixel, channels last."""
    folder, arrays = small_cifar(tmp_path)

    x_train, y_train, x_test, y_test, names = read_cifar(folder / "cifar-10-batches-py", batches=2)

    assert x_train.shape == (12, 32, 32, 3) and x_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    np.testing.assert_array_equal(y_train, arrays["y_train"])
    np.testing.assert_array_equal(x_test, arrays["x_test"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    assert names == [f"class{index}" for index in range(10)]


def test_cifar_writer_uses_the_real_layout(tmp_path: Path) -> None:
    """Each batch pickle has CIFAR's keys and channel-major rows of 3072 bytes."""
    folder, arrays = small_cifar(tmp_path)
    root = folder / "cifar-10-batches-py"

    with open(root / "data_batch_2", "rb") as stream:
        batch = pickle.load(stream, encoding="bytes")
    with open(root / "batches.meta", "rb") as stream:
        meta = pickle.load(stream, encoding="bytes")

    assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert batch[b"data"].shape == (6, 3072) and batch[b"data"].dtype == np.uint8
    # The first 1024 bytes of a row are the red channel of the image, row by row.
    np.testing.assert_array_equal(batch[b"data"][0, :1024], arrays["x_train"][6, :, :, 0].ravel())
    assert len(batch[b"filenames"]) == 6
    assert meta[b"label_names"] == [f"class{index}".encode() for index in range(10)]


def test_cifar_writer_is_reproducible(tmp_path: Path) -> None:
    """The same arrays give byte-identical tarballs, so their sha256 can be pinned."""
    small_cifar(tmp_path / "one")
    small_cifar(tmp_path / "two")

    first = (tmp_path / "one" / "cifar.tar.gz").read_bytes()
    assert first == (tmp_path / "two" / "cifar.tar.gz").read_bytes()


def test_read_cifar_names_a_missing_batch(tmp_path: Path) -> None:
    """A missing batch file is named along with the layout expected."""
    folder, _ = small_cifar(tmp_path)
    os.remove(folder / "cifar-10-batches-py" / "data_batch_2")

    with pytest.raises(
        DataError, match=r"missing data_batch_2; expected data_batch_1\.\.data_batch_2"
    ):
        read_cifar(folder, batches=2)


def test_read_cifar_expects_five_batches_by_default(tmp_path: Path) -> None:
    """By default the real CIFAR-10 layout (five training batches) is required."""
    folder, _ = small_cifar(tmp_path)

    with pytest.raises(DataError, match=r"missing data_batch_3, data_batch_4, data_batch_5"):
        read_cifar(folder)


def test_read_cifar_refuses_pickles_with_foreign_globals(tmp_path: Path) -> None:
    """A batch pickle that references anything but numpy is refused, not executed."""
    folder, _ = small_cifar(tmp_path)
    root = folder / "cifar-10-batches-py"
    # The global here is harmless; any global outside numpy's array rebuilders is refused.
    (root / "test_batch").write_bytes(b"\x80\x04cos\ngetcwd\n)R.")

    with pytest.raises(
        DataError, match=r"test_batch: not a CIFAR pickle .*refusing to load the global os\.getcwd"
    ):
        read_cifar(folder, batches=2)
