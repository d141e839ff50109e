"""Trustworthy downloads: fetch a file by URL and sha256 into a cache, and unpack tarballs safely.

:func:`download` is what rule ``download_dataset`` runs for a URL dataset.
A file is identified by its sha256, not by its URL: :func:`fetch` stores it at
``cache_dir / sha256 / <file name>`` (:func:`regbench.inputs.cached_path`) and
only after the bytes it received hash to the expected value, so anything found
at that path was verified when it was written and a rerun (or a second study)
never downloads it again. A fetch has an overall deadline, and
:func:`stop_on_signals` turns SIGTERM and SIGINT into an exception that removes
the partial file on its way out. :func:`safe_extract` unpacks a verified
tarball with :mod:`tarfile`'s ``data`` filter and a stricter check of its own,
so that no member can land outside the destination folder.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import ipaddress
import logging
import math
import os
import random
import re
import shutil
import signal
import ssl
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import client as http_client
from pathlib import Path
from types import FrameType
from typing import IO, Any, BinaryIO

from regbench.inputs import cached_path, check_sha256, extraction_folder, is_tarball

__all__ = [
    "DEFAULT_DEADLINE_S",
    "DOWNLOAD_CACHE_ENV",
    "DOWNLOAD_DEADLINE_ENV",
    "DeadlineExceeded",
    "DownloadError",
    "Interrupted",
    "ProgressCallback",
    "download",
    "download_cache",
    "download_deadline",
    "download_logged",
    "download_path",
    "fetch",
    "file_sha256",
    "log_progress",
    "safe_extract",
    "stop_on_signals",
    "verify_cached",
]

logger = logging.getLogger(__name__)

#: Called as ``progress(done_bytes, total_bytes_or_None)`` while a file streams in.
ProgressCallback = Callable[[int, int | None], None]

#: How long one fetch may take in all, retries and their waits included.
DEFAULT_DEADLINE_S = 3600.0
#: Environment variable naming the download cache folder (default ``resources/downloads``).
DOWNLOAD_CACHE_ENV = "REGBENCH_DOWNLOADS"
_DEFAULT_CACHE = "resources/downloads"
#: Environment variable giving one download's overall deadline in seconds.
DOWNLOAD_DEADLINE_ENV = "REGBENCH_DOWNLOAD_DEADLINE"

_CHUNK_BYTES = 1 << 20
# A Retry-After longer than this is not waited for; the ordinary backoff applies.
_MAX_RETRY_AFTER_S = 60.0
_COMPLETE_MARKER = ".complete"
_USER_AGENT = "regbench/0.1 (sha256-verified downloads)"


class DownloadError(RuntimeError):
    """A download or an extraction failed; the message names the URL or archive and the cause."""


class DeadlineExceeded(DownloadError):
    """A download did not finish within its overall deadline."""


class Interrupted(BaseException):
    """SIGTERM or SIGINT stopped a download (see :func:`stop_on_signals`).

    A ``BaseException``, like :class:`KeyboardInterrupt`, so that no handler
    meant for failed downloads retries or swallows it; ``finally`` blocks still
    run, and the one around the partial file removes it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        #: Bytes of the body received when the signal came, where known.
        self.received: int | None = None


class _TransientError(Exception):
    """A failure worth retrying (connection trouble, timeout, HTTP 429/5xx, truncated body)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class _Clock:
    """The overall deadline of one fetch."""

    url: str
    seconds: float
    start: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def expired(self, received: int, total: int | None) -> DeadlineExceeded:
        of = f" of {total}" if total is not None else ""
        return DeadlineExceeded(
            f"{self.url}: not finished within the deadline of {self.seconds:g} s "
            f"({received}{of} bytes received); nothing was kept"
        )


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`Interrupted` at once.

    Python's default is to die on SIGTERM without running ``finally`` blocks,
    which would leave a partial file behind. Only the main thread can handle
    signals; elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    saved = {number: signal.signal(number, interrupt) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def fetch(
    url: str,
    sha256: str,
    cache_dir: Path,
    *,
    max_bytes: int = 2**31,
    timeout: float = 60.0,
    deadline: float = DEFAULT_DEADLINE_S,
    retries: int = 4,
    backoff: float = 1.0,
    progress: ProgressCallback | None = None,
) -> Path:
    """Download ``url`` (http, https or file) into the cache and return the verified file's path.

    The file lands at ``cache_dir / sha256 / <last segment of the URL path>``. If that
    file already exists and is not empty it is returned without any network access once
    its bytes still hash to ``sha256`` (files are only ever moved there after their hash
    matched, but may be edited later; an edited one is removed and fetched again).
    Otherwise the body is streamed into a temporary file in the same folder and hashed
    on the way; it is moved into place with :func:`os.replace` only once
    the hash matches.

    Transient failures (connection errors, timeouts, HTTP 429 and 5xx, a body
    shorter than its Content-Length) are retried ``retries`` times with exponential
    backoff starting at ``backoff`` seconds, or after the server's ``Retry-After``
    when that is at most a minute. Other HTTP errors are not retried. A
    Content-Length above ``max_bytes`` fails before reading; so does a body that
    streams past it. ``timeout`` bounds every socket operation, and ``deadline``
    the whole fetch, retries and waits included: it is checked whenever bytes
    arrive, and each attempt's socket timeout is cut to the time left when the
    attempt starts, so a silent server holds a fetch at most one socket timeout
    (``timeout``) past it.

    Raises:
        ValueError: the URL gives no usable cache file name (:mod:`regbench.inputs`),
            ``sha256`` is not 64 hex digits, or an argument is out of range.
        DownloadError: anything else went wrong (:class:`DeadlineExceeded` when time
            ran out); the message names the URL and the cause, and neither the final
            path nor a temporary file is left behind.
    """
    _check_arguments(max_bytes, timeout, deadline, retries, backoff)
    destination = cached_path(cache_dir, url, sha256)
    expected = check_sha256(sha256)
    if destination.is_file() and destination.stat().st_size > 0:
        try:
            verify_cached(destination, expected)
        except DownloadError as error:
            # Verified once, changed since: the cache holds the sha256's bytes or nothing.
            logger.warning("%s; downloading it again", error)
            destination.unlink()
        else:
            logger.debug("%s: using cached %s", url, destination)
            return destination
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(
            f"{url}: cannot create cache folder {destination.parent}: {error}"
        ) from error
    clock = _Clock(url, deadline)

    def attempt() -> None:
        limits = _Limits(max_bytes, min(timeout, clock.remaining()), clock)
        _download_once(url, expected, destination, limits, progress)

    _retry(url, attempt, retries, backoff, clock)
    logger.info("%s: downloaded and verified into %s", url, destination)
    return destination


def _check_arguments(
    max_bytes: int, timeout: float, deadline: float, retries: int, backoff: float
) -> None:
    for name, value, least in (
        ("max_bytes", max_bytes, "positive"),
        ("timeout", timeout, "positive"),
        ("deadline", deadline, "positive"),
        ("retries", retries, "zero or more"),
        ("backoff", backoff, "zero or more"),
    ):
        if not (value > 0 if least == "positive" else value >= 0):
            raise ValueError(f"{name} must be {least}, got {value}")


def _retry(
    url: str, attempt: Callable[[], None], retries: int, backoff: float, clock: _Clock
) -> None:
    """Run ``attempt`` until it succeeds, retrying transient failures with backoff."""
    attempts = retries + 1
    for number in range(1, attempts + 1):
        try:
            attempt()
            return
        except _TransientError as error:
            if number == attempts:
                raise DownloadError(
                    f"{url}: download failed after {attempts} attempt(s): {error.reason}"
                ) from None
            delay = backoff * 2 ** (number - 1) * random.uniform(1.0, 1.25)
            if error.retry_after is not None and error.retry_after <= _MAX_RETRY_AFTER_S:
                delay = error.retry_after
            if delay >= clock.remaining():
                raise DeadlineExceeded(
                    f"{url}: {error.reason}; no time is left for another attempt within "
                    f"the deadline of {clock.seconds:g} s"
                ) from None
            logger.warning(
                "%s: %s; retrying in %.1f s (attempt %d of %d)",
                url,
                error.reason,
                delay,
                number + 1,
                attempts,
            )
            time.sleep(delay)


def _download_once(
    url: str,
    expected: str,
    destination: Path,
    limits: _Limits,
    progress: ProgressCallback | None,
) -> None:
    """Make one attempt: stream into a temporary file, verify, and move into place."""
    if limits.timeout <= 0:
        raise limits.clock.expired(0, None)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() == "file":
        source, total = _open_file_url(url, parts)
    else:
        source, total = _open_http(url, limits.timeout)
    with source:
        if total is not None and total > limits.max_bytes:
            raise DownloadError(
                f"{url}: Content-Length is {total} bytes, above the limit of "
                f"{limits.max_bytes} bytes (max_bytes); not downloading"
            )
        temporary: Path | None = None
        try:
            handle, temporary_name = tempfile.mkstemp(
                dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
            )
            temporary = Path(temporary_name)
            # Unbuffered: the partial file holds every byte received so far.
            with os.fdopen(handle, "wb", buffering=0) as sink:
                actual, size = _stream(url, source, sink, total, limits, progress)
                sink.flush()
                os.fsync(sink.fileno())
            if total is not None and size < total:
                raise _TransientError(
                    f"the connection closed after {size} of {total} bytes (truncated body)"
                )
            if actual != expected:
                raise DownloadError(
                    f"{url}: checksum mismatch: expected sha256 {expected}, got {actual} "
                    f"({size} bytes); the file was discarded"
                )
            os.chmod(temporary, 0o644)
            os.replace(temporary, destination)
        except OSError as error:
            raise DownloadError(f"{url}: cannot write {destination}: {error}") from error
        finally:
            if temporary is not None:
                temporary.unlink(missing_ok=True)


def _open_file_url(url: str, parts: urllib.parse.SplitResult) -> tuple[BinaryIO, int | None]:
    """Open a ``file:`` URL on this machine; a missing file is a permanent error."""
    if parts.netloc not in ("", "localhost"):
        raise DownloadError(f"{url}: file URLs must name a local path (host {parts.netloc!r})")
    path = Path(urllib.request.url2pathname(parts.path))
    try:
        stream = open(path, "rb")  # noqa: SIM115 - the caller closes it with a `with` block.
        size = os.fstat(stream.fileno()).st_size
    except FileNotFoundError:
        raise DownloadError(f"{url}: no such file {path}") from None
    except OSError as error:
        raise DownloadError(f"{url}: cannot read {path}: {error}") from error
    return stream, size


def _open_http(url: str, timeout: float) -> tuple[BinaryIO, int | None]:
    """Send the GET request and classify failures as transient or permanent."""
    request = urllib.request.Request(
        url, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    )
    try:
        response = _opener_for(url).open(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        retry_after = _parse_retry_after(error.headers.get("Retry-After"))
        error.close()
        reason = f"HTTP {error.code} {error.reason}"
        if error.code == 429 or 500 <= error.code <= 599:
            raise _TransientError(reason, retry_after) from None
        raise DownloadError(f"{url}: {reason} (not retried)") from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, ssl.SSLCertVerificationError):
            raise DownloadError(f"{url}: TLS certificate not accepted: {error.reason}") from None
        if isinstance(error.reason, TimeoutError):
            raise _TransientError(f"timed out after {timeout} s while connecting") from None
        raise _TransientError(f"cannot connect: {error.reason}") from None
    except TimeoutError:
        raise _TransientError(f"timed out after {timeout} s waiting for a response") from None
    except (OSError, http_client.HTTPException) as error:
        raise _TransientError(f"connection failed: {error!r}") from None
    length = response.headers.get("Content-Length")
    total = int(length) if length is not None and length.strip().isdigit() else None
    return response, total


def _opener_for(url: str) -> urllib.request.OpenerDirector:
    """Return an opener; loopback hosts bypass any proxy configured in the environment."""
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _parse_retry_after(value: str | None) -> float | None:
    """Return the seconds a Retry-After header asks for (delta-seconds or HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


@dataclass(frozen=True)
class _Limits:
    """What one attempt may take: bytes, seconds per socket operation, and the overall clock."""

    max_bytes: int
    timeout: float
    clock: _Clock


def _stream(
    url: str,
    source: BinaryIO,
    sink: IO[bytes],
    total: int | None,
    limits: _Limits,
    progress: ProgressCallback | None,
) -> tuple[str, int]:
    """Copy ``source`` into ``sink`` while hashing; return the hex sha256 and the byte count.

    Reads return whatever has arrived (``read1``) rather than waiting for a full
    chunk, so the byte count in every message is what was received, and the
    deadline is looked at whenever anything arrives.
    """
    digest = hashlib.sha256()
    done = 0
    read = getattr(source, "read1", source.read)
    if progress is not None:
        progress(0, total)
    while True:
        if limits.clock.remaining() <= 0:
            raise limits.clock.expired(done, total)
        # Reading one byte past the cap is enough to know the body is too large.
        want = min(_CHUNK_BYTES, limits.max_bytes + 1 - done)
        try:
            chunk = read(want)
        except TimeoutError:
            if limits.clock.remaining() <= 0:
                raise limits.clock.expired(done, total) from None
            raise _TransientError(
                f"timed out after {limits.timeout:g} s waiting for data ({done} bytes received)"
            ) from None
        except (OSError, http_client.HTTPException) as error:
            raise _TransientError(f"reading failed after {done} bytes: {error!r}") from None
        except Interrupted as stop:
            stop.received = done
            raise
        if not chunk:
            return digest.hexdigest(), done
        done += len(chunk)
        if done > limits.max_bytes:
            raise DownloadError(
                f"{url}: the body is larger than the limit of {limits.max_bytes} bytes "
                "(max_bytes); stopped reading"
            )
        digest.update(chunk)
        sink.write(chunk)
        if progress is not None:
            progress(done, total)


def log_progress(
    target: logging.Logger | IO[str],
    *,
    label: str = "download",
    every_bytes: int = 4 << 20,
) -> ProgressCallback:
    """Return a progress callback that writes sparse lines to a logger or a text stream.

    With a known total it writes when another 10% has arrived and at least
    ``every_bytes`` since its last line, and always at completion, so a small file
    gives one line and a large one about ten. Without a total it writes every
    ``every_bytes``.
    """
    last_reported = -1

    def emit(line: str) -> None:
        if isinstance(target, logging.Logger):
            target.info("%s", line)
        else:
            target.write(line + "\n")
            target.flush()

    def report(done: int, total: int | None) -> None:
        nonlocal last_reported
        if done == 0 or done == last_reported:
            return
        if total:
            finished = done >= total
            tenth_passed = last_reported < 0 or done * 10 // total > last_reported * 10 // total
            if finished or (tenth_passed and done - max(last_reported, 0) >= every_bytes):
                emit(f"{label}: {_mib(done)} of {_mib(total)} ({100 * done // total}%)")
                last_reported = done
        elif done - max(last_reported, 0) >= every_bytes:
            emit(f"{label}: {_mib(done)} so far")
            last_reported = done

    return report


def _mib(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB"


# --------------------------------------------------------------------------- datasets


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_cached(path: Path, sha256: str) -> None:
    """Check that a cached file still has the sha256 it was verified with when it was written.

    A file in the cache was verified once, but anything may edit it later; every
    step that uses its bytes asks this first. Raises :class:`DownloadError`
    naming the file and both digests.
    """
    actual = file_sha256(path)
    if actual != sha256.lower():
        raise DownloadError(
            f"{path}: changed since it was downloaded: sha256 {actual}, expected {sha256.lower()}"
        )


def download_cache() -> Path:
    """The download cache folder: ``$REGBENCH_DOWNLOADS`` or ``resources/downloads``."""
    return Path(os.environ.get(DOWNLOAD_CACHE_ENV) or _DEFAULT_CACHE)


def download_deadline() -> float:
    """Seconds one download may take in all: ``$REGBENCH_DOWNLOAD_DEADLINE`` or one hour."""
    text = os.environ.get(DOWNLOAD_DEADLINE_ENV, "").strip()
    if not text:
        return DEFAULT_DEADLINE_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{DOWNLOAD_DEADLINE_ENV}={text!r}: expected a number of seconds above 0")
    return seconds


def download_path(spec: Mapping[str, Any], cache: Path | None = None) -> Path:
    """Where a URL dataset's verified file lives: ``cache / sha256 / <URL's file name>``."""
    return cached_path(download_cache() if cache is None else cache, spec["url"], spec["sha256"])


def download(
    spec: Mapping[str, Any],
    cache: Path | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> Path:
    """Fetch a URL dataset's file into the cache (once), verify it, unpack a tarball; return it.

    A file already in the cache is fetched again only if its bytes no longer hash
    to the sha256 (:func:`verify_cached`). Raises
    :class:`regbench.download.DownloadError` naming the URL (a checksum mismatch
    gives the expected and the actual sha256).
    """
    cache = download_cache() if cache is None else Path(cache)
    path = fetch(
        spec["url"], spec["sha256"], cache, deadline=download_deadline(), progress=progress
    )
    if is_tarball(path.name):
        safe_extract(path, extraction_folder(path))
    return path


def download_logged(spec: Mapping[str, Any], cache: Path | None, log_path: Path | str) -> Path:
    """Run :func:`download`, writing progress, retries and any failure to the job log.

    SIGTERM and SIGINT stop it at once (:class:`regbench.download.Interrupted`,
    re-raised once the partial file is gone and the log says so).
    """
    target = download_path(spec, cache)
    with open(log_path, "a", encoding="utf-8") as log, _download_log(log), stop_on_signals():
        print(f"{spec['url']} -> {target}", file=log, flush=True)
        try:
            path = download(spec, cache, progress=log_progress(log, label=target.name))
        except Interrupted as stop:
            received = "" if stop.received is None else f" after {stop.received} bytes"
            print(
                f"error: {spec['url']}: {stop}{received}; the partial file was removed",
                file=log,
                flush=True,
            )
            raise
        except (DownloadError, ValueError) as error:
            hint = (
                f" (set {DOWNLOAD_DEADLINE_ENV} to allow longer)"
                if isinstance(error, DeadlineExceeded)
                else ""
            )
            print(f"error: {error}{hint}", file=log, flush=True)
            raise
        print(f"verified sha256 {spec['sha256']}: {path}", file=log, flush=True)
    return path


@contextlib.contextmanager
def _download_log(log: Any) -> Iterator[None]:
    """Send regbench.download's log records (retries, completion) to the open job log."""
    download_logger = logging.getLogger("regbench.download")
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    saved_level = download_logger.level
    download_logger.addHandler(handler)
    download_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        download_logger.removeHandler(handler)
        download_logger.setLevel(saved_level)


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a tar archive (plain, gz, bz2 or xz) into the fresh folder ``dest`` and return it.

    A folder holding the ``.complete`` marker (written last) is returned as it is; an
    incomplete one is removed and redone. Members are unpacked into a temporary
    folder next to ``dest`` with :mod:`tarfile`'s ``data`` filter, which refuses
    ``..`` members, links leaving the folder and special files; absolute member names,
    which that filter would merely strip of their leading ``/``, are refused too.
    Only a fully extracted folder is renamed to ``dest``.

    Raises:
        DownloadError: the archive cannot be read or a member was refused (the message
            names the archive and the member); nothing is left at ``dest``.
    """
    archive = Path(archive)
    dest = Path(dest)
    if (dest / _COMPLETE_MARKER).is_file():
        return dest
    if not hasattr(tarfile, "data_filter"):
        raise DownloadError(
            f"{archive}: safe extraction needs tarfile filters (Python 3.10.12+, 3.11.4+ or 3.12)"
        )
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.exists():
        logger.warning("%s: removing incomplete extraction at %s", archive, dest)
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(staging, filter=_strict_data_filter)
        except tarfile.FilterError as error:
            member = error.tarinfo.name if error.tarinfo is not None else "?"
            raise DownloadError(
                f"{archive}: refused to extract member {member!r}: {error}; nothing was extracted"
            ) from None
        except FileNotFoundError:
            raise DownloadError(f"{archive}: no such archive") from None
        except (tarfile.TarError, EOFError, zlib.error) as error:
            raise DownloadError(f"{archive}: not a readable tar archive: {error}") from None
        except OSError as error:
            raise DownloadError(f"{archive}: extraction into {dest} failed: {error}") from error
        (staging / _COMPLETE_MARKER).write_text(
            f"extracted from {archive.name}\n", encoding="utf-8"
        )
        os.chmod(staging, 0o755)
        try:
            os.replace(staging, dest)
        except OSError:
            # Another process finished the same extraction first; its result is as good.
            if (dest / _COMPLETE_MARKER).is_file():
                return dest
            raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return dest


def _strict_data_filter(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
    """Refuse absolute member names, then apply tarfile's ``data`` filter."""
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[/\\]", name):
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, dest_path)
