"""Warm training workers: TensorFlow imported once, runs handed over a Unix socket.

A study is hundreds of small runs, and a fresh Python process spends about
three seconds importing TensorFlow before it trains for one. A pool of
long-lived workers pays that once::

    python -m regbench.worker start --workers 2   # in the folder Snakemake runs in
    snakemake --cores 2
    python -m regbench.worker stop

Every run stays its own Snakemake job, cached and logged as before: the job's
process (:func:`regbench.jobs.train_run`) connects to ``.regbench/pool.sock``,
hands over the run (spec, data path, log path, threads), waits, and writes the
outputs it gets back. When no pool is running there it trains in its own
process, so nothing depends on the pool being up.

The design, and why:

- One listening socket shared by all workers. A worker calls ``accept`` only
  when it is idle, so the kernel hands each job to a free worker and queues the
  rest; there is no dispatcher process to fail.
- A worker trains exactly as a fresh process would: :func:`regbench.training.train`
  clears Keras's global state and reseeds every generator first, and a worker
  refuses a run whose thread count or device differs from the ones its
  TensorFlow was set up with (the job then trains in its own process).
- Compiling a run's training loop (tracing Keras's ``train_step``) costs about
  half a second, more than 40 epochs of a small MLP. A worker keeps the
  compiled models of its last few cells (``train(..., reuse_compiled=True)``:
  the same result, see its tests), lists them in ``worker-<i>.cells`` and
  also listens on its own socket, ``worker-<i>.sock``; a job whose cell an
  idle worker holds asks that worker first. :func:`schedule_ranks` orders the
  jobs (rule ``train_run``'s ``priority``) so that a cell's seeds follow one
  another.
- The worker sends back the bytes of ``metrics.json``, ``history.csv`` and
  ``weights.npz`` and the job writes them, so outputs appear only if the job is
  still alive, where Snakemake expects them.
- While a run is in progress the worker's stdout and stderr, native libraries'
  included, go to the job's log, so the log reads as if the job had trained.
- Failure is visible: an exception in the run comes back with its traceback
  and the job raises :class:`RunFailed`; a worker that dies mid-run closes the
  connection and the job raises :class:`WorkerCrashed` instead of hanging. A
  socket nobody listens on any more (the pool was killed) counts as no pool.
- Workers exit by themselves after ``idle_timeout`` seconds without a run, so
  a pool whose Snakemake was killed does not hold memory forever.

This module imports neither TensorFlow nor NumPy at import time: the job side
only needs sockets and JSON.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import gc
import hashlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from regbench.joblog import redirect_output

__all__ = [
    "DEFAULT_DIRECTORY",
    "PoolInfo",
    "RunFailed",
    "TrainRequest",
    "WorkerCrashed",
    "main",
    "pool_size",
    "pool_status",
    "schedule_ranks",
    "socket_path",
    "start_pool",
    "stop_pool",
    "submit",
    "train_in_process",
    "write_outputs",
]

#: Where a pool keeps its socket, its description and its logs, below the working directory.
DEFAULT_DIRECTORY = Path(".regbench")
SOCKET_NAME = "pool.sock"
POOL_FILE = "pool.json"
OUTPUT_NAMES = ("metrics", "history", "weights")

# How many recent cells a worker lists as held: as many as it keeps compiled
# (regbench.training.COMPILED_CACHE_SIZE), so that a listed cell is still there.
_CELLS_ADVERTISED = 8

_HEADER = struct.Struct(">I")
_MAX_MESSAGE = 1 << 31


class RunFailed(RuntimeError):
    """The run raised in a worker; the message carries the worker's traceback."""


class WorkerCrashed(RuntimeError):
    """The worker died, or was stopped, while it trained the run."""


@dataclass(frozen=True)
class TrainRequest:
    """What a job hands over: the run's canonical spec and absolute paths."""

    spec_json: str
    data: str
    threads: int
    log: str | None = None

    @classmethod
    def create(
        cls, spec_json: str, data: str | os.PathLike[str], threads: int, log: str | None = None
    ) -> TrainRequest:
        """A request with paths made absolute, since a worker may run elsewhere."""
        return cls(
            spec_json=spec_json,
            data=str(Path(data).resolve()),
            threads=int(threads),
            log=None if log is None else str(Path(log).resolve()),
        )


@dataclass(frozen=True)
class PoolInfo:
    """A started pool: its socket, its workers' process ids and how they are set up."""

    socket: str
    pids: list[int]
    threads: int
    device: str
    logs: list[str]


def socket_path(directory: str | os.PathLike[str] = DEFAULT_DIRECTORY) -> Path:
    """The pool's socket in ``directory``."""
    return Path(directory) / SOCKET_NAME


# ------------------------------------------------------------------ the job's side


def submit(
    request: TrainRequest,
    path: str | os.PathLike[str] | None = None,
    *,
    on_accept: Callable[[int], None] | None = None,
) -> dict[str, Any] | None:
    """Have a warm worker train ``request``; None when no worker can take it.

    An idle worker that recently trained the same cell (dataset, model and
    regularizer pieces; see :func:`cell_key`) is asked first, by its own
    socket, since it still holds that cell's compiled model; otherwise the
    pool's shared socket hands the run to whichever worker is free, waiting
    while all are busy.

    None means nothing was trained: no pool listens on ``path``, the pool went
    away before a worker took the run, or the worker refused it (another thread
    count or device; the reason is printed). Raises :class:`RunFailed` when the
    run raised and :class:`WorkerCrashed` when the worker died during it.
    """
    path = socket_path() if path is None else Path(path)
    for own in _idle_workers_with(path.parent, cell_key(request.spec_json)):
        reply = _submit_to(own, request, on_accept)
        if reply is not None:
            return reply
    return _submit_to(path, request, on_accept)


def cell_key(spec_json: str) -> str:
    """What a run shares with the other seeds of its cell: all that shapes its compiled model.

    Mirrors :func:`regbench.training._compiled_key`, with the dataset's spec
    standing in for the shapes of its arrays.
    """
    spec = json.loads(spec_json)
    shared = [
        spec.get("dataset"),
        {k: v for k, v in spec["model"].items() if k != "name"},
        {k: v for k, v in spec["regularizer"].items() if k not in ("name", "early_stopping")},
        {k: v for k, v in spec["training"].items() if k not in ("epochs", "device")},
    ]
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode("utf-8")).hexdigest()[:20]


def _idle_workers_with(folder: Path, cell: str) -> Iterator[Path]:
    """The own sockets of idle workers that hold a compiled model for ``cell``."""
    for cells in sorted(folder.glob("worker-*.cells")):
        try:
            held = cells.read_text(encoding="ascii").split()
        except OSError:
            continue
        if cell in held and _idle(cells.with_suffix(".busy")):
            yield cells.with_suffix(".sock")


def _idle(busy: Path) -> bool:
    """Whether the worker that holds ``busy`` locked while it trains is idle now."""
    try:
        descriptor = os.open(busy, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)  # Closing drops the shared lock too.
    return True


def _submit_to(
    path: Path, request: TrainRequest, on_accept: Callable[[int], None] | None
) -> dict[str, Any] | None:
    """One attempt on one socket: the reply, or None when no worker took the run there."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with connection:
        try:
            connection.connect(os.fspath(path))
            _send(connection, {"op": "train", **asdict(request)})
            accepted = _receive(connection)
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
            return None
        if accepted is None or accepted.get("event") != "accepted":
            return None
        pid = int(accepted["pid"])
        if on_accept is not None:
            on_accept(pid)
        try:
            reply = _receive(connection)
        except ConnectionResetError:
            reply = None
    if reply is None:
        raise WorkerCrashed(
            f"warm worker {pid} closed the connection before finishing the run "
            f"(it crashed or was stopped); see its log in {path.parent}/"
        )
    if reply["event"] == "refused":
        print(f"warm worker {pid} cannot take this run: {reply['reason']}", flush=True)
        return None
    if reply["event"] == "error":
        raise RunFailed(f"the run failed in warm worker {pid}:\n{reply['error']}")
    return _decode(reply)


def train_in_process(request: TrainRequest) -> dict[str, Any]:
    """Train ``request`` in this process, as a worker would, and return the same reply."""
    from regbench.training import configure_tensorflow

    spec = json.loads(request.spec_json)
    device = configure_tensorflow(request.threads, spec["training"]["device"])
    return _decode(_execute(request, device, where="this process"))


def write_outputs(reply: Mapping[str, Any], metrics: str, history: str, weights: str) -> None:
    """Write a run's files from a reply; metrics last, so it marks a complete run."""
    files = reply["files"]
    Path(weights).write_bytes(files["weights"])
    Path(history).write_bytes(files["history"])
    Path(metrics).write_bytes(files["metrics"])


def _decode(reply: Mapping[str, Any]) -> dict[str, Any]:
    return {**reply, "files": {k: base64.b64decode(v) for k, v in reply["files"].items()}}


# ------------------------------------------------------------------ the worker's side


def _execute(
    request: TrainRequest, device: str, *, where: str, reuse_compiled: bool = False
) -> dict[str, Any]:
    """Load the data, train, serialize: the one code path of workers and in-process runs."""
    from regbench.datasets import load_prepared
    from regbench.training import serialize_result, train

    print(
        f"training on {device} with {request.threads} thread(s) in {where}: {request.spec_json}",
        flush=True,
    )
    spec = json.loads(request.spec_json)
    result = train(
        spec,
        load_prepared(Path(request.data)),
        device=device,
        log=lambda line: print(line, flush=True),
        reuse_compiled=reuse_compiled,
    )
    files = serialize_result(result)
    return {
        "event": "done",
        "status": result.metrics["status"],
        "train_seconds": result.metrics["train_seconds"],
        "files": {name: base64.b64encode(files[name]).decode("ascii") for name in OUTPUT_NAMES},
    }


class _Worker:
    """One warm process: TensorFlow set up once, then one run per accepted connection."""

    def __init__(self, threads: int, device: str) -> None:
        from regbench.training import configure_tensorflow

        self.threads = threads
        self.device = configure_tensorflow(threads, device)

    def refusal(self, request: TrainRequest) -> str | None:
        """Why this worker cannot train ``request`` as a fresh process would, or None."""
        from regbench.training import configure_tensorflow

        setting = json.loads(request.spec_json)["training"]["device"]
        try:
            configure_tensorflow(request.threads, setting)
        except (RuntimeError, ValueError) as error:
            return str(error)
        return None

    def warm_up(self) -> None:
        """Train a tiny model once so that every lazily imported module is loaded."""
        import numpy as np

        from regbench.datasets import PreparedData
        from regbench.training import train

        rng = np.random.default_rng(0)
        x = rng.normal(size=(24, 3)).astype(np.float32)
        y = np.tile([0, 1], 12)
        data = PreparedData(x[:16], y[:16], x[16:20], y[16:20], x[20:], y[20:])
        spec = {
            "seed": 0,
            "model": {"name": "warm_up", "type": "mlp", "units": [2], "activation": "relu"},
            "regularizer": {"name": "none"},
            "training": {"epochs": 1, "batch_size": 8, "optimizer": "adam", "learning_rate": 0.01},
        }
        train(spec, data, device=self.device, log=lambda line: None)

    def handle(
        self, connection: socket.socket, finished: Callable[[str], None] = lambda cell: None
    ) -> str | None:
        """Serve one connection: accept, check, train with output to the job's log, reply.

        ``finished`` is called with the run's cell before the reply goes out, so
        that the job's next seed, submitted the moment the reply arrives, finds
        this worker idle and holding the cell. Returns the cell, or None.
        """
        _send(connection, {"event": "accepted", "pid": os.getpid()})
        message = _receive(connection)
        if message is None or message.get("op") != "train":
            return None  # A probe, or a job that went away while it queued.
        try:
            request = TrainRequest(**{k: v for k, v in message.items() if k != "op"})
            reason = self.refusal(request)
        except Exception as error:
            reason = f"malformed request: {error!r}"
        if reason is not None:
            _send(connection, {"event": "refused", "reason": reason})
            return None
        _reset_peak_memory()
        started = time.perf_counter()
        try:
            with redirect_output(request.log):
                reply = _execute(
                    request, self.device, where=f"warm worker {os.getpid()}", reuse_compiled=True
                )
        except Exception:
            reply = {"event": "error", "error": traceback.format_exc()}
        reply["worker_seconds"] = round(time.perf_counter() - started, 3)
        reply["worker_peak_rss_mb"] = _peak_rss_mb()
        finished(cell_key(request.spec_json))
        try:
            _send(connection, reply)
        except OSError:
            print(f"the job of {request.log or 'a run'} went away before its result", flush=True)
        else:
            print(
                f"{reply['event']} in {reply['worker_seconds']} s, "
                f"peak RSS {reply['worker_peak_rss_mb']} MB: {request.log or request.data}",
                flush=True,
            )
        return cell_key(request.spec_json)


def serve(
    listener: socket.socket,
    *,
    threads: int,
    device: str,
    idle_timeout: float | None,
    folder: Path,
    index: int,
    max_rss_mb: float | None = None,
    restart: Sequence[str] | None = None,
) -> None:
    """Run worker ``index`` of the pool in ``folder`` until idle for ``idle_timeout`` seconds.

    It accepts runs on the pool's shared ``listener`` and on its own socket,
    ``worker-<index>.sock``, where jobs of cells it holds compiled models for
    ask for it (listed in ``worker-<index>.cells``). While it trains it holds
    an exclusive lock on ``worker-<index>.busy``, so that jobs see it is busy.

    TensorFlow keeps a few megabytes of every model it compiles for good (a
    gradient that ``tf.distribute`` registers globally, and never removes, for
    each traced ``train_step``). So when the worker's resident memory passes
    ``max_rss_mb`` after a run, it replaces itself: it executes ``restart``
    (its own command line), keeping its process id and the shared socket.
    """
    worker = _Worker(threads, device)
    worker.warm_up()
    # TensorFlow and Keras leave about a million long-lived objects; a full
    # collection that walks them costs a quarter of a second. Frozen, they are
    # skipped, and collecting a finished run's garbage takes milliseconds.
    gc.collect()
    gc.freeze()
    own_path, cells_path = _worker_file(folder, index, "sock"), _worker_file(folder, index, "cells")
    own_path.unlink(missing_ok=True)
    cells_path.unlink(missing_ok=True)  # A replaced worker holds no compiled model.
    own = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    own.bind(os.fspath(own_path))
    own.listen(16)
    busy = open(_worker_file(folder, index, "busy"), "a+b")  # noqa: SIM115 (held for life)
    # The shared socket's flags are shared by every worker: all of them wait in
    # select() and accept without blocking, and whoever is late moves on.
    listener.setblocking(False)
    own.setblocking(False)
    cells: list[str] = []
    print(f"worker {os.getpid()} ready: {threads} thread(s) on {worker.device}", flush=True)
    _worker_file(folder, index, "ready").write_text(f"{os.getpid()}\n", encoding="utf-8")
    while True:
        readable, _, _ = select.select([own, listener], [], [], idle_timeout)
        if not readable:
            print(f"worker {os.getpid()}: idle for {idle_timeout} s, exiting", flush=True)
            return
        # A job that asked for this worker by name goes first.
        try:
            connection, _ = (own if own in readable else listener).accept()
        except BlockingIOError:
            continue  # Another worker took it.
        fcntl.flock(busy, fcntl.LOCK_EX)

        def finished(cell: str) -> None:
            nonlocal cells
            cells = [cell, *(c for c in cells if c != cell)][:_CELLS_ADVERTISED]
            temporary = cells_path.with_suffix(".cells-new")
            temporary.write_text("\n".join(cells) + "\n", encoding="ascii")
            os.replace(temporary, cells_path)
            fcntl.flock(busy, fcntl.LOCK_UN)

        try:
            with connection:
                connection.setblocking(True)
                worker.handle(connection, finished)
        except OSError as error:
            print(f"worker {os.getpid()}: connection failed: {error}", flush=True)
        finally:
            fcntl.flock(busy, fcntl.LOCK_UN)
        # Collect the finished run's objects while no job waits on this worker.
        gc.collect()
        resident = _resident_mb()
        if restart is not None and max_rss_mb and resident is not None and resident > max_rss_mb:
            print(
                f"worker {os.getpid()}: {resident:.0f} MB resident, above {max_rss_mb:.0f} MB; "
                "replacing itself",
                flush=True,
            )
            listener.set_inheritable(True)
            os.execv(sys.executable, [sys.executable, "-m", "regbench.worker", *restart])


def _worker_file(folder: Path, index: int, kind: str) -> Path:
    return folder / f"worker-{index}.{kind}"


def _reset_peak_memory() -> None:
    # Linux resets VmHWM, the peak resident set, when "5" is written here.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")


def _resident_mb() -> float | None:
    """This process's resident memory now, in MB (Linux only)."""
    return _status_mb("VmRSS:")


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory since the last reset, in MB (Linux only)."""
    return _status_mb("VmHWM:")


def _status_mb(field: str) -> float | None:
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field):
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
    (size,) = _HEADER.unpack(header)
    if size > _MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes is larger than the protocol allows")
    data = _receive_exactly(connection, size)
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


def start_pool(
    workers: int,
    *,
    threads: int = 1,
    device: str = "auto",
    directory: str | os.PathLike[str] = DEFAULT_DIRECTORY,
    idle_timeout: float = 3600.0,
    max_rss_mb: float = 1500.0,
    wait: float | None = 300.0,
) -> PoolInfo:
    """Start ``workers`` warm workers listening on ``directory``'s socket.

    A pool already running there is left alone and described. A socket left
    by a dead pool is removed first. With ``wait``, return once every worker
    has imported TensorFlow (raising, with its log, if one died instead).
    """
    if workers < 1:
        raise ValueError(f"a pool needs at least one worker, not {workers}")
    folder = Path(directory)
    # Only this user may connect: a worker reads and appends to the paths it is sent.
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = socket_path(folder)
    if _listening(path):
        info = _read_pool(folder)
        if info is not None:
            return info
        raise RuntimeError(
            f"something already listens on {path} but {folder / POOL_FILE} is missing"
        )
    _remove_stale(folder)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with listener:
        # Workers inherit the bound socket, so the (often relative) path only
        # has to fit the 108-byte limit of socket names here and in the jobs.
        listener.bind(os.fspath(path))
        listener.listen(128)
        processes, logs = [], []
        for index in range(workers):
            log_path = folder / f"worker-{index}.log"
            with open(log_path, "w", encoding="utf-8") as log:
                processes.append(
                    subprocess.Popen(
                        [
                            *(sys.executable, "-m", "regbench.worker", "serve"),
                            *("--fd", str(listener.fileno()), "--threads", str(threads)),
                            *("--device", device, "--idle-timeout", str(idle_timeout)),
                            *("--dir", os.fspath(folder), "--index", str(index)),
                            *("--max-rss-mb", str(max_rss_mb)),
                        ],
                        pass_fds=(listener.fileno(),),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        # Its own session: Ctrl-C in the terminal stops Snakemake, which
                        # then stops the pool; a signal to the group must not kill a run.
                        start_new_session=True,
                    )
                )
            logs.append(str(log_path.resolve()))
    info = PoolInfo(
        socket=str(path.resolve()),
        pids=[process.pid for process in processes],
        threads=threads,
        device=device,
        logs=logs,
    )
    (folder / POOL_FILE).write_text(json.dumps(asdict(info), indent=2) + "\n", encoding="utf-8")
    if wait is not None:
        _wait_ready(folder, processes, wait)
    return info


def schedule_ranks(runs: Sequence[Any], parallel: int) -> dict[Any, int]:
    """An order for training jobs that lets warm workers reuse compiled models.

    ``runs`` are run keys (``dataset``, ``model``, ``regularizer``, ``seed``)
    in grid order; the answer ranks them, 0 first. Cells (dataset x model x
    regularizer) are taken ``parallel`` at a time and, within such a block,
    seed by seed: A0 B0 A1 B1 ... for two parallel jobs. The jobs running at
    once then belong to different cells, so when a worker finishes a run the
    next job is usually the same cell's next seed and, the other workers being
    busy, lands on that worker, which reuses the model it compiled.
    """
    parallel = max(1, int(parallel))
    cells = list(dict.fromkeys((run.dataset, run.model, run.regularizer) for run in runs))
    position = {cell: index for index, cell in enumerate(cells)}
    seeds = list(dict.fromkeys(run.seed for run in runs))

    def place(run: Any) -> tuple[int, int, int]:
        cell = position[(run.dataset, run.model, run.regularizer)]
        return cell // parallel, seeds.index(run.seed), cell % parallel

    return {run: rank for rank, run in enumerate(sorted(runs, key=place))}


def pool_size(cores: int, *, per_worker_mb: int = 1500) -> int:
    """How many workers to start for ``cores`` parallel jobs: one per core, as memory allows.

    A worker holds about 0.75 GB once TensorFlow is imported and grows with
    the models it compiles, up to ``max_rss_mb`` (1.5 GB by default), when it
    replaces itself; ``per_worker_mb`` is that ceiling.
    """
    available = _available_memory_mb()
    fit = max(1, available // per_worker_mb) if available is not None else cores
    return max(1, min(cores, fit))


def _available_memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def stop_pool(directory: str | os.PathLike[str] = DEFAULT_DIRECTORY, *, grace: float = 10.0) -> int:
    """Stop the pool in ``directory`` and remove its files; return how many workers were stopped.

    A worker in the middle of a run is stopped too: its job fails.
    """
    folder = Path(directory)
    info = _read_pool(folder)
    pids = [pid for pid in (info.pids if info else []) if _is_worker(pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_is_worker(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _is_worker(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    _remove_stale(folder)
    return len(pids)


def pool_status(directory: str | os.PathLike[str] = DEFAULT_DIRECTORY) -> dict[str, Any]:
    """Whether a pool listens in ``directory`` and which of its workers are alive."""
    folder = Path(directory)
    info = _read_pool(folder)
    return {
        "socket": str(socket_path(folder)),
        "listening": _listening(socket_path(folder)),
        "workers": {pid: _is_worker(pid) for pid in (info.pids if info else [])},
    }


def _listening(path: Path) -> bool:
    """Whether a live process accepts connections on ``path`` (a probe it ignores)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with probe:
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True


def _remove_stale(folder: Path) -> None:
    """Remove a pool's sockets and state files; its logs stay."""
    for name in (SOCKET_NAME, POOL_FILE):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    for kind in ("sock", "ready", "busy", "cells", "cells-new"):
        for path in folder.glob(f"worker-*.{kind}"):
            path.unlink(missing_ok=True)


def _read_pool(folder: Path) -> PoolInfo | None:
    try:
        return PoolInfo(**json.loads((folder / POOL_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _is_worker(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) regbench worker process."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return b"regbench.worker" in command and state != "Z"


def _wait_ready(folder: Path, processes: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(enumerate(processes))
    while pending:
        for index, process in list(pending.items()):
            if (folder / f"worker-{index}.ready").exists():
                del pending[index]
            elif process.poll() is not None:
                log = (folder / f"worker-{index}.log").read_text(encoding="utf-8", errors="replace")
                stop_pool(folder)
                raise RuntimeError(
                    f"warm worker {index} exited with status {process.returncode} while "
                    f"starting; the end of its log:\n{log[-3000:]}"
                )
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"warm workers {sorted(pending)} did not start in {timeout} s")
        time.sleep(0.05)


# ------------------------------------------------------------------ command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m regbench.worker start|stop|status|serve``."""
    parser = argparse.ArgumentParser(
        prog="python -m regbench.worker", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a pool in the current folder")
    start.add_argument(
        "--workers", type=int, help="default: one per CPU, as memory allows (pool_size)"
    )
    start.add_argument("--threads", type=int, default=1, help="TensorFlow threads per worker")
    start.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    start.add_argument("--idle-timeout", type=float, default=3600.0)
    start.add_argument(
        "--max-rss-mb", type=float, default=1500.0, help="a worker above this replaces itself"
    )
    start.add_argument(
        "--no-wait",
        action="store_true",
        help="return at once; jobs queue until the workers have imported TensorFlow",
    )
    for command in (start, commands.add_parser("stop"), commands.add_parser("status")):
        command.add_argument("--dir", type=Path, default=DEFAULT_DIRECTORY)
    serve_parser = commands.add_parser("serve", help="(internal) run one worker")
    serve_parser.add_argument("--fd", type=int, required=True)
    serve_parser.add_argument("--threads", type=int, required=True)
    serve_parser.add_argument("--device", required=True)
    serve_parser.add_argument("--idle-timeout", type=float, required=True)
    serve_parser.add_argument("--max-rss-mb", type=float)
    serve_parser.add_argument("--dir", type=Path, required=True)
    serve_parser.add_argument("--index", type=int, required=True)
    args = parser.parse_args(argv)

    if args.command == "start":
        info = start_pool(
            args.workers or pool_size(os.cpu_count() or 1),
            threads=args.threads,
            device=args.device,
            directory=args.dir,
            idle_timeout=args.idle_timeout,
            max_rss_mb=args.max_rss_mb,
            wait=None if args.no_wait else 300.0,
        )
        print(f"{len(info.pids)} warm worker(s) listening on {info.socket}: {info.pids}")
    elif args.command == "stop":
        print(f"stopped {stop_pool(args.dir)} warm worker(s)")
    elif args.command == "status":
        print(json.dumps(pool_status(args.dir), indent=2))
    else:
        listener = socket.socket(fileno=args.fd)
        serve(
            listener,
            threads=args.threads,
            device=args.device,
            idle_timeout=args.idle_timeout or None,
            folder=args.dir,
            index=args.index,
            max_rss_mb=args.max_rss_mb,
            restart=list(sys.argv[1:] if argv is None else argv),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
