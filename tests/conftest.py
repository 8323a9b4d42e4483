"""Shared fixtures: tiny job configs that train in a second on the bundled jet sample."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
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
    """The one-node Slurm test cluster (tests/slurm), started unless it runs; the test is
    skipped where this machine cannot run Slurm (not root, packages missing)."""
    spec = importlib.util.spec_from_file_location("slurm_cluster", REPO / "tests/slurm/cluster.py")
    cluster = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cluster)
    reason = cluster.ensure()
    if reason:
        pytest.skip(reason)
