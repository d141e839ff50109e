"""Rules for what a study may point at, asked by the config, the datasets and the download code.

A downloaded file is identified by its sha256 and cached at
``<cache>/<sha256>/<file name>``, the file name being the URL's last path
segment. That name is the only part of a cache path a study controls, so it is
held to a plain-name pattern: whatever ``%2F``, ``..``, backslashes or other
characters a URL holds, the cached file cannot leave its folder. The same
module owns the sha256 pattern, the tarball suffixes, the grammar of a CSV
target transform, and :func:`quote`, which keeps a hostile value from turning
an error message into megabytes.
"""

from __future__ import annotations

import re
import reprlib
import urllib.parse
from pathlib import Path

__all__ = [
    "FILE_NAME",
    "MAX_FILE_NAME",
    "SHA256",
    "TARBALL_SUFFIXES",
    "URL_SCHEMES",
    "cached_file_name",
    "cached_path",
    "check_sha256",
    "extraction_folder",
    "is_tarball",
    "parse_target_transform",
    "quote",
]

SHA256 = re.compile(r"[0-9a-fA-F]{64}")
URL_SCHEMES = ("http", "https", "file")
TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")

#: A cached file name: plain ASCII, never hidden (the download's own temporary
#: files start with '.'), never an option-like '-name'.
FILE_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_+.-]*")
#: The longest name derived from it, the download's temporary file
#: ``.<name>.<8 random characters>.part``, stays under the 255-byte limit of a
#: file name on every common filesystem.
MAX_FILE_NAME = 200

# "<op> <number>"; nothing is ever evaluated.
_TARGET_TRANSFORM = re.compile(
    r"\s*(>=|<=|==|>|<)\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*"
)
_EXTRACTED_SUFFIX = ".extracted"

_QUOTE = reprlib.Repr()
_QUOTE.maxstring = _QUOTE.maxother = 100
_QUOTE.maxlist = _QUOTE.maxtuple = _QUOTE.maxdict = _QUOTE.maxset = 4
_QUOTE.maxlevel = 3
_QUOTE_CHARACTERS = 200


def quote(value: object) -> str:
    """``repr(value)`` cut to at most 200 characters, however large or deeply shared the value.

    A YAML alias can make a ten-line config hold a billion-element list; its
    full repr would take minutes and gigabytes to build. :mod:`reprlib` looks
    at a few elements of each level only, so this takes no time either.
    """
    text = _QUOTE.repr(value)
    return text if len(text) <= _QUOTE_CHARACTERS else text[: _QUOTE_CHARACTERS - 3] + "..."


def check_sha256(value: object) -> str:
    """The lower-case digest, or ValueError saying what a sha256 looks like."""
    if not isinstance(value, str) or not SHA256.fullmatch(value):
        raise ValueError(
            f"{quote(value)} is not a sha256: expected 64 hexadecimal digits "
            "(compute it with: sha256sum <file>)"
        )
    return value.lower()


def cached_file_name(url: str) -> str:
    """The name a URL's file is cached under: its last path segment, percent-decoded.

    Raises ValueError when the scheme is not http, https or file, or when the
    decoded segment is not a plain file name (:data:`FILE_NAME`, at most
    :data:`MAX_FILE_NAME` characters): ``..%2F..%2Fx.csv`` decodes to
    ``../../x.csv`` and is refused rather than rewritten, so the study's author
    sees which URL is at fault.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in URL_SCHEMES:
        raise ValueError(
            f"{quote(url)} has scheme {quote(parts.scheme)}; expected http, https or file"
        )
    name = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
    if not name:
        raise ValueError(
            f"{quote(url)} does not end in a file name; expected a URL to a file "
            "(its last path segment names the file in the download cache)"
        )
    if len(name) > MAX_FILE_NAME or not FILE_NAME.fullmatch(name):
        raise ValueError(
            f"{quote(url)} ends in {quote(name)} (percent-decoded), which is not a usable "
            f"file name: the download cache stores the file under it, so it must be 1 to "
            f"{MAX_FILE_NAME} letters, digits, '_', '+', '-' and '.', not starting with "
            "'.' or '-'"
        )
    return name


def cached_path(cache: Path, url: str, sha256: str) -> Path:
    """Where the verified file of ``url`` lives: ``cache / sha256 / <file name>``."""
    return Path(cache) / check_sha256(sha256) / cached_file_name(url)


def is_tarball(name: str) -> bool:
    """Whether a downloaded file (by name) is a tarball to unpack."""
    return name.lower().endswith(TARBALL_SUFFIXES)


def extraction_folder(archive: Path) -> Path:
    """The folder a downloaded tarball is unpacked into, next to it in the cache."""
    return archive.with_name(archive.name + _EXTRACTED_SUFFIX)


def parse_target_transform(transform: str) -> tuple[str, str]:
    """Split ``"<op> <number>"`` into its operator and number text; nothing is evaluated."""
    match = _TARGET_TRANSFORM.fullmatch(transform)
    if match is None:
        raise ValueError(
            f"{quote(transform)} is not of the form '<op> <number>' with op one of "
            ">=, >, <=, <, == (for example '>= 6')"
        )
    return match.group(1), match.group(2)
