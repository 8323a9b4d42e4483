"""The private Slurm test cluster itself (tests/slurm/start_cluster.sh): it writes no system
file, a cluster already running is reused and reported as such (so the session leaves it
running), and stopping it leaves no process behind, not even a job still running.

Each test starts a cluster of its own (own record directory, own ports and munged), beside
the one the other Slurm tests share, and stops it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm import cluster

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]

SYSTEM = [Path("/etc/slurm"), Path("/etc/munge"), Path("/run/munge")]


def _listing() -> dict[str, tuple[int, int] | None]:
    """Name -> (size, mtime) of everything in the system directories Slurm and munge use."""
    seen: dict[str, tuple[int, int] | None] = {}
    for top in SYSTEM:
        if not top.exists():
            seen[str(top)] = None
            continue
        for path in [top, *top.rglob("*")]:
            st = path.lstat()
            seen[str(path)] = (st.st_size, st.st_mtime_ns)
    return seen


def _script(name: str, run: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["bash", str(cluster.HERE / name), *args],
        capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, HEPAE_SLURM_RUN=str(run), HEPAE_SLURM_TIMEOUT="120", **env),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int, comm: str) -> bool:
    return _comm(pid) == comm


def _processes_of(directory: Path) -> list[int]:
    """Processes whose environment names this cluster's slurm.conf (its jobs)."""
    needle = f"SLURM_CONF={directory}/slurm.conf".encode()
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            if needle in (p / "environ").read_bytes().split(b"\0"):
                found.append(int(p.name))
        except OSError:
            pass
    return found


@pytest.fixture
def private_run(tmp_path):
    reason = cluster.skip_reason()
    if reason:
        pytest.skip(reason)
    run = tmp_path / "run"
    yield run
    # whatever the test did, stop what it started
    _script("stop_cluster.sh", run, "--purge")


def test_stop_leaves_nothing_and_no_system_file_changes(private_run):
    before = _listing()
    _script("start_cluster.sh", private_run)
    directory = Path((private_run / "dir").read_text().strip())
    conf = directory / "slurm.conf"
    assert "AuthInfo=socket=" in conf.read_text()
    daemons = {
        name: int((directory / f"{name}.pid").read_text())
        for name in ("munged", "slurmctld", "slurmd")
    }
    assert all(_alive(pid, name) for name, pid in daemons.items()), daemons
    # a job that would run for ten minutes, running when the cluster is stopped
    env = dict(os.environ, SLURM_CONF=str(conf))
    job = subprocess.run(
        ["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "sleep 600"],
        capture_output=True, text=True, env=env, check=True, cwd=directory,
    ).stdout.strip()  # fmt: skip
    cluster_env = {**os.environ, "SLURM_CONF": str(conf)}

    def job_running():
        out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True,
                             text=True, env=cluster_env, check=False).stdout  # fmt: skip
        return "RUNNING" in out and "sleep" in {_comm(pid) for pid in _processes_of(directory)}

    deadline = time.monotonic() + 300
    while not job_running():
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.5)

    out = _script("stop_cluster.sh", private_run, "--purge").stdout
    assert "stopped the cluster" in out, out
    time.sleep(0.5)
    assert not [n for n, pid in daemons.items() if _alive(pid, n)], out
    assert _processes_of(directory) == [], out  # the job's processes too
    assert not directory.exists() and not (private_run / "dir").exists()
    assert _listing() == before  # /etc/slurm, /etc/munge, /run/munge as they were


def test_a_running_cluster_is_reused_and_not_claimed(private_run):
    first = _script("start_cluster.sh", private_run).stdout
    assert "already running" not in first
    # what the test session does: a cluster found running is not its to stop
    code = (
        "from slurm import cluster; import os; r = cluster.ensure(); "
        "print(r, cluster.started_here(), os.environ['SLURM_CONF'])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, HEPAE_SLURM_RUN=str(private_run),
                 PYTHONPATH=str(cluster.REPO / "tests")),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    directory = (private_run / "dir").read_text().strip()
    assert proc.stdout.split() == ["None", "False", f"{directory}/slurm.conf"]
    pid = int((Path(directory) / "slurmctld.pid").read_text())
    assert _alive(pid, "slurmctld")  # still running: nothing stopped it
