"""Shared fixtures: tiny job configs that train in a second on the bundled jet sample."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

TINY_JOB = {
    "data": {"source": "bundled:dijet_4d", "max_jets": 3000},
    "model": {"encoder": [16, 8], "latent": 3},
    "train": {"epochs": 2, "batch_size": 256, "threads": 1},
    "evaluate": {"plots": False, "timing_jets": 1000},
}


def write_job(job_dir: Path, config: dict) -> Path:
    """Create a job directory holding ``config`` as config.yaml."""
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return job_dir


def run_job_process(job_dir: Path, *args: str, timeout: float = 300, **kw):
    """Run ``python -m hepae_core.job`` in a subprocess, as a scheduler would."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "hepae_core.job", str(job_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kw,
    )


def start_job_process(job_dir: Path) -> subprocess.Popen:
    """Start ``python -m hepae_core.job`` in the background (stderr piped), to signal it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", "hepae_core.job", str(job_dir)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def tiny_job_config() -> dict:
    import copy

    return copy.deepcopy(TINY_JOB)


@pytest.fixture(scope="session")
def slurm():
    """The private one-node Slurm test cluster (tests/slurm), started unless one runs, with
    SLURM_CONF pointing at it; skipped where this machine cannot run Slurm (not root,
    packages missing). At the end of the session the cluster is stopped (its jobs, munged,
    slurmctld, slurmd, its temporary directory) if this session started it; one that ran
    before is left running."""
    from slurm import cluster

    reason = cluster.ensure()
    if reason:
        pytest.skip(reason)
    if not cluster.started_here():
        yield cluster
        return
    # A SIGTERM (a CI timeout, `kill`) ends the session through its teardown, as Ctrl-C
    # does, so that the daemons are stopped rather than left behind.
    previous = signal.getsignal(signal.SIGTERM)

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
    try:
        yield cluster
    finally:
        print("\n" + cluster.stop().strip())
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
