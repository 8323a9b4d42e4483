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
