"""Warm workers: same results as a fresh process, failures visible, no hangs."""

from __future__ import annotations

import json
import os
import runpy
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np
import pytest

from regbench import jobs, worker
from regbench.training import TIMING_FIELDS

REPO = Path(__file__).resolve().parents[1]


def make_spec(regularizer: dict[str, Any], *, seed: int, epochs: int = 3) -> str:
    """A run spec, as canonical JSON, for a small MLP on the toy data."""
    spec = {
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
        "seed": seed,
    }
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


SPEC_A = make_spec(
    {
        "name": "mixed",
        "kernel": {"l1": 1.0e-3, "l2": 1.0e-3, "layers": "all"},
        "dropout": {"rate": 0.3, "layers": "all"},
        "batch_norm": {"layers": [0]},
    },
    seed=4,
)
SPEC_A_OTHER_SEED = SPEC_A.replace('"seed":4', '"seed":6')
SPEC_B = make_spec({"name": "dropout", "dropout": {"rate": 0.5, "layers": "all"}}, seed=8)


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
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real two-worker pool; yields the folder it runs in (its sockets are in .regbench/)."""
    folder = tmp_path_factory.mktemp("pool")
    info = worker.start_pool(2, device="cpu", directory=folder / ".regbench", idle_timeout=300)
    assert len(info.pids) == 2
    yield folder
    worker.stop_pool(folder / ".regbench")


def comparable(reply: dict[str, Any]) -> dict[str, Any]:
    """A reply's metrics without wall-clock fields, and its history."""
    metrics = json.loads(reply["files"]["metrics"])
    return {
        "metrics": {k: v for k, v in metrics.items() if k not in TIMING_FIELDS},
        "history": reply["files"]["history"],
    }


def test_warm_worker_gives_the_results_of_a_fresh_process(pool: Path, data_npz: Path) -> None:
    """Runs through one worker (B, A, then A's model with another seed) equal in-process runs."""
    sock = worker.socket_path(pool / ".regbench")
    specs = {"B": SPEC_B, "A": SPEC_A, "A2": SPEC_A_OTHER_SEED}
    assert SPEC_A_OTHER_SEED != SPEC_A
    warm = {}
    for name, spec in specs.items():
        log = pool / f"{name}.log"
        warm[name] = worker.submit(worker.TrainRequest.create(spec, data_npz, 1, str(log)), sock)
        assert warm[name] is not None
        text = log.read_text(encoding="utf-8")
        assert "in warm worker" in text and "epoch 1/3" in text
    for name, spec in specs.items():
        fresh = worker.train_in_process(worker.TrainRequest.create(spec, data_npz, 1))
        assert comparable(warm[name]) == comparable(fresh), name  # type: ignore[arg-type]


def test_seeds_of_a_cell_go_to_the_worker_that_compiled_it(pool: Path, data_npz: Path) -> None:
    """With both workers idle, further seeds of a cell go to the worker holding its model."""
    sock = worker.socket_path(pool / ".regbench")
    spec = make_spec({"name": "l1", "kernel": {"l1": 1.0e-2, "l2": 0.0, "layers": "all"}}, seed=0)
    takers = []
    for seed in range(3):
        log = pool / f"affinity{seed}.log"
        request = worker.TrainRequest.create(
            spec.replace('"seed":0', f'"seed":{seed}'), data_npz, 1, str(log)
        )
        assert worker.submit(request, sock, on_accept=takers.append) is not None
        assert ("reusing the model compiled" in log.read_text(encoding="utf-8")) == (seed > 0)
    assert len(set(takers)) == 1


def test_job_hands_its_run_to_the_pool(
    pool: Path, data_npz: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """jobs.train_run run in the pool's folder writes the three outputs through the worker."""
    monkeypatch.chdir(pool)
    out = pool / "job"
    out.mkdir()
    jobs.train_run(
        SPEC_B,
        str(data_npz),
        str(out / "metrics.json"),
        str(out / "history.csv"),
        str(out / "weights.npz"),
        threads=1,
        log=str(out / "job.log"),
    )
    assert json.loads((out / "metrics.json").read_text("utf-8"))["status"] == "ok"
    assert (out / "history.csv").stat().st_size > 0
    with np.load(out / "weights.npz") as weights:
        assert len(weights.files) == 3
    assert "in warm worker" in (out / "job.log").read_text("utf-8")
    assert "status ok" in capsys.readouterr().out


def test_a_failing_job_fails_with_the_error_in_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rule's script, given a run that raises, writes the traceback to the job log and fails."""
    monkeypatch.chdir(tmp_path)  # No pool here: the job trains in its own process.
    log = tmp_path / "job.log"
    job = SimpleNamespace(
        params=SimpleNamespace(spec=SPEC_A),
        input=SimpleNamespace(data=str(tmp_path / "missing.npz")),
        output=SimpleNamespace(
            metrics=str(tmp_path / "metrics.json"),
            history=str(tmp_path / "history.csv"),
            weights=str(tmp_path / "weights.npz"),
        ),
        log=[str(log)],
        threads=1,
        resources={},
    )
    # As in a job's process, stderr must be file descriptor 2, which the script redirects.
    with capsys.disabled(), pytest.raises(FileNotFoundError):
        runpy.run_path(str(REPO / "scripts" / "train_run.py"), init_globals={"snakemake": job})
    text = log.read_text(encoding="utf-8")
    assert "Traceback" in text and "missing.npz" in text
    assert not (tmp_path / "metrics.json").exists()


def test_a_failing_run_raises_with_the_workers_traceback(pool: Path, data_npz: Path) -> None:
    """A run that raises in the worker fails the job with the traceback, and the worker lives on."""
    sock = worker.socket_path(pool / ".regbench")
    missing = worker.TrainRequest.create(SPEC_A, pool / "no-such-data.npz", 1)
    with pytest.raises(worker.RunFailed, match="No such file or directory"):
        worker.submit(missing, sock)
    assert worker.submit(worker.TrainRequest.create(SPEC_B, data_npz, 1), sock) is not None


def test_worker_refuses_a_run_it_would_train_differently(pool: Path, data_npz: Path) -> None:
    """A run asking for another thread count is refused, so the job trains it itself."""
    sock = worker.socket_path(pool / ".regbench")
    assert worker.submit(worker.TrainRequest.create(SPEC_A, data_npz, threads=2), sock) is None


def test_no_pool_or_a_stale_socket_means_train_in_process(tmp_path: Path, data_npz: Path) -> None:
    """Without a listening worker submit returns None at once; stop_pool removes a stale socket."""
    request = worker.TrainRequest.create(SPEC_A, data_npz, 1)
    folder = tmp_path / ".regbench"
    assert worker.submit(request, worker.socket_path(folder)) is None
    folder.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(worker.socket_path(folder)))
    stale.close()  # The file stays; nobody listens on it.
    assert worker.submit(request, worker.socket_path(folder)) is None
    assert not worker.pool_status(folder)["listening"]
    worker.stop_pool(folder)
    assert not worker.socket_path(folder).exists()


def test_a_worker_that_dies_mid_run_fails_the_job(tmp_path: Path, data_npz: Path) -> None:
    """Killing the worker during a run makes submit raise WorkerCrashed instead of hanging."""
    folder = tmp_path / ".regbench"
    worker.start_pool(1, device="cpu", directory=folder, idle_timeout=120)
    long_run = worker.TrainRequest.create(
        make_spec({"name": "none"}, seed=1, epochs=100_000), data_npz, 1
    )
    accepted = threading.Event()
    outcome: dict[str, BaseException] = {}

    def on_accept(pid: int) -> None:
        outcome["pid"] = pid  # type: ignore[assignment]
        accepted.set()

    def job() -> None:
        try:
            worker.submit(long_run, worker.socket_path(folder), on_accept=on_accept)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=job, daemon=True)
    thread.start()
    try:
        assert accepted.wait(60)
        os.kill(int(outcome["pid"]), signal.SIGKILL)  # type: ignore[call-overload]
        thread.join(30)
        assert not thread.is_alive(), "the job hung after its worker died"
        assert isinstance(outcome.get("error"), worker.WorkerCrashed)
    finally:
        worker.stop_pool(folder)


def test_a_worker_above_its_memory_limit_replaces_itself(tmp_path: Path, data_npz: Path) -> None:
    """Past max_rss_mb a worker re-executes itself after a run; the next run is served as usual."""
    folder = tmp_path / ".regbench"
    info = worker.start_pool(1, device="cpu", directory=folder, idle_timeout=120, max_rss_mb=1)
    try:
        takers: list[int] = []
        for spec in (SPEC_A, SPEC_B):
            request = worker.TrainRequest.create(spec, data_npz, 1)
            reply = worker.submit(request, worker.socket_path(folder), on_accept=takers.append)
            assert reply is not None and reply["status"] == "ok"
        assert takers == info.pids * 2  # The same process, replaced in place.
        log = (folder / "worker-0.log").read_text(encoding="utf-8")
        assert log.count("replacing itself") >= 1
    finally:
        worker.stop_pool(folder)


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


class _Key(NamedTuple):
    dataset: str
    model: str
    regularizer: str
    seed: int


def test_schedule_interleaves_cells_seed_by_seed() -> None:
    """Two jobs at a time: cells in pairs, each pair seed by seed (A0 B0 A1 B1, then C0 ...)."""
    runs = [_Key("d", "m", r, seed) for r in "ABC" for seed in (0, 1)]
    ranks = worker.schedule_ranks(runs, parallel=2)
    order = [f"{run.regularizer}{run.seed}" for run in sorted(runs, key=ranks.__getitem__)]
    assert order == ["A0", "B0", "A1", "B1", "C0", "C1"]
    assert sorted(worker.schedule_ranks(runs, parallel=1).values()) == list(range(6))


def test_cell_key_ignores_what_does_not_shape_the_compiled_model() -> None:
    """Seeds, names, epochs and early stopping share a cell; penalties and datasets do not."""
    base = json.loads(SPEC_A)
    variants = {
        "seed": {**base, "seed": 99},
        "name": {**base, "regularizer": {**base["regularizer"], "name": "other"}},
        "epochs": {**base, "training": {**base["training"], "epochs": 500}},
        "early": {
            **base,
            "regularizer": {**base["regularizer"], "early_stopping": {"patience": 3}},
        },
    }
    for name, variant in variants.items():
        assert worker.cell_key(json.dumps(variant)) == worker.cell_key(SPEC_A), name
    stronger = {**base["regularizer"], "kernel": {"l1": 0.5, "l2": 0.0, "layers": "all"}}
    assert worker.cell_key(json.dumps({**base, "regularizer": stronger})) != worker.cell_key(SPEC_A)
    other_data = {**base, "dataset": {"name": "other"}}
    assert worker.cell_key(json.dumps(other_data)) != worker.cell_key(SPEC_A)
