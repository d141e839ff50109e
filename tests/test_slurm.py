"""A tiny study through `snakemake --profile profiles/slurm` on a real one-node SLURM cluster.

The cluster is Debian's slurm-wlm with munge, started by hand on 127.0.0.1
(there is no systemd here) with every file it writes (configuration, state,
spool, logs, the munge socket) in one temporary folder, and stopped by PID at
the end. It needs root: slurmd runs as root and munged as the munge user.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml

from regbench.aggregate import JOB_COLUMNS
from regbench.training import TIMING_FIELDS

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "profiles"

#: One dataset, two regularizers, two seeds, two epochs: two training jobs (cells) of two runs.
SLURM_STUDY = {
    "study": {"name": "slurm", "title": "Tiny SLURM study", "description": "One dataset."},
    "datasets": {"iris": {"source": "sklearn", "loader": "iris"}},
    "models": {"mlp": {"type": "mlp", "units": [8]}},
    "regularizers": {"none": {}, "l2": {"kernel": {"l2": 1.0e-3}}},
    "seeds": [0, 1],
    "training": {"epochs": 2, "batch_size": 16},
    "baseline": "none",
}
CELLS = ["none", "l2"]
TRAINING_RUNS = [(regularizer, seed) for regularizer in CELLS for seed in (0, 1)]

#: Seconds before the plugin's first status check. The plugin only trusts
#: squeue if MinJobAge >= 3 x this, and falls back to sacct otherwise, which
#: without an accounting database finds nothing: Snakemake would wait forever.
STATUS_CHECK_SECONDS = 2
MIN_JOB_AGE = 300
SNAKEMAKE_TIMEOUT = 300

#: Seen in the jobstep's environment dump (`--verbose`) in each SLURM job log.
JOB_ID_IN_ENVIRONMENT = re.compile(r"'SLURM_JOB_ID': '(\d+)'")

pytestmark = pytest.mark.slurm

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "srun", "scancel")


def _install_slurm() -> None:
    """Install slurm-wlm and munge with apt where missing, or skip the module saying why."""
    if all(shutil.which(name) for name in (*DAEMONS, *CLIENTS)):
        return
    if os.geteuid() != 0:
        pytest.skip("slurm-wlm and munge are not installed, and installing them needs root")
    if shutil.which("apt-get") is None:
        pytest.skip("slurm-wlm and munge are not installed, and there is no apt-get here")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "slurm-wlm", "munge"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.skip(f"apt-get could not install slurm-wlm and munge: {result.stderr[-500:]}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _memory_mb() -> int:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        return int(meminfo.readline().split()[1]) // 1024


@dataclass
class Cluster:
    """A running one-node cluster: its folder, the environment that reaches it, its daemons."""

    root: Path
    env: dict[str, str]
    daemons: list[subprocess.Popen[bytes]] = field(default_factory=list)
    startup_seconds: float = 0.0

    def start(self, name: str, command: list[str], **kwargs: object) -> None:
        """Start one daemon in the foreground, its output in log/<name>.out."""
        log = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 (the daemon keeps it)
        self.daemons.append(
            subprocess.Popen(  # type: ignore[call-overload]  # **kwargs: object hides the overload
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, **kwargs
            )
        )
        log.close()

    def slurm(self, *command: str) -> str:
        """Run a SLURM client command against this cluster; its output, errors included."""
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=30)
        return result.stdout + result.stderr

    def logs(self) -> str:
        """The tail of every daemon's log, for failure messages."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted((self.root / "log").iterdir())
        )

    def stop(self) -> None:
        """Cancel what is left in the queue, then stop the daemons we started, by PID."""
        if self.daemons:
            self.slurm("scancel", "--full", "--user", pwd.getpwuid(os.getuid()).pw_name)
        for daemon in reversed(self.daemons):
            if daemon.poll() is None:
                daemon.terminate()
                try:
                    daemon.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()


def _slurm_conf(root: Path, munge_socket: Path) -> str:
    cpus = os.cpu_count() or 1
    return f"""\
ClusterName=regbench
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
MinJobAge={MIN_JOB_AGE}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_memory_mb() * 8 // 10} State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """munged, slurmctld and slurmd on 127.0.0.1, up until the node is idle."""
    pytest.importorskip(
        "snakemake_executor_plugin_slurm",
        reason="the SLURM executor plugin is not installed (pip install -e '.[cluster]')",
    )
    if os.geteuid() != 0:
        pytest.skip("a SLURM cluster on this machine needs root (slurmd runs as root)")
    _install_slurm()
    try:
        munge_user = pwd.getpwnam("munge")
    except KeyError:
        pytest.skip("munge is installed but there is no munge user to run munged as")

    # Not under pytest's tmp_path: munged runs as the munge user and must reach its socket.
    root = Path(tempfile.mkdtemp(prefix="regbench-slurm-"))
    root.chmod(0o755)
    for name in ("log", "state", "spool", "bin", "munge"):
        (root / name).mkdir()
    munge_dir = root / "munge"
    munge_dir.chmod(0o755)  # munged insists that everyone may traverse its socket's folder.
    os.chown(munge_dir, munge_user.pw_uid, munge_user.pw_gid)
    munge_socket = munge_dir / "munge.socket"
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, munge_socket), encoding="utf-8")
    # The slurm-jobstep plugin (0.6) strips SLURM_CONF from the environment of
    # the `srun` it runs inside each job, so srun would look for
    # /etc/slurm/slurm.conf. This cluster's configuration lives here instead;
    # a shim first on PATH hands it back.
    shim = root / "bin" / "srun"
    shim.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {shutil.which("srun")} "$@"\n')
    shim.chmod(0o755)
    env = {
        **os.environ,
        "SLURM_CONF": str(conf),
        "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    running = Cluster(root, env)
    started = time.monotonic()
    try:
        running.start(
            "munged",
            [
                "munged",
                "--foreground",
                f"--socket={munge_socket}",
                f"--pid-file={munge_dir / 'munged.pid'}",
                f"--log-file={munge_dir / 'munged.log'}",
                f"--seed-file={munge_dir / 'munged.seed'}",
            ],
            user=munge_user.pw_uid,
            group=munge_user.pw_gid,
            extra_groups=[],
        )
        deadline = time.monotonic() + 10
        while not munge_socket.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert munge_socket.exists(), running.logs()
        running.start("slurmctld", ["slurmctld", "-D", "-i"])
        running.start("slurmd", ["slurmd", "-D", "-N", "localhost"])
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            state = running.slurm("sinfo", "--noheader", "--nodes=localhost", "--format=%T").strip()
            if state == "idle":
                break
            time.sleep(0.5)
        assert state == "idle", f"the node never became idle (sinfo: {state!r})\n{running.logs()}"
        running.startup_seconds = time.monotonic() - started
        yield running
    finally:
        running.stop()
        shutil.rmtree(root, ignore_errors=True)


def _snakemake_command(workdir: Path, *args: str) -> list[str]:
    """Snakemake on the project's Snakefile and SLURM_STUDY, in ``workdir``."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(SLURM_STUDY), encoding="utf-8")
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"),
        *args,
    ]  # fmt: skip


@dataclass
class Runs:
    """Where the local and the SLURM run of SLURM_STUDY left their files."""

    local: Path
    slurm: Path
    slurm_output: str
    cluster: Cluster


@pytest.fixture(scope="module")
def runs(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The same study run through profiles/slurm on the cluster and through profiles/local."""
    local_dir = tmp_path_factory.mktemp("local-run")
    slurm_dir = tmp_path_factory.mktemp("slurm-run")
    # The local run goes alongside: the SLURM run spends most of its time
    # waiting between status checks.
    local = subprocess.Popen(
        _snakemake_command(local_dir, "--profile", str(PROFILES / "local"), "--cores", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        started = time.monotonic()
        on_slurm = subprocess.run(
            _snakemake_command(
                slurm_dir,
                "--profile", str(PROFILES / "slurm"),
                # This cluster has no accounting database: see STATUS_CHECK_SECONDS.
                "--slurm-status-command", "squeue",
                "--slurm-init-seconds-before-status-checks", str(STATUS_CHECK_SECONDS),
                "--slurm-no-account",
                "--retries", "0",
                "--latency-wait", "5",
                # Makes each job log its environment, SLURM_JOB_ID included.
                "--verbose",
            ),
            env=cluster.env,
            capture_output=True,
            text=True,
            timeout=SNAKEMAKE_TIMEOUT,
            check=False,
        )  # fmt: skip
        seconds = time.monotonic() - started
        local_output, _ = local.communicate(timeout=SNAKEMAKE_TIMEOUT)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(
            f"snakemake ran past {expired.timeout} s: {str(expired.output)[-3000:]}\n"
            + cluster.slurm("squeue")
            + cluster.logs()
        )
    finally:
        if local.poll() is None:
            local.kill()
            local.wait()
    output = on_slurm.stdout + on_slurm.stderr
    assert on_slurm.returncode == 0, output[-5000:] + cluster.logs()
    assert local.returncode == 0, local_output[-5000:]
    print(f"cluster up in {cluster.startup_seconds:.1f} s; the SLURM run took {seconds:.0f} s")
    return Runs(local_dir, slurm_dir, output, cluster)


def test_every_cell_ran_as_one_slurm_job(runs: Runs) -> None:
    """Each train_cell (all of a cell's seeds) has a SLURM log named by its job id, ran with
    that SLURM_JOB_ID, and exited 0."""
    controller_log = (runs.cluster.root / "log" / "slurmctld.log").read_text(errors="replace")
    job_ids = set()
    for regularizer in CELLS:
        logs_dir = runs.slurm / ".snakemake/slurm_logs/rule_train_cell"
        folder = logs_dir / f"iris_mlp_{regularizer}"
        logs = list(folder.glob("*.log"))
        assert len(logs) == 1, (folder, logs)
        job_id = logs[0].stem
        assert job_id.isdigit(), logs[0]
        assert JOB_ID_IN_ENVIRONMENT.findall(logs[0].read_text(errors="replace")) == [job_id]
        assert f"_job_complete: JobId={job_id} WEXITSTATUS 0" in controller_log
        cell_log = runs.slurm / f"logs/train_cell/iris/mlp/{regularizer}.log"
        text = cell_log.read_text(encoding="utf-8")
        assert "seeds [0, 1] trained: {0: 'ok', 1: 'ok'}" in text
        recorded = re.search(r"SLURM_JOB_ID[=: ]+(\d+)", text)
        assert recorded is not None and recorded[1] == job_id
        job_ids.add(job_id)
    assert len(job_ids) == len(CELLS)


def test_no_job_ran_on_the_submitting_host_except_the_target(runs: Runs) -> None:
    """Every job but the `all` target was submitted with sbatch; none ran locally."""
    assert re.findall(r"^localrule (\w+):", runs.slurm_output, re.MULTILINE) == ["all"]
    remote = re.findall(r"^rule (\w+):", runs.slurm_output, re.MULTILINE)
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", runs.slurm_output)
    assert remote.count("train_cell") == len(CELLS)
    assert len(set(submitted)) == len(submitted) == len(remote)


#: What a run measured about the machine it ran on, not what it learned: how
#: long it took, its peak memory, its device. They differ between hosts.
MEASUREMENTS = [*sorted(TIMING_FIELDS), *JOB_COLUMNS, "device", "host"]


def _comparable(table: pd.DataFrame) -> pd.DataFrame:
    """A table without the columns and summary rows that hold MEASUREMENTS."""
    if "metric" in table:
        table = table[~table["metric"].isin(MEASUREMENTS)]
    return table.drop(columns=MEASUREMENTS, errors="ignore").reset_index(drop=True)


def test_tables_equal_a_local_run_of_the_same_study(runs: Runs) -> None:
    """Every table under results/tables is identical to a local run's, measurements aside."""
    local_dir, slurm_dir = runs.local / "results/tables", runs.slurm / "results/tables"
    names = sorted(path.name for path in local_dir.iterdir())
    assert names == sorted(path.name for path in slurm_dir.iterdir())
    assert {"runs.csv", "summary.csv"} <= set(names)
    for name in names:
        if name.endswith(".csv"):
            local = _comparable(pd.read_csv(local_dir / name))
            slurm = _comparable(pd.read_csv(slurm_dir / name))
            pd.testing.assert_frame_equal(slurm, local, check_exact=True, obj=name)
        else:
            assert (slurm_dir / name).read_bytes() == (local_dir / name).read_bytes(), name
    assert len(pd.read_csv(slurm_dir / "runs.csv")) == len(TRAINING_RUNS)


def test_report_is_rendered_on_the_cluster(runs: Runs) -> None:
    """The study's HTML and PDF report come out of the SLURM run."""
    for name in ("report.html", "report.pdf"):
        assert (runs.slurm / "reports" / name).stat().st_size > 0
