"""The Snakemake profiles parse, and GPU jobs on one workstation never share a card."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from regbench.devices import (
    claim_gpus,
    device_pool,
    gpu_slots,
    lock_path,
    parse_visible_devices,
)

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "profiles"

#: One dataset, two regularizers (two cells), two seeds, one epoch: just enough jobs to plan.
PROFILE_STUDY = {
    "study": {"name": "profiles", "title": "Profile check", "description": "Two runs."},
    "datasets": {"iris": {"source": "sklearn", "loader": "iris"}},
    "models": {"mlp": {"type": "mlp", "units": [4]}},
    "regularizers": {"none": {}, "l2": {"kernel": {"l2": 1.0e-3}}},
    "seeds": [0, 1],
    "training": {"epochs": 1, "batch_size": 16},
    "baseline": "none",
}


def run_profile(
    workdir: Path,
    profile: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run Snakemake with ``profiles/<profile>`` on the study in ``workdir``."""
    if not (workdir / "config.yaml").exists():
        (workdir / "config.yaml").write_text(yaml.safe_dump(PROFILE_STUDY), encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(workdir / "config.yaml"),
            "--profile",
            str(PROFILES / profile),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def train_cell_resources(output: str) -> list[dict[str, str]]:
    """The ``resources:`` line of every train_cell job in a dry run's output, parsed."""
    found = []
    for block in output.split("rule train_cell:")[1:]:
        match = re.search(r"^\s+resources: (.*)$", block, re.MULTILINE)
        assert match, block
        found.append(dict(item.split("=", 1) for item in match[1].split(", ")))
    return found


# --------------------------------------------------------------------------- profiles


def test_every_profile_is_a_yaml_mapping_with_its_executor() -> None:
    """Each profile is valid YAML; only the slurm one leaves this machine."""
    profiles = {
        path.parent.name: yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in PROFILES.glob("*/config.yaml")
    }
    assert set(profiles) == {"local", "slurm", "gpu"}
    assert profiles["slurm"]["executor"] == "slurm"
    assert "executor" not in profiles["local"]
    assert "executor" not in profiles["gpu"]
    assert profiles["gpu"]["set-resources"]["train_cell"]["gpu"] == 1


def test_local_profile_dry_run_plans_the_study(tmp_path: Path) -> None:
    """`snakemake --profile profiles/local -n` parses and plans one train_cell per cell."""
    result = run_profile(tmp_path, "local", "--dry-run")
    assert result.returncode == 0, result.stderr + result.stdout
    assert len(train_cell_resources(result.stdout)) == 2
    assert not (tmp_path / "results").exists()


def test_gpu_profile_gives_each_training_job_one_gpu(tmp_path: Path) -> None:
    """Under profiles/gpu every train_cell asks for gpu=1, and `--resources gpu=N` is accepted."""
    result = run_profile(tmp_path, "gpu", "--dry-run", "--resources", "gpu=2")
    assert result.returncode == 0, result.stderr + result.stdout
    resources = train_cell_resources(result.stdout)
    assert len(resources) == 2
    assert all(item["gpu"] == "1" for item in resources)
    assert "gpu=" not in result.stdout.split("rule prepare_dataset:")[1].split("\n\n")[0]


def test_slurm_profile_asks_for_runtime_memory_and_cpus(tmp_path: Path) -> None:
    """profiles/slurm parses with the executor plugin and sets train_cell's SLURM request."""
    pytest.importorskip(
        "snakemake_executor_plugin_slurm",
        reason="the SLURM executor plugin is not installed (pip install -e '.[cluster]')",
    )
    result = run_profile(tmp_path, "slurm", "--dry-run")
    assert result.returncode == 0, result.stderr + result.stdout
    resources = train_cell_resources(result.stdout)
    assert len(resources) == 2
    for item in resources:
        assert item["runtime"] == "120"
        assert int(item["mem_mb"]) >= 1000
        assert item["cpus_per_task"] == "1"  # The rule's `threads: 1`.


def peak_concurrency(output: str, rule: str) -> tuple[int, int]:
    """How many ``rule`` jobs a real run's output shows started, and the most running at once."""
    running = peak = 0
    last_rule = ""
    started: set[str] = set()
    for line in output.splitlines():
        job = re.match(r"\s+jobid: (\d+)$", line)
        if job and last_rule == rule:
            started.add(job[1])
            running += 1
            peak = max(peak, running)
        finished = re.match(r"Finished jobid: (\d+)", line)
        if finished and finished[1] in started:
            running -= 1
        header = re.match(r"(?:local)?rule (\w+):", line)
        if header:
            last_rule = header[1]
    return len(started), peak


@pytest.mark.e2e
def test_gpu_profile_runs_at_most_n_gpu_jobs_at_once(tmp_path: Path) -> None:
    """With `--resources gpu=1` and two cores, the two training jobs run one after the other."""
    result = run_profile(tmp_path, "gpu", "--cores", "2", "--resources", "gpu=1")
    assert result.returncode == 0, result.stderr[-5000:]
    assert peak_concurrency(result.stdout + result.stderr, "train_cell") == (2, 1)
    assert (tmp_path / "reports" / "report.pdf").exists()


@pytest.mark.e2e
def test_gpu_profile_gives_concurrent_jobs_different_cards(tmp_path: Path) -> None:
    """Two cells training at once on a two-card pool each claim a different card, and each
    cell's seeds train together on its card, with no warm worker started."""
    # No card is needed to prove the assignment: the pool comes from
    # CUDA_VISIBLE_DEVICES, and TensorFlow, finding no GPU, trains on the CPU.
    result = run_profile(
        tmp_path,
        "gpu",
        "--cores", "2",
        "--resources", "gpu=2",
        env={
            **os.environ,
            "CUDA_VISIBLE_DEVICES": "0,1",
            "REGBENCH_GPU_LOCK_DIR": str(tmp_path / "locks"),
        },
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    assert peak_concurrency(result.stdout + result.stderr, "train_cell") == (2, 2)
    logs = [log.read_text("utf-8") for log in (tmp_path / "logs/train_cell").rglob("*.log")]
    cards = [re.findall(r"CUDA_VISIBLE_DEVICES=(\S+) \(claimed\)", log) for log in logs]
    assert sorted(cards) == [["0"], ["1"]]
    assert all("training seeds [0, 1]" in log and "in this process" in log for log in logs)
    assert "warm training worker" not in result.stderr


# --------------------------------------------------------------------------- devices


def test_visible_devices_are_read_up_to_the_first_invalid_entry() -> None:
    """CUDA_VISIBLE_DEVICES parses like CUDA reads it: unset, empty, lists, UUIDs and -1."""
    assert parse_visible_devices(None) is None
    assert parse_visible_devices("") == []
    assert parse_visible_devices("0,1") == ["0", "1"]
    assert parse_visible_devices(" 2, 3 ") == ["2", "3"]
    assert parse_visible_devices("1,-1,2") == ["1"]
    assert parse_visible_devices("-1") == []
    assert parse_visible_devices("GPU-8f6a1c2e") == ["GPU-8f6a1c2e"]


def test_device_pool_prefers_the_inherited_list_over_the_detected_count() -> None:
    """The cards to share out are the inherited CUDA_VISIBLE_DEVICES, else every detected card."""
    assert device_pool(None, 3) == ["0", "1", "2"]
    assert device_pool("2,3", 8) == ["2", "3"]
    assert device_pool("", 4) == []
    assert device_pool(None, 0) == []
    with pytest.raises(ValueError, match="detected GPU count must be >= 0, got -1"):
        device_pool(None, -1)


def test_lock_file_names_are_plain_names(tmp_path: Path) -> None:
    """A MIG or UUID device name becomes one file inside the lock folder."""
    assert lock_path(tmp_path, "1") == tmp_path / "gpu-1.lock"
    assert lock_path(tmp_path, "MIG-GPU-1/2/0").parent == tmp_path
    with pytest.raises(ValueError, match="must not be empty"):
        lock_path(tmp_path, "")


def test_claims_get_distinct_cards_until_none_is_left(tmp_path: Path) -> None:
    """Two claims on two cards get one each; a third waits, then names the likely mistake."""
    first = claim_gpus(1, ["0", "1"], tmp_path, log=lambda _: None)
    second = claim_gpus(1, ["0", "1"], tmp_path, log=lambda _: None)
    assert {*first.devices, *second.devices} == {"0", "1"}
    with pytest.raises(TimeoutError, match=r"larger than the number of cards"):
        claim_gpus(1, ["0", "1"], tmp_path, timeout_s=0.2, poll_s=0.05, log=lambda _: None)
    first.release()
    third = claim_gpus(1, ["0", "1"], tmp_path, timeout_s=0, log=lambda _: None)
    assert third.devices == first.devices
    second.release()
    third.release()


def test_a_claim_of_two_cards_takes_two_free_ones(tmp_path: Path) -> None:
    """A job asking for two cards of three gets the two nobody holds."""
    held = claim_gpus(1, ["0", "1", "2"], tmp_path, log=lambda _: None)
    pair = claim_gpus(2, ["0", "1", "2"], tmp_path, timeout_s=0, log=lambda _: None)
    assert sorted(pair.devices + held.devices) == ["0", "1", "2"]
    assert pair.visible_devices.count(",") == 1
    pair.release()
    held.release()


_HOLDER = """
import sys, time
from pathlib import Path
from regbench.devices import claim_gpus
claim = claim_gpus(1, ["0", "1"], Path(sys.argv[1]), log=lambda _: None)
print(claim.visible_devices, flush=True)
time.sleep(600)
"""


def test_a_card_held_by_a_killed_job_is_free_again(tmp_path: Path) -> None:
    """Another process's claim is respected, and SIGKILL on it frees the card: no stale locks."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        held = holder.stdout.readline().strip()
        assert held == "0"
        mine = claim_gpus(1, ["0", "1"], tmp_path, timeout_s=0, log=lambda _: None)
        assert mine.devices == ["1"]
        mine.release()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    again = claim_gpus(2, ["0", "1"], tmp_path, timeout_s=0, log=lambda _: None)
    assert again.devices == ["0", "1"]
    again.release()


def test_gpu_slots_narrows_cuda_visible_devices_for_the_block(tmp_path: Path) -> None:
    """Inside the block the job sees only its card; afterwards the environment is as before."""
    environ = {"CUDA_VISIBLE_DEVICES": "4,5"}
    lines: list[str] = []
    with gpu_slots(1, environ, tmp_path, log=lines.append) as devices:
        assert devices == ["4"]
        assert environ["CUDA_VISIBLE_DEVICES"] == "4"
        with gpu_slots(1, {"CUDA_VISIBLE_DEVICES": "4,5"}, tmp_path, log=lines.append) as other:
            assert other == ["5"]
    assert environ == {"CUDA_VISIBLE_DEVICES": "4,5"}
    assert lines[0].endswith("CUDA_VISIBLE_DEVICES=4 (claimed)")


def test_gpu_slots_leaves_cpu_jobs_and_scheduler_allocations_alone(tmp_path: Path) -> None:
    """gpu=0, a machine without cards, or a scheduler's one-card allocation lock nothing."""
    for count, environ, detected, expected in [
        (0, {}, 4, []),
        (1, {}, 0, []),
        (1, {"CUDA_VISIBLE_DEVICES": "3"}, 8, ["3"]),  # SLURM's --gpus=1 already chose card 3.
    ]:
        before = dict(environ)
        with gpu_slots(count, environ, tmp_path, detected=detected, log=lambda _: None) as devices:
            assert environ == before
            assert devices == expected
    assert list(tmp_path.iterdir()) == []


def test_gpu_slots_refuses_more_cards_than_are_visible(tmp_path: Path) -> None:
    """A job asking for two cards on a one-card pool fails at once with both numbers."""
    with (
        pytest.raises(ValueError, match=r"asks for gpu=2 but only 1 card\(s\) are visible: 0"),
        gpu_slots(2, {}, tmp_path, detected=1),
    ):
        pass


def _job(lock_dir: str, held: str, barrier: Any, queue: multiprocessing.Queue[Any]) -> None:
    environ: dict[str, str] = {}
    with gpu_slots(1, environ, Path(lock_dir), detected=2, log=lambda _: None) as devices:
        # Created exclusively: this fails if another job holds the same card right now.
        marker = Path(held) / f"card-{devices[0]}"
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            queue.put(("shared", devices[0]))
            raise
        # Wait for a second job to hold a card too, so that every job overlaps another.
        barrier.wait(timeout=120)
        marker.unlink()
        queue.put((devices[0], environ["CUDA_VISIBLE_DEVICES"]))


def test_concurrent_jobs_never_share_a_card(tmp_path: Path) -> None:
    """Six jobs racing for two cards, each holding its card until another holds one too, never
    hold the same card at the same time, and use both."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    barrier = context.Barrier(2)
    (tmp_path / "locks").mkdir()
    (tmp_path / "held").mkdir()
    args = (str(tmp_path / "locks"), str(tmp_path / "held"), barrier, queue)
    jobs = [context.Process(target=_job, args=args) for _ in range(6)]
    for job in jobs:
        job.start()
    outcomes = [queue.get(timeout=300) for _ in jobs]
    for job in jobs:
        job.join(timeout=30)
        assert job.exitcode == 0
    assert all(device == visible for device, visible in outcomes)
    # Each barrier let two jobs through at once, one on each card: three of each.
    assert sorted(device for device, _ in outcomes) == ["0", "0", "0", "1", "1", "1"]
    assert list(Path(tmp_path / "held").iterdir()) == []
