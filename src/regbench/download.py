"""Trustworthy downloads: fetch a file by URL and sha256 into a cache, and unpack tarballs safely.

A file is identified by its sha256, not by its URL: :func:`fetch` stores it at
``cache_dir / sha256 / <file name>`` and only after the bytes it received hash to
the expected value, so anything found at that path was verified when it was
written and a rerun (or a second study) never downloads it again.
:func:`safe_extract` unpacks a verified tarball with :mod:`tarfile`'s ``data``
filter and a stricter check of its own, so that no member can land outside the
destination folder.
"""

from __future__ import annotations

import email.utils
import hashlib
import ipaddress
import logging
import os
import random
import re
import shutil
import ssl
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from http import client as http_client
from pathlib import Path
from typing import IO, BinaryIO

__all__ = [
    "DownloadError",
    "ProgressCallback",
    "fetch",
    "log_progress",
    "safe_extract",
    "sha256_file",
]

logger = logging.getLogger(__name__)

#: Called as ``progress(done_bytes, total_bytes_or_None)`` while a file streams in.
ProgressCallback = Callable[[int, int | None], None]

_CHUNK_BYTES = 1 << 20
_SHA256_PATTERN = re.compile(r"[0-9a-fA-F]{64}")
# A Retry-After longer than this is not waited for; the ordinary backoff applies.
_MAX_RETRY_AFTER_S = 60.0
_COMPLETE_MARKER = ".complete"
_USER_AGENT = "regbench/0.1 (sha256-verified downloads)"


class DownloadError(RuntimeError):
    """A download or an extraction failed; the message names the URL or archive and the cause."""


class _TransientError(Exception):
    """A failure worth retrying (connection trouble, timeout, HTTP 429/5xx, truncated body)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def sha256_file(path: Path | str) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    url: str,
    sha256: str,
    cache_dir: Path,
    *,
    max_bytes: int = 2**31,
    timeout: float = 60.0,
    retries: int = 4,
    backoff: float = 1.0,
    progress: ProgressCallback | None = None,
) -> Path:
    """Download ``url`` (http, https or file) into the cache and return the verified file's path.

    The file lands at ``cache_dir / sha256 / <last segment of the URL path>``. If that
    file already exists and is not empty it is returned without any network access:
    files are only ever moved there after their hash matched, so its presence is the
    proof. Otherwise the body is streamed into a temporary file in the same folder
    and hashed on the way; it is moved into place with :func:`os.replace` only once
    the hash matches.

    Transient failures (connection errors, timeouts, HTTP 429 and 5xx, a body
    shorter than its Content-Length) are retried ``retries`` times with exponential
    backoff starting at ``backoff`` seconds, or after the server's ``Retry-After``
    when that is at most a minute. Other HTTP errors are not retried. A
    Content-Length above ``max_bytes`` fails before reading; so does a body that
    streams past it. ``timeout`` bounds every socket operation.

    Raises:
        ValueError: ``sha256`` is not 64 hex digits, or an argument is out of range.
        DownloadError: anything else went wrong; the message names the URL and the
            cause, and neither the final path nor a temporary file is left behind.
    """
    if not isinstance(sha256, str) or not _SHA256_PATTERN.fullmatch(sha256):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r} (for {url})")
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if retries < 0:
        raise ValueError(f"retries must be zero or more, got {retries}")
    if backoff < 0:
        raise ValueError(f"backoff must be zero or more, got {backoff}")
    expected = sha256.lower()
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise DownloadError(
            f"{url}: unsupported URL scheme {parts.scheme!r}; expected http, https or file"
        )
    name = _file_name(url, parts.path)

    destination = Path(cache_dir) / expected / name
    if destination.is_file() and destination.stat().st_size > 0:
        logger.debug("%s: using cached %s", url, destination)
        return destination
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(
            f"{url}: cannot create cache folder {destination.parent}: {error}"
        ) from error

    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        try:
            _download_once(url, parts, expected, destination, max_bytes, timeout, progress)
        except _TransientError as error:
            if attempt == attempts:
                raise DownloadError(
                    f"{url}: download failed after {attempts} attempt(s): {error.reason}"
                ) from None
            delay = backoff * 2 ** (attempt - 1) * random.uniform(1.0, 1.25)
            if error.retry_after is not None and error.retry_after <= _MAX_RETRY_AFTER_S:
                delay = error.retry_after
            logger.warning(
                "%s: %s; retrying in %.1f s (attempt %d of %d)",
                url,
                error.reason,
                delay,
                attempt + 1,
                attempts,
            )
            time.sleep(delay)
        else:
            logger.info("%s: downloaded and verified into %s", url, destination)
            return destination
    raise AssertionError("unreachable: the retry loop either returns or raises")


def _file_name(url: str, url_path: str) -> str:
    """Return the decoded last segment of a URL path, refusing names that are not plain names."""
    name = urllib.parse.unquote(url_path.rsplit("/", 1)[-1])
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise DownloadError(f"{url}: the URL path does not end in a usable file name ({name!r})")
    return name


def _download_once(
    url: str,
    parts: urllib.parse.SplitResult,
    expected: str,
    destination: Path,
    max_bytes: int,
    timeout: float,
    progress: ProgressCallback | None,
) -> None:
    """Make one attempt: stream into a temporary file, verify, and move into place."""
    if parts.scheme.lower() == "file":
        source, total = _open_file_url(url, parts)
    else:
        source, total = _open_http(url, timeout)
    with source:
        if total is not None and total > max_bytes:
            raise DownloadError(
                f"{url}: Content-Length is {total} bytes, above the limit of {max_bytes} bytes "
                "(max_bytes); not downloading"
            )
        temporary: Path | None = None
        try:
            handle, temporary_name = tempfile.mkstemp(
                dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
            )
            temporary = Path(temporary_name)
            with os.fdopen(handle, "wb") as sink:
                actual, size = _stream(url, source, sink, total, max_bytes, timeout, progress)
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


def _stream(
    url: str,
    source: BinaryIO,
    sink: IO[bytes],
    total: int | None,
    max_bytes: int,
    timeout: float,
    progress: ProgressCallback | None,
) -> tuple[str, int]:
    """Copy ``source`` into ``sink`` while hashing; return the hex sha256 and the byte count."""
    digest = hashlib.sha256()
    done = 0
    if progress is not None:
        progress(0, total)
    while True:
        # Reading one byte past the cap is enough to know the body is too large.
        want = min(_CHUNK_BYTES, max_bytes + 1 - done)
        try:
            chunk = source.read(want)
        except TimeoutError:
            raise _TransientError(
                f"timed out after {timeout} s waiting for data ({done} bytes received)"
            ) from None
        except (OSError, http_client.HTTPException) as error:
            raise _TransientError(f"reading failed after {done} bytes: {error!r}") from None
        if not chunk:
            return digest.hexdigest(), done
        done += len(chunk)
        if done > max_bytes:
            raise DownloadError(
                f"{url}: the body is larger than the limit of {max_bytes} bytes (max_bytes); "
                "stopped reading"
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
