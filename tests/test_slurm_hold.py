"""Real Slurm: a held task (``scontrol hold``, or ``--hold`` from the site profile) stays in
the queue and starts only once released. Status says so and how to go on, resubmit leaves
it alone (released later, it would run a second time), ``--watch`` does not wait for it
forever, and once released it ends done in its first attempt."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from slurm import cluster

from gridsearch.campaign import open_campaign

# The timeout only guards against a hang: the waits fail by themselves when nothing moves.
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(3600)]

SPACE = cluster.tiny_space("slurmhold")


def _status(camp: Path) -> list[dict]:
    proc = cluster.gridsearch("status", str(camp), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["jobs"]


def test_held_task_is_queued_until_released_and_never_rerun(tmp_path, slurm):
    sites = cluster.write_test_site(tmp_path)
    profile = yaml.safe_load((sites / "test-slurm.yaml").read_text())
    profile["request"]["extra"] = ["--hold"]  # every task starts held
    (sites / "test-slurm.yaml").write_text(yaml.safe_dump(profile))
    camp, site, _ = cluster.plan_and_submit(tmp_path, SPACE, sites)
    array = open_campaign(camp).submissions()[-1]["scheduler_ids"][0]
    try:
        jobs = _status(camp)
        assert [j["state"] for j in jobs] == ["queued", "queued"], jobs
        for job in jobs:
            assert job["on_hold"] is True
            assert job["scheduler_state"] == "held"
            assert job["reason"].startswith("Slurm: held (JobHeldUser)"), job["reason"]
            assert f"scontrol release {job['task_id']}" in job["reason"], job["reason"]
            assert f"scancel {job['task_id']}" in job["reason"], job["reason"]

        table = cluster.gridsearch("status", str(camp)).stdout
        assert "2 queued job(s) are held by the scheduler" in table, table

        # resubmit leaves held tasks alone: nothing queued a second time
        before = len(open_campaign(camp).submissions())
        again = cluster.gridsearch("resubmit", str(camp), *site)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "nothing to submit" in again.stdout, again.stdout
        assert len(open_campaign(camp).submissions()) == before

        # --watch ends at once: nothing would move without a release
        t0 = time.monotonic()
        watched = cluster.gridsearch("status", str(camp), "--watch", "--interval", "1")
        assert watched.returncode == 0, watched.stderr
        assert time.monotonic() - t0 < 300  # not the 10 min a wait on the jobs would take
        assert "2 jobs held by the scheduler" in watched.stdout, watched.stdout
    finally:
        subprocess.run(["scontrol", "release", array], check=False)

    def done():
        jobs = _status(camp)
        bad = [(j["state"], j["reason"]) for j in jobs if j["state"] in ("failed", "lost")]
        assert not bad, bad
        return all(j["state"] == "done" for j in jobs) and jobs

    jobs = cluster.wait_for("the released jobs to end done", done, dirs=[camp], every=2)
    for job in jobs:
        state = json.loads((Path(job["dir"]) / "state.json").read_text())
        assert state["attempt"] == 1  # ran once, after the release
        assert job["on_hold"] is False
