"""The command line against the real one-node Slurm cluster: plan, submit --site, status,
and a retry of exactly the failed jobs. Needs the gridsearch core (plan/submit/status)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm import cluster

from gridsearch.campaign import open_campaign

pytest.importorskip("gridsearch.submit", reason="needs the gridsearch core (plan/submit/status)")

REPO = Path(__file__).resolve().parent.parent

# The timeout only guards against a hang: the waits fail by themselves when nothing moves.
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(3600)]

SPACE = {
    "name": "cli-slurm",
    "base": {
        "data": {"source": "bundled:dijet_4d", "max_jets": 3000},
        "model": {"encoder": [8]},
        "train": {"epochs": 2},
        "evaluate": {"plots": False},
    },
    # cuda fails on a machine without a GPU: two jobs done, two failed
    "grid": {"model.latent": [2, 3], "train.device": ["cpu", "cuda"]},
}


def gridsearch(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "gridsearch", *args],
        capture_output=True,
        text=True,
        timeout=600,  # a guard against a hang only: Python starts slowly under load
        env=env,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_plan_submit_status_retry_on_slurm(tmp_path, slurm):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the failing jobs ask for CUDA, which this machine has")
    sites_dir = tmp_path / "sites"
    sites_dir.mkdir()
    (sites_dir / "test-slurm.yaml").write_text(
        yaml.safe_dump(
            {
                "extends": "slurm",
                "python": sys.executable,
                "env": {"variables": {"PYTHONPATH": str(REPO)}},
                "request": {"time": "10:00"},
            }
        )
    )
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    camp = tmp_path / "my scan's dir"
    gridsearch("plan", str(space), "-o", str(camp))
    site = ["--site", "test-slurm", "--sites-dir", str(sites_dir)]
    t0 = time.monotonic()
    out = gridsearch("submit", str(camp), *site)
    # returns at once: never waits for the jobs (which take a minute at least)
    assert time.monotonic() - t0 < 30 or not any((camp / "jobs").rglob("metrics.json"))
    ledger = open_campaign(camp).submissions()  # the intent merged with its outcome
    assert len(ledger) == 1 and ledger[0]["kind"] == "slurm", out.stdout
    assert ledger[0]["outcome"] == "submitted"
    assert ledger[0]["command"][:2] == ["sbatch", "--parsable"]
    assert len(ledger[0]["tasks"]) == 4

    # Submitting again submits nothing: the jobs are queued, running or done.
    again = gridsearch("submit", str(camp), *site, check=False)
    assert len(open_campaign(camp).submissions()) == 1, again.stdout

    def ended():
        status = json.loads(gridsearch("status", str(camp), "--json").stdout)
        return all(j["state"] in ("done", "failed") for j in status["jobs"]) and status

    status = cluster.wait_for("the jobs to end", ended, dirs=[camp], every=2)
    states = [j["state"] for j in status["jobs"]]
    assert sorted(states) == ["done", "done", "failed", "failed"]
    failed = [j for j in status["jobs"] if j["state"] == "failed"]
    assert all("CUDA" in j["reason"] for j in failed), failed

    # --only failed: exactly those, as one compact array of their campaign indices
    gridsearch("submit", str(camp), *site, "--only", "failed", "--time", "5")
    retry = open_campaign(camp).submissions()[-1]
    assert sorted(retry["tasks"].values()) == sorted(j["id"] for j in failed)
    script = (camp / retry["dir"] / "job.sh").read_text()
    indices = sorted(j["index"] for j in failed)
    from gridsearch.render import compact_ranges

    assert f"#SBATCH --array={compact_ranges(indices)}\n" in script
    assert "#SBATCH --time=00:05:00" in script
