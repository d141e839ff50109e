"""Data files written for tests: CIFAR-10's python tarball layout, reproducibly."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from regbench.formats import CIFAR_FOLDER

__all__ = ["cifar_batch", "write_cifar_tarball"]


def cifar_batch(images: npt.ArrayLike, labels: npt.ArrayLike, label: str = "batch") -> bytes:
    """One pickled batch as CIFAR-10 stores it: channel-major uint8 rows and a list of labels."""
    array = np.asarray(images, dtype=np.uint8)
    data = np.ascontiguousarray(array.transpose(0, 3, 1, 2)).reshape(len(array), -1)
    batch = {
        b"batch_label": label.encode(),
        b"labels": [int(value) for value in np.asarray(labels).reshape(-1)],
        b"data": data,
        b"filenames": [f"image_{index:06d}.png".encode() for index in range(len(array))],
    }
    # Protocol 4 stores bytes natively; protocol 2 would need the codecs module to load.
    return pickle.dumps(batch, protocol=4)


def write_cifar_tarball(
    path: Path,
    x_train: npt.ArrayLike,
    y_train: npt.ArrayLike,
    x_test: npt.ArrayLike,
    y_test: npt.ArrayLike,
    class_names: Sequence[str],
    batches: int = 5,
) -> Path:
    """Write uint8 (n, 32, 32, 3) images as a CIFAR-10 python ``.tar.gz`` whose bytes
    depend only on its contents (so its sha256 is reproducible)."""
    members = [
        (f"data_batch_{index}", cifar_batch(images, labels))
        for index, (images, labels) in enumerate(
            zip(
                np.array_split(np.asarray(x_train), batches),
                np.array_split(np.asarray(y_train), batches),
                strict=True,
            ),
            start=1,
        )
    ]
    members.append(("test_batch", cifar_batch(x_test, y_test)))
    meta = {b"label_names": [name.encode() for name in class_names], b"num_vis": 3072}
    members.append(("batches.meta", pickle.dumps(meta, protocol=4)))
    members.append(("readme.html", b"<p>Images written in CIFAR-10's layout.</p>\n"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "wb") as raw,
        # A zero mtime and no name in the gzip header keep the bytes reproducible.
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        folder = tarfile.TarInfo(CIFAR_FOLDER)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for name, payload in members:
            info = tarfile.TarInfo(f"{CIFAR_FOLDER}/{name}")
            info.size, info.mode = len(payload), 0o644
            tar.addfile(info, io.BytesIO(payload))
    return path
