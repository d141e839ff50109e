"""Warm training workers for a local study: TensorFlow imported once per worker, not per cell.

A training job that trains in its own process spends about three seconds
starting Python and importing TensorFlow before its cell trains for one or
two. For a study run on this machine, the Snakefile's ``onstart`` hook
starts a few workers (:func:`start_pool`) and the ``train_cell`` jobs hand
their cells to them over a Unix socket (:func:`submit`); every job stays a
Snakemake job, cached, logged and benchmarked as before, and writes the
files the worker sends back.

What the pool guarantees, and how:

- **It lives no longer than the Snakemake that started it.** Each worker's
  standard input is a pipe whose writing end only that Snakemake process
  holds; a thread in the worker waits for the pipe's end-of-file and ends
  the worker the moment Snakemake is gone, however it went (success, a
  failed job, Ctrl-C, SIGTERM, SIGHUP, SIGKILL). The workers also stay in
  Snakemake's process group, so a signal to the group reaches them at once.
- **It never trains other code than what is on disk.** A job's request
  carries the training-code digest Snakemake gave it; a worker takes the
  cell only if that digest, the digest of the code on disk now and the
  digest of the code it imported all agree, and refuses otherwise, so that
  the job trains the cell in its own process.
- **A study stops only its own workers.** The socket is in a fresh private
  folder that only this pool's jobs learn of (through ``REGBENCH_POOL_SOCKET``
  in their environment); :meth:`Pool.stop` ends the processes it started.
- **No workers where they could not help.** The Snakefile starts none for
  GPU studies or scheduler-run jobs, and a job with a GPU or a SLURM job id
  trains in its own process; :func:`pool_size` bounds the count by the cores
  given, the machine's CPUs and its available memory.

A worker trains exactly as a job's own process would (the same
:func:`regbench.training.train_cell`, which clears Keras's global state and
reseeds everything first), and refuses a cell asking for another thread
count or device than it was set up with. This module imports neither
TensorFlow nor NumPy at import time: the job side only needs sockets.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from regbench.joblog import redirect_output

__all__ = [
    "SOCKET_ENV",
    "CellFailed",
    "CellRequest",
    "Pool",
    "WorkerCrashed",
    "main",
    "pool_size",
    "start_pool",
    "submit",
    "train_in_process",
]

#: The environment variable through which a pool's jobs find its socket.
SOCKET_ENV = "REGBENCH_POOL_SOCKET"

#: How a pool's socket folder in the temporary directory begins; the starting process's id follows.
POOL_PREFIX = "regbench-pool-"

#: What one worker may hold before it replaces itself: TensorFlow imported (~0.7 GB) and
#: ~25 MB that TensorFlow keeps for good of every cell it traced (benchmarks/README.md), so
#: that a worker trains the default study's cells without replacing itself.
WORKER_MB = 2500

_HEADER = struct.Struct(">I")
_FILES = ("metrics", "history", "weights")


class CellFailed(RuntimeError):
    """The cell raised in a worker; the message carries the worker's traceback."""


class WorkerCrashed(RuntimeError):
    """The worker died, or was stopped, while it trained the cell."""


@dataclass(frozen=True)
class CellRequest:
    """What a job hands over: the cell's canonical spec, its seeds and absolute paths.

    ``data`` is the prepared data every seed shares, or one file per seed.
    """

    cell_json: str
    seeds: list[int]
    data: list[str]
    threads: int
    code: str
    log: str | None = None

    @classmethod
    def create(
        cls,
        cell_json: str,
        seeds: Sequence[int],
        data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        threads: int,
        code: str,
        log: str | None = None,
    ) -> CellRequest:
        """A request with paths made absolute, since a worker runs in another folder."""
        files = [data] if isinstance(data, str | os.PathLike) else list(data)
        if len(files) not in (1, len(seeds)):
            raise ValueError(
                f"a cell of {len(seeds)} seed(s) takes one data file for all of them or one "
                f"per seed, not {len(files)}"
            )
        return cls(
            cell_json=cell_json,
            seeds=[int(seed) for seed in seeds],
            data=[str(Path(path).resolve()) for path in files],
            threads=int(threads),
            code=code,
            log=None if log is None else str(Path(log).resolve()),
        )


# ------------------------------------------------------------------ the job's side


def submit(request: CellRequest) -> dict[str, Any] | None:
    """Have a warm worker of this study's pool train ``request``; None when none can.

    None means nothing was trained: no pool (``REGBENCH_POOL_SOCKET`` unset or
    nobody listening) or the worker refused the cell (the reason is printed).
    Raises :class:`CellFailed` when the cell raised and :class:`WorkerCrashed`
    when the workers went away before finishing it.
    """
    path = os.environ.get(SOCKET_ENV)
    if not path:
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        try:
            connection.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            return None  # No pool listens: this study runs without one, or it has ended.
        reply = accepted = None
        # Past this point a silent end means the workers went away: the pool was stopped
        # (Snakemake is ending) or they crashed. The job fails rather than start training.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            _send(connection, asdict(request))
            accepted = _receive(connection)
            reply = _receive(connection)
    if reply is None:
        who = "before a worker took the cell" if accepted is None else "during the cell"
        raise WorkerCrashed(
            f"the warm workers went away {who} (a crash, a lack of memory, or the end of "
            "the Snakemake run that started them)"
        )
    if reply["event"] == "refused":
        print(f"warm worker {reply['pid']} cannot take this cell: {reply['reason']}", flush=True)
        return None
    if reply["event"] == "error":
        raise CellFailed(f"the cell failed in warm worker {reply['pid']}:\n{reply['error']}")
    return _decode(reply)


def train_in_process(request: CellRequest) -> dict[str, Any]:
    """Train ``request`` in this process, as a worker would, and return the same reply."""
    from regbench.training import configure_tensorflow

    setting = json.loads(request.cell_json)["training"]["device"]
    device = configure_tensorflow(request.threads, setting)
    return _decode(_execute(request, device, where="this process"))


def _decode(reply: Mapping[str, Any]) -> dict[str, Any]:
    runs = {
        int(seed): {**run, "files": {k: base64.b64decode(v) for k, v in run["files"].items()}}
        for seed, run in reply["runs"].items()
    }
    return {**reply, "runs": runs}


# ------------------------------------------------------------------ the worker's side


def _execute(request: CellRequest, device: str, *, where: str) -> dict[str, Any]:
    """Load the data, train the cell, serialize each seed: workers and jobs alike."""
    from regbench.datasets import load_prepared
    from regbench.training import serialize_result, train_cell

    print(
        f"training seeds {request.seeds} on {device} with {request.threads} thread(s) "
        f"in {where}: {request.cell_json}",
        f"\ndata: {', '.join(request.data)}",
        flush=True,
    )
    # One data set every seed shares, or each seed's own split.
    data = [load_prepared(Path(path)) for path in request.data]
    results = train_cell(
        json.loads(request.cell_json),
        request.seeds,
        data[0] if len(data) == 1 else data,
        device=device,
        log=lambda line: print(line, flush=True),
    )
    # Where each seed trained and what the process needed, for the report's provenance
    # and the rule's mem_mb (benchmarks/README.md): a warm worker's peak covers every
    # cell it has trained, which is what it needs to go on.
    machine = {"host": socket.gethostname(), "peak_rss_mb": _status_mb("VmHWM:")}
    runs = {}
    for seed, result in results.items():
        result.metrics.update(machine)
        files = serialize_result(result)
        runs[str(seed)] = {
            "status": result.metrics["status"],
            "files": {name: base64.b64encode(files[name]).decode("ascii") for name in _FILES},
        }
    print(f"peak RSS of the training process: {machine['peak_rss_mb']} MB", flush=True)
    return {"event": "done", "runs": runs}


def _refusal(request: CellRequest, imported: str, threads: int) -> str | None:
    """Why a worker whose code has digest ``imported`` must not train ``request``, or None."""
    from regbench.fingerprint import TRAINING_MODULES, code_digest
    from regbench.training import configure_tensorflow

    on_disk = code_digest(TRAINING_MODULES)
    if not request.code == on_disk == imported:
        return (
            f"training code differs: the job expects {request.code}, the worker runs "
            f"{imported}, the files on disk are {on_disk}"
        )
    if request.threads != threads:
        return f"the job asks for {request.threads} thread(s); the worker runs {threads}"
    try:
        configure_tensorflow(threads, json.loads(request.cell_json)["training"]["device"])
    except (RuntimeError, ValueError) as error:
        return str(error)
    return None


def _serve_one(connection: socket.socket, device: str, imported: str, threads: int) -> None:
    """Check one request, train it with output to the job's log, and reply."""
    reply: dict[str, Any]
    _send(connection, {"event": "accepted", "pid": os.getpid()})
    try:
        request = CellRequest(**(_receive(connection) or {}))
        reason = _refusal(request, imported, threads)
    except Exception as error:
        reason = f"malformed request: {error!r}"
    if reason is not None:
        reply = {"event": "refused", "reason": reason}
    else:
        _reset_peak_memory()
        try:
            log = redirect_output(request.log) if request.log else contextlib.nullcontext()
            with log:
                reply = _execute(request, device, where=f"warm worker {os.getpid()}")
        except Exception:
            reply = {"event": "error", "error": traceback.format_exc()}
    with contextlib.suppress(OSError):  # The job may have gone; nobody needs the reply then.
        _send(connection, {**reply, "pid": os.getpid()})


def serve(listener: socket.socket, *, threads: int, device: str, max_rss_mb: float) -> None:
    """Run one worker: TensorFlow set up once, then one cell per accepted connection.

    TensorFlow keeps a few megabytes of every traced function for good, so
    once the worker's resident memory passes ``max_rss_mb`` after a cell it
    replaces itself (``exec``), keeping its process id, the shared socket and
    its lifeline.
    """
    from regbench.training import CODE_DIGEST, configure_tensorflow

    folder = Path(listener.getsockname()).parent
    threading.Thread(target=_exit_with_parent, args=(folder,), name="lifeline", daemon=True).start()
    label = configure_tensorflow(threads, device)
    _warm_up(label)
    # TensorFlow and Keras leave about a million long-lived objects; a full
    # collection that walks them costs a quarter of a second. Frozen, they are
    # skipped, and collecting a finished cell's garbage takes milliseconds.
    gc.collect()
    gc.freeze()
    print(f"worker {os.getpid()} ready: {threads} thread(s) on {label}", flush=True)
    while True:
        connection, _ = listener.accept()
        with connection:
            _serve_one(connection, label, CODE_DIGEST, threads)
        gc.collect()
        resident = _status_mb("VmRSS:")
        if resident is not None and resident > max_rss_mb:
            print(f"worker {os.getpid()}: {resident:.0f} MB resident, replacing itself", flush=True)
            listener.set_inheritable(True)
            os.execv(sys.executable, [sys.executable, "-m", "regbench.worker", *sys.argv[1:]])


def _exit_with_parent(folder: Path) -> None:
    """End this worker when its lifeline, a pipe from the Snakemake that started it, closes.

    A Snakemake killed outright cannot remove the pool's socket folder, so its
    workers do on their way out (each tries; the pool's own stop does too).
    """
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    shutil.rmtree(folder, ignore_errors=True)
    os._exit(0)


def _warm_up(device: str) -> None:
    """Train a tiny cell once so that every lazily imported module is loaded."""
    import numpy as np

    from regbench.datasets import PreparedData
    from regbench.training import train_cell

    x = np.random.default_rng(0).normal(size=(24, 3)).astype(np.float32)
    y = np.tile([0, 1], 12)
    data = PreparedData(x[:16], y[:16], x[16:20], y[16:20], x[20:], y[20:])
    cell = {
        "model": {"name": "warm_up", "type": "mlp", "units": [2], "activation": "relu"},
        "regularizer": {"name": "none"},
        "training": {"epochs": 1, "batch_size": 8, "optimizer": "adam", "learning_rate": 0.01},
    }
    train_cell(cell, [0], data, device=device, log=lambda line: None)


def _reset_peak_memory() -> None:
    # Linux resets VmHWM, the peak resident set, when "5" is written here.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")


def _status_mb(field_name: str) -> float | None:
    """A memory figure of this process from /proc (Linux only), in MB."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field_name):
            return round(int(line.split()[1]) / 1024, 1)
    return None


# ------------------------------------------------------------------ the wire


def _send(connection: socket.socket, message: Mapping[str, Any]) -> None:
    data = json.dumps(message, separators=(",", ":")).encode("utf-8")
    connection.sendall(_HEADER.pack(len(data)) + data)


def _receive(connection: socket.socket) -> dict[str, Any] | None:
    """The next message, or None when the other side closed the connection."""
    header = _receive_exactly(connection, _HEADER.size)
    if header is None:
        return None
    data = _receive_exactly(connection, _HEADER.unpack(header)[0])
    return None if data is None else dict(json.loads(data))


def _receive_exactly(connection: socket.socket, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = connection.recv(min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# ------------------------------------------------------------------ the pool


@dataclass
class Pool:
    """Workers started by this process, their socket's folder and their lifelines."""

    folder: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        """Where the workers accept cells."""
        return self.folder / "pool.sock"

    def stop(self, grace: float = 10.0) -> None:
        """End the workers: close their lifelines, then kill any still alive after ``grace``."""
        if os.environ.get(SOCKET_ENV) == str(self.socket):
            del os.environ[SOCKET_ENV]
        for process in self.processes:
            if process.stdin is not None:
                process.stdin.close()
        deadline = time.monotonic() + grace
        for process in self.processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_pool(
    workers: int,
    *,
    threads: int = 1,
    device: str = "cpu",
    logs: str | os.PathLike[str] = ".regbench",
    max_rss_mb: float = WORKER_MB,
) -> Pool:
    """Start ``workers`` warm workers and point this process's future jobs at them.

    Returns at once: workers import TensorFlow in the background, and a job
    that connects meanwhile waits in the socket's queue. Each worker writes
    its own log, ``<logs>/worker-<i>.log``, outside any cell.
    """
    if workers < 1:
        raise ValueError(f"a pool needs at least one worker, not {workers}")
    _remove_stale_pools()
    # A short private folder: socket paths are limited to 108 bytes. Its name
    # carries this process's id, so a later run can tell when it is stale.
    pool = Pool(Path(tempfile.mkdtemp(prefix=f"{POOL_PREFIX}{os.getpid()}-")))
    Path(logs).mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(pool.socket))
        listener.listen(128)
        for index in range(workers):
            with open(Path(logs, f"worker-{index}.log"), "w", encoding="utf-8") as log:
                pool.processes.append(
                    subprocess.Popen(
                        [
                            *(sys.executable, "-m", "regbench.worker", "--fd"),
                            *(str(listener.fileno()), "--threads", str(threads)),
                            *("--device", device, "--max-rss-mb", str(max_rss_mb)),
                        ],
                        pass_fds=(listener.fileno(),),
                        stdin=subprocess.PIPE,  # The lifeline: only this process writes to it.
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
    # Only the workers keep the listening socket open now, so when they are gone a
    # job's connection is refused (and it trains itself) instead of waiting forever.
    os.environ[SOCKET_ENV] = str(pool.socket)
    return pool


def _remove_stale_pools() -> None:
    """Remove the socket folders of pools whose starting process is gone.

    Workers remove their pool's folder when their lifeline closes, but a
    SIGKILL to the whole process group (``kill -9 -PGID``) ends them too
    before they can; the next run clears what was left. A pool's workers end
    with the process that started them, so a folder named after a dead
    process serves nobody.
    """
    for folder in Path(tempfile.gettempdir()).glob(f"{POOL_PREFIX}*-*"):
        pid = folder.name.removeprefix(POOL_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Another user's process: alive, and not ours to judge.
        pass
    return True


def pool_size(cores: int, *, per_worker_mb: int = WORKER_MB) -> int:
    """How many workers for ``cores`` parallel jobs: one per core, as CPUs and memory allow."""
    fit = cores
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                fit = int(line.split()[1]) // 1024 // per_worker_mb
    return max(1, min(cores, os.cpu_count() or 1, fit))


# ------------------------------------------------------------------ command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m regbench.worker --fd N ...``: run one worker (started by :func:`start_pool`)."""
    parser = argparse.ArgumentParser(prog="python -m regbench.worker", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the listening socket")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--max-rss-mb", type=float, required=True)
    args = parser.parse_args(argv)
    # The pool is stopped through the lifeline; Ctrl-C in the terminal ends a worker quietly.
    signal.signal(signal.SIGINT, lambda *_: os._exit(1))
    serve(
        socket.socket(fileno=args.fd),
        threads=args.threads,
        device=args.device,
        max_rss_mb=args.max_rss_mb,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
