"""Warm workers: a fresh process's results, current code only, no process outliving its pool."""

from __future__ import annotations

import json
import os
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from regbench import jobs, worker
from regbench.config import ERROR_FILE
from regbench.training import CODE_DIGEST, TIMING_FIELDS

REPO = Path(__file__).resolve().parents[1]


def make_cell(regularizer: dict[str, Any], *, epochs: int = 3) -> str:
    """A cell spec, as canonical JSON, for a small MLP on the toy data."""
    cell = {
        "dataset": {"name": "toy"},
        "model": {"name": "mlp", "type": "mlp", "units": [12, 6], "activation": "relu"},
        "regularizer": regularizer,
        "training": {
            "epochs": epochs,
            "batch_size": 16,
            "optimizer": "adam",
            "learning_rate": 0.01,
            "validation_fraction": 0.2,
            "device": "cpu",
        },
    }
    return json.dumps(cell, sort_keys=True, separators=(",", ":"))


CELL_A = make_cell(
    {
        "name": "mixed",
        "kernel": {"l1": 1.0e-3, "l2": 1.0e-3, "layers": "all"},
        "dropout": {"rate": 0.3, "layers": "all"},
        "batch_norm": {"layers": [0]},
    }
)
CELL_B = make_cell({"name": "dropout", "dropout": {"rate": 0.5, "layers": "all"}})


@pytest.fixture(scope="module")
def data_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prepared arrays of a small binary problem, as prepare_dataset writes them."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=200) > 0).astype(np.int64)
    path = tmp_path_factory.mktemp("data") / "data.npz"
    np.savez_compressed(
        path,
        x_train=x[:120],
        y_train=y[:120],
        x_val=x[120:160],
        y_val=y[120:160],
        x_test=x[160:],
        y_test=y[160:],
    )
    return path


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[worker.Pool]:
    """A real two-worker pool, which this test process's jobs find through the environment."""
    started = worker.start_pool(2, logs=tmp_path_factory.mktemp("pool"))
    yield started
    started.stop()


def request(
    cell: str, data: Path | list[Path], log: Path | None = None, **changes: Any
) -> worker.CellRequest:
    """A request for seeds 4 and 6 of ``cell``, with the code this process imported."""
    fields = {"threads": 1, "code": CODE_DIGEST, **changes}
    return worker.CellRequest.create(
        cell, [4, 6], data, fields["threads"], fields["code"], None if log is None else str(log)
    )


def comparable(reply: dict[str, Any]) -> dict[int, Any]:
    """Each seed's metrics without wall-clock fields, and its history."""
    runs = {}
    for seed, run in reply["runs"].items():
        metrics = json.loads(run["files"]["metrics"])
        runs[seed] = (
            {k: v for k, v in metrics.items() if k not in TIMING_FIELDS},
            run["files"]["history"],
        )
    return runs


def test_a_warm_worker_gives_the_results_of_a_fresh_process(
    pool: worker.Pool, data_npz: Path, tmp_path: Path
) -> None:
    """Cells trained by warm workers, one after another, equal cells trained in-process."""
    for cell in (CELL_B, CELL_A):
        log = tmp_path / "job.log"
        warm = worker.submit(request(cell, data_npz, log))
        assert warm is not None
        text = log.read_text(encoding="utf-8")
        assert "in warm worker" in text and "seed 6, epoch 1" in text
        assert "peak RSS of the training process" in text
        assert comparable(warm) == comparable(worker.train_in_process(request(cell, data_npz)))


def test_a_warm_worker_trains_each_seed_on_its_own_data(
    pool: worker.Pool, data_npz: Path, tmp_path: Path
) -> None:
    """With one data file per seed, a warm worker trains each seed on its own file: the
    cell equals the in-process one, and each seed equals that seed alone on its file."""
    other = tmp_path / "other.npz"
    with np.load(data_npz) as arrays:
        rows = np.random.default_rng(1).permutation(120)
        swapped = {name: arrays[name] for name in arrays.files}
        swapped.update(x_train=arrays["x_train"][rows], y_train=arrays["y_train"][rows])
    np.savez_compressed(other, **swapped)
    warm = worker.submit(request(CELL_B, [data_npz, other]))
    assert warm is not None
    assert comparable(warm) == comparable(
        worker.train_in_process(request(CELL_B, [data_npz, other]))
    )
    for seed, path in ((4, data_npz), (6, other)):
        alone = worker.CellRequest.create(CELL_B, [seed], path, 1, CODE_DIGEST)
        (ours, history), (theirs, its_history) = (
            comparable(reply)[seed] for reply in (warm, worker.train_in_process(alone))
        )
        # A cell records the seeds it trained together; nothing else may differ.
        assert ours.pop("cell_seeds") == [4, 6] and theirs.pop("cell_seeds") == [seed]
        assert (ours, history) == (theirs, its_history)
    with pytest.raises(ValueError, match="one data file for all of them or one per seed, not 3"):
        request(CELL_B, [data_npz, other, other])


def test_a_job_hands_its_cell_to_the_pool(
    pool: worker.Pool, data_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """jobs.train_cell writes every seed's three outputs through a worker, then the cell's
    record of how each seed ended."""
    names = {kind: [str(tmp_path / f"{kind}{seed}") for seed in (4, 6)] for kind in "mhw"}
    jobs.train_cell(
        CELL_B, "[4, 6]", str(data_npz), names["m"], names["h"], names["w"], 1, CODE_DIGEST,
        log=str(tmp_path / "job.log"), record=str(tmp_path / "cell.json"),
    )  # fmt: skip
    record = json.loads((tmp_path / "cell.json").read_text("utf-8"))
    assert record == {"statuses": {"4": "ok", "6": "ok"}}
    assert all(Path(path).stat().st_mtime_ns <= (tmp_path / "cell.json").stat().st_mtime_ns
               for path in names["m"])  # fmt: skip
    for seed, metrics in zip((4, 6), names["m"], strict=True):
        recorded = json.loads(Path(metrics).read_text("utf-8"))
        assert recorded["spec"]["seed"] == seed
        # The worker, not the job's process, trained: its host and its memory are recorded.
        assert recorded["host"] == socket.gethostname()
        assert recorded["peak_rss_mb"] > 300  # TensorFlow alone; the job's process is ~30 MB
    for path in names["h"] + names["w"]:
        assert Path(path).stat().st_size > 0
    assert "in warm worker" in (tmp_path / "job.log").read_text("utf-8")
    assert "seeds [4, 6] trained: {4: 'ok', 6: 'ok'}" in capsys.readouterr().out


def test_a_failing_job_fails_with_the_error_in_its_log_and_beside_each_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rule's script, given a cell that raises, logs the traceback, leaves every seed an
    error file and fails."""
    monkeypatch.delenv(worker.SOCKET_ENV, raising=False)  # No pool: it trains in its process.
    log = tmp_path / "job.log"
    seeds = [tmp_path / f"seed{seed}" for seed in (0, 1)]
    for folder in seeds:
        folder.mkdir()
    job = SimpleNamespace(
        params=SimpleNamespace(cell=CELL_A, seeds="[0, 1]", code=CODE_DIGEST),
        input=SimpleNamespace(data=str(tmp_path / "missing.npz")),
        output=SimpleNamespace(
            metrics=[str(folder / "metrics.json") for folder in seeds],
            history=[str(folder / "history.csv") for folder in seeds],
            weights=[str(folder / "weights.npz") for folder in seeds],
            record=str(tmp_path / "cell.json"),
        ),
        log=[str(log)],
        threads=1,
        resources={},
    )
    # As in a job's process, stderr must be file descriptor 2, which the script redirects.
    with capsys.disabled(), pytest.raises(FileNotFoundError):
        runpy.run_path(str(REPO / "scripts" / "train_cell.py"), init_globals={"snakemake": job})
    text = log.read_text(encoding="utf-8")
    assert "Traceback" in text and "missing.npz" in text
    for folder in seeds:
        assert "missing.npz" in (folder / ERROR_FILE).read_text(encoding="utf-8")
        assert not (folder / "metrics.json").exists()
    assert not (tmp_path / "cell.json").exists()  # A failed cell leaves no record.


def test_a_failing_cell_raises_with_the_workers_traceback(
    pool: worker.Pool, data_npz: Path
) -> None:
    """A cell that raises in a worker fails the job with the traceback; the worker lives on."""
    with pytest.raises(worker.CellFailed, match="No such file or directory"):
        worker.submit(request(CELL_A, data_npz.with_name("no-such-data.npz")))
    assert worker.submit(request(CELL_B, data_npz)) is not None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"code": "0123456789abcdef"}, "training code differs: the job expects 0123456789abcdef"),
        ({"threads": 2}, r"the job asks for 2 thread\(s\); the worker runs 1"),
    ],
    ids=["other-code", "other-threads"],
)
def test_a_worker_refuses_a_cell_it_would_train_differently(
    pool: worker.Pool,
    data_npz: Path,
    changes: dict[str, Any],
    reason: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A cell expecting other training code or another thread count is refused, with why."""
    assert worker.submit(request(CELL_A, data_npz, **changes)) is None
    assert reason.replace("\\", "") in capsys.readouterr().out.replace("\\", "")


def test_a_worker_refuses_once_the_code_on_disk_changed(
    data_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an edit to the training code, a worker started before it refuses every cell."""
    shutil.copytree(REPO / "src" / "regbench", tmp_path / "src" / "regbench")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "src"))
    pool = worker.start_pool(1, logs=tmp_path)
    try:
        assert worker.submit(request(CELL_B, data_npz)) is not None
        training = tmp_path / "src" / "regbench" / "training.py"
        training.write_text(training.read_text("utf-8") + "\n# edited\n", encoding="utf-8")
        assert worker.submit(request(CELL_B, data_npz)) is None
    finally:
        pool.stop()


def test_without_a_pool_a_job_trains_itself(
    data_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pool in the environment, or a socket nobody listens on: submit returns None at once."""
    monkeypatch.delenv(worker.SOCKET_ENV, raising=False)
    assert worker.submit(request(CELL_A, data_npz)) is None
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "pool.sock"))
    stale.close()  # The file stays; nobody listens on it.
    monkeypatch.setenv(worker.SOCKET_ENV, str(tmp_path / "pool.sock"))
    assert worker.submit(request(CELL_A, data_npz)) is None


def test_a_worker_that_dies_mid_cell_fails_the_job(data_npz: Path, tmp_path: Path) -> None:
    """Killing the worker during a cell makes submit raise WorkerCrashed instead of hanging."""
    pool = worker.start_pool(1, logs=tmp_path)
    outcome: dict[str, BaseException] = {}

    def job() -> None:
        try:
            worker.submit(request(make_cell({"name": "none"}, epochs=100_000), data_npz))
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=job, daemon=True)
    thread.start()
    try:
        wait_for(lambda: "seed 4, epoch 1" in (tmp_path / "worker-0.log").read_text("utf-8"))
        os.kill(pool.processes[0].pid, signal.SIGKILL)
        thread.join(30)
        assert not thread.is_alive(), "the job hung after its worker died"
        assert isinstance(outcome.get("error"), worker.WorkerCrashed)
    finally:
        pool.stop()


def wait_for(condition: Any, timeout: float = 120) -> None:
    """Poll ``condition`` until it holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_a_worker_above_its_memory_limit_replaces_itself(data_npz: Path, tmp_path: Path) -> None:
    """Past max_rss_mb a worker re-executes itself after a cell; the next cell is served."""
    pool = worker.start_pool(1, logs=tmp_path, max_rss_mb=1)
    try:
        for cell in (CELL_A, CELL_B):
            reply = worker.submit(request(cell, data_npz))
            assert reply is not None and reply["runs"][4]["status"] == "ok"
        assert pool.processes[0].poll() is None  # The same process, replaced in place.
        assert "replacing itself" in (tmp_path / "worker-0.log").read_text(encoding="utf-8")
    finally:
        pool.stop()


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live, not zombie, process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return False
    return state[0] != "Z"


def test_workers_end_when_the_process_that_started_them_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the pool's parent (which runs no hook) ends its workers within seconds, and
    they leave no socket folder behind."""
    script = (
        "import sys, time; from regbench import worker; "
        "pool = worker.start_pool(2, logs=sys.argv[1]); "
        "print(pool.folder, *(p.pid for p in pool.processes), flush=True); time.sleep(600)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    folder, *started = parent.stdout.readline().split()
    pids = [int(pid) for pid in started]
    wait_for(lambda: "ready" in (tmp_path / "worker-1.log").read_text("utf-8"))
    assert all(alive(pid) for pid in pids)
    assert (Path(folder) / "pool.sock").is_socket()
    parent.kill()
    parent.wait()
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=10)
    assert not Path(folder).exists()  # the workers removed what their parent could not


def test_a_pool_killed_with_its_workers_leaves_a_folder_the_next_pool_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL to the whole group (parent and workers) leaves the socket folder; the next pool
    started removes it and keeps the folder of a pool that still runs."""
    temp = Path(tempfile.mkdtemp(prefix="rb"))  # Short: socket paths are limited to 108 bytes.
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    script = (
        "import sys, time; from regbench import worker; "
        "pool = worker.start_pool(1, logs=sys.argv[1]); "
        "print(pool.folder, flush=True); time.sleep(600)"
    )
    killed = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "killed")],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    assert killed.stdout is not None
    stale = Path(killed.stdout.readline().strip())
    running = worker.start_pool(1, logs=tmp_path / "running")
    try:
        wait_for(lambda: "ready" in (tmp_path / "killed/worker-0.log").read_text("utf-8"))
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        assert stale.parent == temp and (stale / "pool.sock").is_socket()
        fresh = worker.start_pool(1, logs=tmp_path / "fresh")
        fresh.stop()
        assert not stale.exists()
        assert running.socket.is_socket()
    finally:
        running.stop()
        shutil.rmtree(temp, ignore_errors=True)


def test_stopping_a_pool_ends_only_its_own_workers(tmp_path: Path) -> None:
    """Two pools side by side: stopping one leaves the other's workers running."""
    first = worker.start_pool(1, logs=tmp_path / "first")
    second = worker.start_pool(1, logs=tmp_path / "second")
    try:
        first.stop()
        assert first.processes[0].poll() is not None
        assert second.processes[0].poll() is None
        assert os.environ[worker.SOCKET_ENV] == str(second.socket)
    finally:
        second.stop()
    assert worker.SOCKET_ENV not in os.environ


def test_messages_survive_the_wire() -> None:
    """Length-prefixed messages arrive whole, however large; a closed peer reads as None."""
    left, right = socket.socketpair()
    big = {"files": {"weights": "x" * 3_000_000}, "event": "done"}
    sender = threading.Thread(target=worker._send, args=(left, big))
    sender.start()
    assert worker._receive(right) == big
    sender.join()
    left.close()
    assert worker._receive(right) is None
    right.close()


def test_pool_size_never_exceeds_the_cores_or_the_cpus() -> None:
    """However many cores Snakemake is given, at most one worker per CPU, and at least one."""
    cpus = os.cpu_count() or 1
    assert 1 <= worker.pool_size(64) <= cpus
    assert worker.pool_size(1) == 1
    assert worker.pool_size(64, per_worker_mb=10**9) == 1
