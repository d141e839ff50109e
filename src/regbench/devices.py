"""Give each GPU job on a shared workstation cards of its own.

Snakemake's ``--resources gpu=N`` bounds how many GPU jobs run at once, but it
does not say which card each job should use: without help every TensorFlow
process sees every card and starts on card 0. Here a job claims free cards
before TensorFlow starts, by taking an exclusive ``flock`` on one lock file per
card, and narrows ``CUDA_VISIBLE_DEVICES`` to them. The kernel drops the lock
when the job's process ends, however it ends, so a crashed job never leaves a
card claimed. Under a real scheduler (SLURM with ``--gpus``) the job already
sees only its own cards, and nothing is locked.

No TensorFlow here: this must run before TensorFlow is imported.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_LOCK_DIR",
    "GpuClaim",
    "claim_gpus",
    "detect_gpu_count",
    "device_pool",
    "gpu_slots",
    "lock_path",
    "parse_visible_devices",
]

#: Machine-wide and fixed (not $TMPDIR, which Snakemake may set per job), so
#: that every job on the machine, of this study or another, sees the same locks.
#: ``REGBENCH_GPU_LOCK_DIR`` overrides it.
DEFAULT_LOCK_DIR = Path("/tmp/regbench-gpu-slots")

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def parse_visible_devices(value: str | None) -> list[str] | None:
    """The devices a ``CUDA_VISIBLE_DEVICES`` value names; None when it is unset.

    CUDA reads the list up to the first invalid entry, and ``-1`` is the usual
    way to hide every card, so the list stops there.
    """
    if value is None:
        return None
    devices: list[str] = []
    for entry in value.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break
        devices.append(entry)
    return devices


def device_pool(visible: str | None, detected: int) -> list[str]:
    """The cards a job may claim: the inherited ``CUDA_VISIBLE_DEVICES``, else all ``detected``."""
    if detected < 0:
        raise ValueError(f"detected GPU count must be >= 0, got {detected}")
    inherited = parse_visible_devices(visible)
    if inherited is not None:
        return inherited
    return [str(index) for index in range(detected)]


def lock_path(lock_dir: Path, device: str) -> Path:
    """The lock file that stands for ``device`` (an index, a UUID or a MIG name)."""
    if not device:
        raise ValueError("a device name must not be empty")
    return lock_dir / f"gpu-{_UNSAFE.sub('_', device)}.lock"


def detect_gpu_count() -> int:
    """How many NVIDIA cards the driver reports on this machine (0 without a driver)."""
    with contextlib.suppress(OSError):
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    return 0


@dataclass
class GpuClaim:
    """Cards held by this process; ``release`` (or process exit) gives them back."""

    devices: list[str]
    _files: list[int] = field(default_factory=list, repr=False)

    @property
    def holds_locks(self) -> bool:
        """Whether other jobs are kept off these cards by this claim's locks."""
        return bool(self._files)

    @property
    def visible_devices(self) -> str:
        """The ``CUDA_VISIBLE_DEVICES`` value that shows exactly these cards."""
        return ",".join(self.devices)

    def release(self) -> None:
        """Unlock and close every lock file this claim holds."""
        while self._files:
            os.close(self._files.pop())  # Closing the last descriptor drops the flock.


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding ``path``'s exclusive lock, or None if another holds it."""
    # Read-only, so that a lock file another user created can still be locked.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def claim_gpus(
    count: int,
    pool: Sequence[str],
    lock_dir: Path = DEFAULT_LOCK_DIR,
    *,
    timeout_s: float = 3600.0,
    poll_s: float = 1.0,
    log: Callable[[str], None] = print,
) -> GpuClaim:
    """Claim ``count`` cards of ``pool`` that no other process holds, waiting for them.

    Where the pool has no more cards than asked for (a scheduler already gave
    this job its own), those cards are returned without locking anything.
    """
    if count < 1:
        raise ValueError(f"a GPU claim needs count >= 1, got {count}")
    if len(pool) <= count:
        return GpuClaim(list(pool))
    lock_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        # Sticky and world-writable like /tmp, so that every user's jobs can add locks.
        os.chmod(lock_dir, 0o1777)
    deadline = time.monotonic() + timeout_s
    warned = False
    while True:
        claim = GpuClaim([])
        for device in pool:
            fd = _try_lock(lock_path(lock_dir, device))
            if fd is not None:
                claim.devices.append(device)
                claim._files.append(fd)
                if len(claim.devices) == count:
                    return claim
        claim.release()
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"no {count} free GPU(s) among {','.join(pool)} within {timeout_s:g} s "
                f"(locks in {lock_dir}); is --resources gpu=N larger than the number of cards?"
            )
        if not warned:
            log(f"waiting for {count} free GPU(s) among {','.join(pool)} (locks in {lock_dir})")
            warned = True
        time.sleep(poll_s)


@contextlib.contextmanager
def gpu_slots(
    count: int,
    environ: MutableMapping[str, str] | None = None,
    lock_dir: Path | None = None,
    *,
    detected: int | None = None,
    timeout_s: float = 3600.0,
    log: Callable[[str], None] = print,
) -> Iterator[list[str]]:
    """Narrow ``CUDA_VISIBLE_DEVICES`` to ``count`` claimed cards for the ``with`` block.

    ``count`` is the job's ``gpu`` resource; 0 (a CPU job) or a machine without
    cards changes nothing and yields an empty list. Locks live in ``lock_dir``,
    else ``$REGBENCH_GPU_LOCK_DIR``, else :data:`DEFAULT_LOCK_DIR`.
    """
    env = os.environ if environ is None else environ
    if count < 0:
        raise ValueError(f"the gpu resource must be >= 0, got {count}")
    visible = env.get("CUDA_VISIBLE_DEVICES")
    pool = device_pool(visible, detect_gpu_count() if detected is None else detected)
    if count == 0 or not pool:
        yield []
        return
    if len(pool) < count:
        raise ValueError(
            f"the job asks for gpu={count} but only {len(pool)} card(s) are visible: "
            f"{','.join(pool)}"
        )
    if lock_dir is None:
        lock_dir = Path(env.get("REGBENCH_GPU_LOCK_DIR", DEFAULT_LOCK_DIR))
    claim = claim_gpus(count, pool, lock_dir, timeout_s=timeout_s, log=log)
    how = "claimed" if claim.holds_locks else "given by the scheduler or the only ones"
    env["CUDA_VISIBLE_DEVICES"] = claim.visible_devices
    log(f"GPUs on {socket.gethostname()}: CUDA_VISIBLE_DEVICES={claim.visible_devices} ({how})")
    try:
        yield claim.devices
    finally:
        claim.release()
        if visible is None:
            env.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            env["CUDA_VISIBLE_DEVICES"] = visible
