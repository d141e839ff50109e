"""Preparing downloaded datasets: URL sources over a real loopback server, CIFAR, bad data."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from datafiles import write_cifar_tarball
from httpserver import LoopbackServer, Reply
from sklearn.model_selection import train_test_split

from regbench import jobs
from regbench.config import ConfigError, load_config_file, load_study
from regbench.datasets import DataError, data_card, load_prepared, load_raw, prepare
from regbench.download import (
    DOWNLOAD_CACHE_ENV,
    DownloadError,
    download,
    download_logged,
    download_path,
)

REPO = Path(__file__).resolve().parents[1]
WINE_CSV = Path(__file__).resolve().parents[2] / "shared/data/winequality-red.csv"
WINE_SHA = "4a402cf041b025d4566d954c3b9ba8635a3a8a01e039005d97d6a710278cf05e"

# 60 rows, 3 features, a quality score; quality >= 6 splits it 30/30.
SMALL_CSV = "a;b;c;quality\n" + "".join(
    f"{i % 7}.5;{(i * 3) % 11};{i / 10:.1f};{5 + i % 2}\n" for i in range(60)
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def study_config(datasets: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A minimal valid study around the given datasets."""
    return {
        "study": {"name": "t", "title": "Test study"},
        "datasets": datasets,
        "models": {"mlp": {"type": "mlp", "units": [4]}},
        "regularizers": {"none": {}},
        "seeds": [0],
        "training": {"epochs": 1},
        "baseline": "none",
        **overrides,
    }


def resolved(body: dict[str, Any], name: str = "data") -> dict[str, Any]:
    """The dataset spec the pipeline would pass to preparation, defaults filled."""
    return load_study(study_config({name: body})).dataset_spec(name)


def csv_body(url: str, sha: str, **split: Any) -> dict[str, Any]:
    return {
        "source": "url",
        "url": url,
        "sha256": sha,
        "format": "csv",
        "csv": {"delimiter": ";", "target": "quality", "target_transform": ">= 6"},
        "split": {"test": 0.25, "random_state": 0, **split},
    }


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


# --------------------------------------------------------------------------- CSV over HTTP


def test_csv_over_http_is_downloaded_once_and_prepared(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """A CSV served on 127.0.0.1 is fetched once, read with its transform, split and scaled."""
    body = SMALL_CSV.encode()
    url = server.serve("/files/small.csv", Reply(body=body))
    spec = resolved(csv_body(url, sha256(body)))

    first = download(spec, tmp_path)
    second = download(spec, tmp_path)
    raw = load_raw(spec, tmp_path)
    data = prepare(spec, raw)

    assert first == second == tmp_path / sha256(body) / "small.csv"
    assert server.count("/files/small.csv") == 1
    assert raw.x.shape == (60, 3) and raw.class_names == ["quality < 6", "quality >= 6"]
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (36, 9, 15)
    assert data.x_train.dtype == np.float32
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    assert sorted(np.bincount(data.y_test)) == [7, 8]  # stratified by default


def test_checksum_mismatch_reaches_the_job_log(server: LoopbackServer, tmp_path: Path) -> None:
    """A body with the wrong sha256 fails, the log names both hashes, and nothing is cached."""
    body = SMALL_CSV.encode()
    url = server.serve("/small.csv", Reply(body=body))
    spec = resolved(csv_body(url, "0" * 64))
    log = tmp_path / "download.log"

    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_logged(spec, tmp_path / "cache", log)

    text = log.read_text(encoding="utf-8")
    assert (
        f"error: {url}: checksum mismatch: expected sha256 {'0' * 64}, got {sha256(body)}" in text
    )
    assert not download_path(spec, tmp_path / "cache").exists()


def test_download_progress_is_written_to_the_job_log(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """The download rule's log shows the URL, the progress and the verified sha256."""
    body = SMALL_CSV.encode()
    url = server.serve("/small.csv", Reply(body=body))
    spec = resolved(csv_body(url, sha256(body)))
    log = tmp_path / "download.log"

    download_logged(spec, tmp_path / "cache", log)

    text = log.read_text(encoding="utf-8")
    assert url in text and "(100%)" in text and f"verified sha256 {sha256(body)}" in text


def test_validation_mode_test_uses_the_test_split_and_says_so(tmp_path: Path) -> None:
    """With validation_mode test the validation arrays are the test arrays, and the card warns."""
    spec = resolved(
        {"source": "sklearn", "loader": "iris", "split": {"test": 0.25, "validation_mode": "test"}}
    )
    raw = load_raw(spec)
    data = prepare(spec, raw)
    card = data_card(spec, raw, data)

    assert "validation" not in spec["split"]
    assert (len(data.y_train), len(data.y_test)) == (112, 38)
    np.testing.assert_array_equal(data.x_val, data.x_test)
    np.testing.assert_array_equal(data.y_val, data.y_test)
    assert card["validation"] == "the test split (validation = test)"
    assert any(note.startswith("Validation = test") for note in card["notes"])
    assert any("sparse categorical cross-entropy" in note for note in card["notes"])


def test_study_d_split_reproduces_the_notebooks_rows() -> None:
    """Study D's held_out split gives exactly notebook 003's 398/85/86 rows, scaled on train."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import MinMaxScaler

    study = load_study(load_config_file(str(REPO / "studies/d_breast_cancer_dropout.yaml")))
    spec = study.dataset_spec("breast_cancer")
    raw = load_raw(spec)
    data = prepare(spec, raw)
    card = data_card(spec, raw, data)

    # The notebook: hold out 30%, then halve it, random_state 42 both times.
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.3, random_state=42)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, random_state=42)
    scaler = MinMaxScaler().fit(x_train)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (398, 85, 86)
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_array_equal(data.y_val, y_val)
    np.testing.assert_array_equal(data.y_test, y_test)
    np.testing.assert_allclose(data.x_test, scaler.transform(x_test), atol=1e-6)
    np.testing.assert_allclose(data.x_val, scaler.transform(x_val), atol=1e-6)
    assert card["validation"] == "a random 50.0% of the 30% held out, the rest being the test split"


# --------------------------------------------------------------------------- study A's data


def test_wine_study_preparation_matches_the_notebook(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """Study A's dataset, served on loopback with the real sha256, gives the notebook's data."""
    if not WINE_CSV.is_file():
        pytest.skip(f"{WINE_CSV} is not here (it ships only with the shared reference data)")
    body = WINE_CSV.read_bytes()
    config = load_config_file(str(REPO / "studies/a_wine_l1l2_dropout.yaml"))
    dataset = config["datasets"]["wine_quality"]
    assert dataset["sha256"] == WINE_SHA == sha256(body)
    dataset["url"] = server.serve("/ml/winequality-red.csv", Reply(body=body))
    spec = load_study(config).dataset_spec("wine_quality")

    download(spec, tmp_path)
    raw = load_raw(spec, tmp_path)
    data = prepare(spec, raw)

    with WINE_CSV.open(encoding="utf-8") as handle:
        quality = [int(row["quality"]) for row in csv.DictReader(handle, delimiter=";")]
    assert raw.x.shape == (1599, 11)
    np.testing.assert_array_equal(raw.y, np.array(quality) >= 6)
    # The notebook: train_test_split(X, y, test_size=0.2, random_state=42), then
    # Keras's validation_split=0.2 takes the last 20% of the training rows.
    train, test = train_test_split(np.arange(1599), test_size=0.2, random_state=42)
    np.testing.assert_array_equal(data.y_test, raw.y[test])
    np.testing.assert_array_equal(data.y_val, raw.y[train[-256:]])
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (1023, 256, 320)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1, atol=1e-3)


# --------------------------------------------------------------------------- CIFAR


def test_cifar_tarball_is_prepared_subsampled_and_stratified(tmp_path: Path) -> None:
    """A CIFAR-format tarball gives (N, 32, 32, 3) images in [0, 1], a stratified subsample
    of the training images and the tarball's own test batch as the test split."""
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    y_train = np.repeat(np.arange(10), 30)
    y_test = np.arange(40) % 10
    names = [f"class{index}" for index in range(10)]
    tarball = write_cifar_tarball(
        tmp_path / "src/cifar-10-python.tar.gz", x_train, y_train, x_test, y_test, names
    )
    spec = resolved(
        {
            "source": "url",
            "url": tarball.as_uri(),
            "sha256": sha256(tarball.read_bytes()),
            "format": "cifar",
            "subsample": {"train": 100},
            "split": {"validation": 0.2},
            "scaling": "max",
        },
        name="cifar",
    )

    download(spec, tmp_path / "cache")
    raw = load_raw(spec, tmp_path / "cache")
    data = prepare(spec, raw)
    card = data_card(spec, raw, data)

    assert data.x_train.shape == (80, 32, 32, 3) and data.x_val.shape == (20, 32, 32, 3)
    assert data.x_test.shape == (40, 32, 32, 3)
    assert data.x_train.dtype == np.float32
    assert data.x_train.min() >= 0 and data.x_train.max() == 1 and data.x_test.max() <= 1
    assert np.bincount(data.y_train).tolist() == [8] * 10
    assert np.bincount(data.y_val).tolist() == [2] * 10
    np.testing.assert_array_equal(data.y_test, y_test)
    np.testing.assert_array_equal(data.x_test * 255, x_test)
    assert card["kind"] == "image" and card["rows"] == 340 and card["input_shape"] == [32, 32, 3]
    assert card["subsampled"] == {"train": {"kept": 100, "of": 300}}
    assert any(note.startswith("Subsampled: 100 of 300 train rows") for note in card["notes"])
    assert any("official CIFAR-10 test batch (40 images)" in note for note in card["notes"])


def test_held_out_validation_is_refused_for_a_dataset_with_its_own_test_set(
    tmp_path: Path,
) -> None:
    """validation_mode held_out cuts validation from held-out rows, which CIFAR does not have."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(40) % 10
    names = [f"class{index}" for index in range(10)]
    tarball = write_cifar_tarball(
        tmp_path / "src/cifar-10-python.tar.gz", images, labels, images[:20], labels[:20], names
    )
    spec = resolved(
        {
            "source": "url",
            "url": tarball.as_uri(),
            "sha256": sha256(tarball.read_bytes()),
            "format": "cifar",
            "split": {"validation": 0.5, "validation_mode": "held_out"},
            "scaling": "max",
        },
        name="cifar",
    )
    download(spec, tmp_path / "cache")
    raw = load_raw(spec, tmp_path / "cache")
    with pytest.raises(DataError, match=r"dataset cifar: split\.validation_mode held_out"):
        prepare(spec, raw)


def test_cnn_runs_on_cifar_and_is_skipped_on_csv() -> None:
    """CIFAR is an image dataset, so a CNN runs on it; on a CSV dataset the CNN is skipped."""
    datasets = {
        "cifar": {
            "source": "url",
            "url": "https://example.org/cifar-10-python.tar.gz",
            "sha256": "a" * 64,
            "format": "cifar",
        },
        "table": csv_body("https://example.org/t.csv", "b" * 64),
    }
    models = {"mlp": {"type": "mlp"}, "cnn": {"type": "cnn", "filters": [4]}}

    study = load_study(study_config(datasets, models=models))

    assert {(key.dataset, key.model) for key in study.runs} == {
        ("cifar", "mlp"),
        ("cifar", "cnn"),
        ("table", "mlp"),
    }
    assert [(s.dataset, s.model) for s in study.skipped] == [("table", "cnn")]


# --------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha256": None}, r"datasets\.data: 'sha256' is a required property"),
        (
            {"sha256": "abc"},
            r"datasets\.data\.sha256: 'abc' is not a sha256: expected 64 hexadecimal digits",
        ),
        ({"url": "ftp://host/f.csv"}, r"datasets\.data\.url: .* expected http, https or file"),
        ({"url": "https://host/dir/"}, r"datasets\.data\.url: .* does not end in a file name"),
        ({"npz": {"x": "x"}}, r"datasets\.data\.npz: only applies to format npz, not csv"),
        ({"csv": None}, r"datasets\.data: 'csv' is a required property"),
        (
            {"csv": {"target": "q", "target_transform": "quality >= 6"}},
            r"target_transform: 'quality >= 6' is not of the form '<op> <number>'",
        ),
        ({"format": "cifar", "csv": None}, r"format cifar expects a tarball"),
        (
            {"split": {"validation_mode": "test", "validation": 0.2}},
            r"split\.validation: no fraction is held out with validation_mode test",
        ),
    ],
)
def test_bad_url_source_is_refused_with_the_key_named(change: dict[str, Any], message: str) -> None:
    """Each malformed url source fails validation with a message naming the key at fault."""
    body = {**csv_body("https://host/f.csv", "c" * 64), **change}
    body = {key: value for key, value in body.items() if value is not None}

    with pytest.raises(ConfigError, match=message):
        load_study(study_config({"data": body}))


def test_url_keys_on_a_sklearn_source_are_refused() -> None:
    """A url or sha256 on a dataset that is not downloaded is a mistake, not silently ignored."""
    body = {"source": "sklearn", "loader": "iris", "url": "https://host/iris.csv"}

    with pytest.raises(ConfigError, match=r"datasets\.data: url only apply to source url"):
        load_study(study_config({"data": body}))


# --------------------------------------------------------------------------- bad data


BAD_CSVS = {
    "wrong delimiter": (
        "a,b,quality\n1,2,5\n3,4,6\n",
        r"single column with delimiter ';'; the file looks ','-separated",
    ),
    "non-numeric": (
        "a;b;quality\n1;2;5\nx;4;6\n",
        r"column 'a' must be numeric, but line 3 has 'x'",
    ),
    "missing value": ("a;b;quality\n1;2;5\n;4;6\n", r"missing values in column 'a': 1 missing"),
    "missing target": ("a;b;grade\n1;2;5\n3;4;6\n", r"no target column 'quality'"),
    "single class": ("a;b;quality\n1;2;7\n3;4;6\n", r"gives a single class \('quality >= 6'\)"),
    "empty file": ("", r"the file is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_csv_fails_preparation_naming_dataset_and_file(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each bad CSV stops the prepare_dataset job with its message, the dataset and the file."""
    text, message = BAD_CSVS[case]
    source = tmp_path / "bad.csv"
    source.write_text(text, encoding="utf-8")
    spec = resolved(csv_body(source.as_uri(), sha256(text.encode())), name="bad")
    cache = tmp_path / "cache"
    monkeypatch.setenv(DOWNLOAD_CACHE_ENV, str(cache))
    download(spec, cache)

    with pytest.raises(DataError, match=message) as caught:
        jobs.prepare_dataset(
            json.dumps(spec), str(tmp_path / "data.npz"), str(tmp_path / "card.json")
        )

    assert str(caught.value).startswith(f"dataset bad: {download_path(spec, cache)}")


# --------------------------------------------------------------------------- Snakemake


def snakemake(
    workdir: Path, config: dict[str, Any], *targets: str
) -> subprocess.CompletedProcess[str]:
    """Run the project's Snakefile on ``config`` in ``workdir``, with a private download cache."""
    config_path = workdir / f"{config['study']['name']}.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != DOWNLOAD_CACHE_ENV}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(config_path),
            "--cores",
            "2",
            *targets,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


@pytest.mark.e2e
def test_snakemake_downloads_prepares_trains_and_never_downloads_twice(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """Snakemake downloads a served CSV, prepares it and trains on it; a second study on the
    same URL reuses the cached file without a request."""
    body = SMALL_CSV.encode()
    url = server.serve("/data/small.csv", Reply(body=body))
    first = study_config(
        {"small": csv_body(url, sha256(body))},
        training={"epochs": 2, "batch_size": 16},
    )
    runs = ["results/runs/small/mlp/none/seed0/metrics.json"]

    result = snakemake(tmp_path, first, *runs)

    assert result.returncode == 0, result.stderr[-4000:]
    assert server.count("/data/small.csv") == 1
    for path in runs:
        assert json.loads((tmp_path / path).read_text(encoding="utf-8"))["status"] == "ok"
    data = load_prepared(tmp_path / "results/data/small/data.npz")
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 60
    log = tmp_path / f"logs/download_dataset/{sha256(body)}/small.csv.log"
    assert "(100%)" in log.read_text(encoding="utf-8")

    second = {**first, "study": {"name": "second", "title": "Same URL, another study"}}
    second["datasets"] = {"again": csv_body(url, sha256(body), random_state=1)}
    again = snakemake(tmp_path, second, "results/data/again/card.json")

    assert again.returncode == 0, again.stderr[-4000:]
    assert "download_dataset" not in again.stdout + again.stderr
    assert server.count("/data/small.csv") == 1
    assert json.loads((tmp_path / "results/data/again/card.json").read_text("utf-8"))["rows"] == 60


@pytest.mark.e2e
def test_snakemake_checksum_mismatch_fails_the_job_with_the_message_in_its_log(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """A served file whose sha256 differs fails download_dataset; its log says why."""
    body = SMALL_CSV.encode()
    url = server.serve("/data/small.csv", Reply(body=body))
    wrong = sha256(b"another file")
    config = study_config({"small": csv_body(url, wrong)})

    result = snakemake(tmp_path, config, "results/data/small/card.json")

    assert result.returncode != 0
    log = tmp_path / f"logs/download_dataset/{wrong}/small.csv.log"
    assert f"checksum mismatch: expected sha256 {wrong}, got {sha256(body)}" in log.read_text(
        encoding="utf-8"
    )
    assert not (tmp_path / "resources/downloads" / wrong / "small.csv").exists()
    assert not (tmp_path / "results/data/small").exists()
