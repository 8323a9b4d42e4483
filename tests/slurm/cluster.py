"""Start (or reuse) the one-node Slurm test cluster from the tests.

``ensure()`` runs ``start_cluster.sh`` beside this file and returns None when the node
is idle, or a reason to skip when this machine cannot run Slurm (not root, packages
missing). A cluster that should start but does not is an error, not a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
START = HERE / "start_cluster.sh"
STOP = HERE / "stop_cluster.sh"
PACKAGES = "apt-get update && apt-get install -y slurmctld slurmd slurm-client munge"
NEEDED = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")


def skip_reason() -> str | None:
    """Why this machine cannot run the test cluster, or None."""
    if os.name != "posix" or os.geteuid() != 0:
        return "the Slurm test cluster needs root (slurmd runs as root here)"
    missing = [exe for exe in NEEDED if shutil.which(exe) is None]
    if missing:
        return f"Slurm/munge not installed ({', '.join(missing)} missing): {PACKAGES}"
    return None


def ensure(timeout: int = 90) -> str | None:
    """Start the cluster unless it runs; None when ready, else the reason to skip."""
    reason = skip_reason()
    if reason:
        return reason
    env = dict(os.environ, HEPAE_SLURM_TIMEOUT=str(timeout))
    proc = subprocess.run(
        ["bash", str(START)], capture_output=True, text=True, timeout=timeout + 30, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"tests/slurm/start_cluster.sh failed ({proc.returncode}):\n{proc.stdout}\n"
            f"{proc.stderr}"
        )
    return None


def tiny_space(name: str) -> dict:
    """A space of two one-epoch trainings on 3,000 jets (two learning rates): a campaign
    that runs in seconds, for tests of what the scheduler does around the jobs."""
    return {
        "name": name,
        "base": {
            "data": {"source": "bundled:dijet_4d", "max_jets": 3000},
            "model": {"encoder": [8]},
            "train": {"epochs": 1, "batch_size": 256},
            "evaluate": {"plots": False, "timing_jets": 1000},
        },
        "grid": {"train.lr": [1e-3, 1e-2]},
    }


def write_test_site(directory: Path, time: str = "5:00") -> Path:
    """A site profile ``test-slurm`` in ``directory/sites`` for this cluster: the test's
    Python and this checkout on PYTHONPATH; returns the sites directory."""
    import sys

    import yaml

    repo = Path(__file__).resolve().parents[2]
    sites = Path(directory) / "sites"
    sites.mkdir(parents=True, exist_ok=True)
    profile = {
        "extends": "slurm",
        "python": sys.executable,
        "env": {"variables": {"PYTHONPATH": str(repo)}},
        "request": {"time": time},
    }
    (sites / "test-slurm.yaml").write_text(yaml.safe_dump(profile))
    return sites


def gridsearch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m gridsearch ARGS`` in a subprocess, with this checkout importable."""
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "gridsearch", *args],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


def plan_and_submit(
    directory: Path, space: dict, sites: Path, *submit_args: str
) -> tuple[Path, list[str], subprocess.CompletedProcess[str]]:
    """Plan ``space`` into ``directory/camp`` and submit it to the ``test-slurm`` profile
    of ``sites`` with one ``gridsearch submit``; (campaign, site arguments, submit's run)."""
    import yaml

    path = Path(directory) / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    camp = Path(directory) / "camp"
    site = ["--site", "test-slurm", "--sites-dir", str(sites)]
    planned = gridsearch("plan", str(path), "-o", str(camp))
    assert planned.returncode == 0, planned.stdout + planned.stderr
    proc = gridsearch("submit", str(camp), *site, *submit_args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return camp, site, proc
