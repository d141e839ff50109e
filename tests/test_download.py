"""Tests for regbench.download against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from datafiles import write_cifar_tarball
from httpserver import LoopbackServer, Reply

from regbench import download, formats
from regbench.download import DownloadError, fetch, log_progress, safe_extract

PAYLOAD = b"regbench test payload\n" * 500
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
WINE_SHA = "4a402cf041b025d4566d954c3b9ba8635a3a8a01e039005d97d6a710278cf05e"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if not path.is_dir())


# --------------------------------------------------------------------------- fetch


def test_fetch_downloads_verifies_and_caches(server: LoopbackServer, tmp_path: Path) -> None:
    """A good file lands at cache/sha256/name, and a second fetch makes no request."""
    url = server.serve("/data/file.bin", Reply(body=PAYLOAD))
    cache = tmp_path / "cache"

    first = fetch(url, PAYLOAD_SHA, cache, backoff=0.01)
    second = fetch(url, PAYLOAD_SHA, cache, backoff=0.01)

    assert first == second == cache / PAYLOAD_SHA / "file.bin"
    assert first.read_bytes() == PAYLOAD
    assert server.count("/data/file.bin") == 1
    assert files_under(cache) == [first]


def test_fetch_accepts_uppercase_sha256(server: LoopbackServer, tmp_path: Path) -> None:
    """An upper-case sha256 is the same key as its lower-case form."""
    url = server.serve("/file.bin", Reply(body=PAYLOAD))

    path = fetch(url, PAYLOAD_SHA.upper(), tmp_path)

    assert path == tmp_path / PAYLOAD_SHA / "file.bin"


def test_fetch_rejects_checksum_mismatch_and_leaves_nothing(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """A corrupted body fails naming the URL and both hashes, and leaves no file behind."""
    corrupted = PAYLOAD[:-1] + b"?"
    url = server.serve("/file.bin", Reply(body=corrupted))
    actual = hashlib.sha256(corrupted).hexdigest()

    with pytest.raises(DownloadError, match=rf"{url}: checksum mismatch") as caught:
        fetch(url, PAYLOAD_SHA, tmp_path, backoff=0.01)

    assert f"expected sha256 {PAYLOAD_SHA}" in str(caught.value)
    assert f"got {actual}" in str(caught.value)
    assert files_under(tmp_path) == []
    assert server.count("/file.bin") == 1


def test_fetch_retries_503_then_succeeds(server: LoopbackServer, tmp_path: Path) -> None:
    """Two 503 answers are retried and the third request succeeds."""
    url = server.serve("/file.bin", Reply(status=503), Reply(status=503), Reply(body=PAYLOAD))

    path = fetch(url, PAYLOAD_SHA, tmp_path, retries=4, backoff=0.01)

    assert path.read_bytes() == PAYLOAD
    assert server.count("/file.bin") == 3


def test_fetch_honours_small_retry_after(
    server: LoopbackServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 with a small Retry-After is retried after that delay, not the longer backoff."""
    url = server.serve(
        "/file.bin", Reply(status=429, headers={"Retry-After": "0"}), Reply(body=PAYLOAD)
    )

    with caplog.at_level(logging.WARNING, logger="regbench.download"):
        fetch(url, PAYLOAD_SHA, tmp_path, retries=1, backoff=30.0)

    assert "HTTP 429" in caplog.text and "retrying in 0.0 s (attempt 2 of 2)" in caplog.text
    assert server.count("/file.bin") == 2


def test_fetch_gives_up_after_the_last_retry(server: LoopbackServer, tmp_path: Path) -> None:
    """A server that keeps failing is tried retries + 1 times, then the error names it."""
    url = server.serve("/file.bin", Reply(status=500))

    with pytest.raises(DownloadError, match=r"failed after 3 attempt\(s\): HTTP 500"):
        fetch(url, PAYLOAD_SHA, tmp_path, retries=2, backoff=0.01)

    assert server.count("/file.bin") == 3
    assert files_under(tmp_path) == []


def test_fetch_does_not_retry_404(server: LoopbackServer, tmp_path: Path) -> None:
    """A 404 fails at once without retries."""
    url = server.base_url + "/missing.bin"

    with pytest.raises(DownloadError, match=r"missing\.bin: HTTP 404 .*not retried"):
        fetch(url, PAYLOAD_SHA, tmp_path, retries=3, backoff=0.01)

    assert server.count("/missing.bin") == 1


def test_fetch_times_out_on_a_stalled_server(server: LoopbackServer, tmp_path: Path) -> None:
    """A server that sends nothing within the timeout fails with a timeout error."""
    url = server.serve("/file.bin", Reply(body=PAYLOAD, delay=10.0))

    # The server would answer after 10 s: the error proves the 0.5 s timeout ended the wait.
    with pytest.raises(DownloadError, match=r"file\.bin: .*timed out after 0\.5 s"):
        fetch(url, PAYLOAD_SHA, tmp_path, timeout=0.5, retries=0)

    assert files_under(tmp_path) == []


def test_fetch_rejects_a_truncated_body(server: LoopbackServer, tmp_path: Path) -> None:
    """A body shorter than its Content-Length is an error, retried as transient."""
    url = server.serve("/file.bin", Reply(body=PAYLOAD, truncate_to=100))

    with pytest.raises(DownloadError, match=rf"closed after 100 of {len(PAYLOAD)} bytes"):
        fetch(url, PAYLOAD_SHA, tmp_path, retries=1, backoff=0.01)

    assert server.count("/file.bin") == 2
    assert files_under(tmp_path) == []


def test_fetch_refuses_a_content_length_over_the_cap(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """A Content-Length above max_bytes fails before the body is read."""
    url = server.serve("/file.bin", Reply(body=PAYLOAD))

    with pytest.raises(
        DownloadError, match=r"Content-Length is \d+ bytes, above the limit of 1000"
    ):
        fetch(url, PAYLOAD_SHA, tmp_path, max_bytes=1000, retries=2, backoff=0.01)

    assert server.count("/file.bin") == 1
    assert files_under(tmp_path) == []


def test_fetch_refuses_a_streamed_body_over_the_cap(server: LoopbackServer, tmp_path: Path) -> None:
    """A body without Content-Length is cut off once it streams past max_bytes."""
    url = server.serve("/file.bin", Reply(body=PAYLOAD, content_length=False))

    with pytest.raises(DownloadError, match=r"larger than the limit of 1000 bytes"):
        fetch(url, PAYLOAD_SHA, tmp_path, max_bytes=1000, backoff=0.01)

    assert files_under(tmp_path) == []


def test_fetch_reports_a_refused_connection(tmp_path: Path) -> None:
    """Nothing listening on the port gives a connection error after the retries."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/file.bin"

    with pytest.raises(DownloadError, match=r"failed after 2 attempt\(s\): cannot connect"):
        fetch(url, PAYLOAD_SHA, tmp_path, retries=1, backoff=0.01)


def test_fetch_reads_file_urls(tmp_path: Path) -> None:
    """A file:// URL is copied into the cache and verified like a download."""
    source = tmp_path / "source dir" / "file.bin"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)

    path = fetch(source.as_uri(), PAYLOAD_SHA, tmp_path / "cache")

    assert path == tmp_path / "cache" / PAYLOAD_SHA / "file.bin"
    assert path.read_bytes() == PAYLOAD


def test_fetch_reports_a_missing_file_url(tmp_path: Path) -> None:
    """A file:// URL naming no file fails with that path in the message."""
    url = (tmp_path / "absent.bin").as_uri()

    with pytest.raises(DownloadError, match=r"absent\.bin: no such file"):
        fetch(url, PAYLOAD_SHA, tmp_path / "cache")


@pytest.mark.parametrize("bad", ["", "abc", "g" * 64, PAYLOAD_SHA + "0"])
def test_fetch_rejects_a_malformed_sha256(bad: str, tmp_path: Path) -> None:
    """A sha256 that is not 64 hex digits is a ValueError naming it."""
    with pytest.raises(
        ValueError, match=rf"'{bad}' is not a sha256: expected 64 hexadecimal digits"
    ):
        fetch("http://127.0.0.1:9/file.bin", bad, tmp_path)


def test_fetch_rejects_an_unsupported_scheme(tmp_path: Path) -> None:
    """Only http, https and file URLs are accepted."""
    with pytest.raises(ValueError, match=r"has scheme 'ftp'; expected http, https or file"):
        fetch("ftp://example.org/file.bin", PAYLOAD_SHA, tmp_path)


def test_fetch_rejects_a_url_without_a_file_name(tmp_path: Path) -> None:
    """A URL whose path ends in '..' gives no cache file name."""
    with pytest.raises(
        ValueError, match=r"ends in '\.\.' \(percent-decoded\), which is not a usable"
    ):
        fetch("http://127.0.0.1:9/data/%2e%2e", PAYLOAD_SHA, tmp_path)


def test_fetch_reports_progress(server: LoopbackServer, tmp_path: Path) -> None:
    """The progress callback sees growing byte counts ending at the full size."""
    url = server.serve("/file.bin", Reply(body=PAYLOAD))
    seen: list[tuple[int, int | None]] = []

    fetch(url, PAYLOAD_SHA, tmp_path, progress=lambda done, total: seen.append((done, total)))

    assert seen[0] == (0, len(PAYLOAD))
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_log_progress_writes_sparse_lines() -> None:
    """A large file gives about ten lines, a small one only its completion line."""
    stream = io.StringIO()
    report = log_progress(stream, label="big")
    total = 100 << 20
    for done in range(0, total + 1, 1 << 20):
        report(done, total)
    lines = stream.getvalue().splitlines()
    assert 9 <= len(lines) <= 11
    assert lines[-1] == "big: 100.0 MiB of 100.0 MiB (100%)"

    stream = io.StringIO()
    report = log_progress(stream, label="small")
    for done in [*range(0, 84_000, 8_000), 84_000]:
        report(done, 84_000)
    assert stream.getvalue().splitlines() == ["small: 0.1 MiB of 0.1 MiB (100%)"]


def test_log_progress_without_total_writes_every_few_mib(caplog: pytest.LogCaptureFixture) -> None:
    """Without a Content-Length a line goes to the logger every every_bytes."""
    logger = download.logger.getChild("test")
    report = log_progress(logger, every_bytes=2 << 20)
    with caplog.at_level("INFO", logger=logger.name):
        for done in range(0, (10 << 20) + 1, 1 << 20):
            report(done, None)
    assert [record.getMessage() for record in caplog.records][-1] == "download: 10.0 MiB so far"
    assert len(caplog.records) == 5


# --------------------------------------------------------------------------- safe_extract


def add_file(tar: tarfile.TarFile, name: str, payload: bytes = b"data\n") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


@pytest.mark.parametrize(
    "mode, suffix", [("w:gz", ".tar.gz"), ("w:bz2", ".tar.bz2"), ("w:xz", ".tar.xz"), ("w", ".tar")]
)
def test_safe_extract_unpacks_and_marks_complete(mode: str, suffix: str, tmp_path: Path) -> None:
    """Every supported compression unpacks into dest, which then holds the .complete marker."""
    archive = tmp_path / f"archive{suffix}"
    with tarfile.open(archive, mode) as tar:  # type: ignore[call-overload]  # mode: str, not a Literal
        add_file(tar, "top/inner/a.txt", b"alpha\n")
        add_symlink(tar, "top/link.txt", "inner/a.txt")
    dest = tmp_path / "out" / "dest"

    result = safe_extract(archive, dest)

    assert result == dest
    assert (dest / "top" / "inner" / "a.txt").read_bytes() == b"alpha\n"
    assert (dest / "top" / "link.txt").read_bytes() == b"alpha\n"
    assert (dest / ".complete").is_file()
    assert sorted(path.name for path in dest.parent.iterdir()) == ["dest"]


def test_safe_extract_reuses_a_complete_folder(tmp_path: Path) -> None:
    """A folder with the .complete marker is returned without reading the archive."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "kept.txt").write_text("kept\n")
    (dest / ".complete").write_text("")

    assert safe_extract(tmp_path / "no-such-archive.tar.gz", dest) == dest
    assert (dest / "kept.txt").read_text() == "kept\n"


def test_safe_extract_redoes_an_incomplete_folder(tmp_path: Path) -> None:
    """A folder without the marker (an interrupted extraction) is removed and redone."""
    archive = tmp_path / "archive.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "a.txt")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "leftover.txt").write_text("partial\n")

    safe_extract(archive, dest)

    assert sorted(path.name for path in dest.iterdir()) == [".complete", "a.txt"]


@pytest.mark.parametrize(
    "build, member",
    [
        (lambda tar, outside: add_file(tar, "../escaped.txt"), "../escaped.txt"),
        (lambda tar, outside: add_file(tar, str(outside / "absolute.txt")), "absolute.txt"),
        (lambda tar, outside: add_symlink(tar, "sneaky", "../../outside"), "sneaky"),
        (lambda tar, outside: add_symlink(tar, "sneaky", str(outside)), "sneaky"),
    ],
    ids=["dotdot", "absolute-path", "outward-symlink", "absolute-symlink"],
)
def test_safe_extract_refuses_members_leaving_dest(
    build: Callable[[tarfile.TarFile, Path], None], member: str, tmp_path: Path
) -> None:
    """Members that would land outside dest are refused, and nothing is written anywhere."""
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "harmless.txt")
        build(tar, outside)
        add_file(tar, "sneaky/pwned.txt")
        add_file(tar, "after.txt")
    dest = work / "dest"

    with pytest.raises(
        DownloadError, match=rf"evil\.tar\.gz: refused to extract member '[^']*{member}'"
    ):
        safe_extract(archive, dest)

    assert files_under(tmp_path) == [archive]
    assert list(work.iterdir()) == []
    assert list(outside.iterdir()) == []


def test_safe_extract_reports_a_damaged_archive(tmp_path: Path) -> None:
    """A file that is not a tarball gives a clear error and no dest folder."""
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"this is not a tarball")
    dest = tmp_path / "dest"

    with pytest.raises(DownloadError, match=r"broken\.tar\.gz: not a readable tar archive"):
        safe_extract(archive, dest)

    assert not dest.exists()
    assert files_under(tmp_path) == [archive]


# --------------------------------------------------------------------------- end to end


def test_cifar_tarball_round_trips_over_loopback(server: LoopbackServer, tmp_path: Path) -> None:
    """A CIFAR-format tarball is downloaded, extracted and parsed back pixel for pixel."""
    rng = np.random.default_rng(7)
    x_train = rng.integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8)
    y_train = rng.integers(0, 3, size=12)
    x_test = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    y_test = np.array([0, 1, 2, 2, 1, 0])
    names = ["cat", "dog", "ship"]
    tarball = write_cifar_tarball(
        tmp_path / "built" / "cifar-10-python.tar.gz",
        x_train,
        y_train,
        x_test,
        y_test,
        names,
        batches=2,
    )
    url = server.serve("/cifar/cifar-10-python.tar.gz", Reply(body=tarball.read_bytes()))

    archive = fetch(
        url, hashlib.sha256(tarball.read_bytes()).hexdigest(), tmp_path / "cache", backoff=0.01
    )
    folder = safe_extract(archive, tmp_path / "extracted")
    got = formats.read_cifar(folder, batches=2)

    assert sorted(path.name for path in (folder / "cifar-10-batches-py").iterdir()) == [
        "batches.meta",
        "data_batch_1",
        "data_batch_2",
        "readme.html",
        "test_batch",
    ]
    assert got[0].shape == (12, 32, 32, 3) and got[0].dtype == np.uint8
    np.testing.assert_array_equal(got[0], x_train)
    np.testing.assert_array_equal(got[1], y_train)
    np.testing.assert_array_equal(got[2], x_test)
    np.testing.assert_array_equal(got[3], y_test)
    assert got[4] == names


def shared_wine_csv() -> Path | None:
    """Find the wine file via REGBENCH_SHARED_DATA or the shared folder beside the repo."""
    candidates = []
    if os.environ.get("REGBENCH_SHARED_DATA"):
        shared = Path(os.environ["REGBENCH_SHARED_DATA"])
        candidates += [shared / "winequality-red.csv", shared / "data" / "winequality-red.csv"]
    candidates.append(
        Path(__file__).resolve().parents[2] / "shared" / "data" / "winequality-red.csv"
    )
    return next((path for path in candidates if path.is_file()), None)


def test_wine_quality_downloads_and_reads(server: LoopbackServer, tmp_path: Path) -> None:
    """The reference wine file verifies over loopback and reads as 1599 x 11 in two classes."""
    source = shared_wine_csv()
    if source is None:
        pytest.skip(
            "winequality-red.csv not found: set REGBENCH_SHARED_DATA to the folder holding it "
            "or place it in ../shared/data/"
        )
    url = server.serve("/wine-quality/winequality-red.csv", Reply(body=source.read_bytes()))

    path = fetch(url, WINE_SHA, tmp_path / "cache", backoff=0.01)
    x, y, features, classes = formats.read_csv(
        path, target="quality", delimiter=";", target_transform=">= 6"
    )

    assert path.name == "winequality-red.csv"
    assert x.shape == (1599, 11) and x.dtype == np.float32
    assert y.shape == (1599,) and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1}
    assert features[0] == "fixed acidity" and "quality" not in features
    assert classes == ["quality < 6", "quality >= 6"]
