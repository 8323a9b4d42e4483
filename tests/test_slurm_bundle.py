"""Real Slurm: a bundled submission (``--bundle 2``) on the one-node cluster started by
tests/slurm/start_cluster.sh (shared, left running). Four tiny trainings in two array
tasks; every job ends done, each in its own job dir, with the bundle's task id."""

from __future__ import annotations

import json

import pytest
import yaml
from slurm import cluster

from gridsearch.campaign import open_campaign
from gridsearch.status import campaign_status
from hepae_core.states import JobState

# The timeout only guards against a hang: the waits fail by themselves when nothing moves.
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(3600)]

SPACE = {
    "name": "slurmbundle",
    "base": {
        "data": {"source": "bundled:dijet_4d", "max_jets": 3000},
        "model": {"encoder": [8]},
        "train": {"epochs": 2, "batch_size": 256},
        "evaluate": {"plots": False, "timing_jets": 1000},
    },
    "grid": {"train.lr": [1e-3, 2e-3, 3e-3, 4e-3]},
}


gridsearch = cluster.gridsearch


def test_bundled_submission_on_real_slurm_ends_with_every_job_done(tmp_path, slurm):
    sites_dir = cluster.write_test_site(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    camp = tmp_path / "camp"
    assert gridsearch("plan", str(space), "-o", str(camp)).returncode == 0
    proc = gridsearch(
        "submit", str(camp), "--site", "test-slurm", "--sites-dir", str(sites_dir),
        "--bundle", "2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bundles of 2: 4 jobs in 2 tasks" in proc.stdout
    record = [json.loads(x) for x in (camp / "ledger.jsonl").read_text().splitlines()][-1]
    assert record["event"] == "submitted" and len(record["tasks"]) == 2
    assert all(len(v) == 2 for v in record["tasks"].values())

    campaign = open_campaign(camp)

    def ended():
        statuses = campaign_status(campaign)
        return all(js.state in (JobState.DONE, JobState.FAILED) for js in statuses) and statuses

    statuses = cluster.wait_for("the bundled jobs to end", ended, dirs=[camp], every=3)
    assert [js.state for js in statuses] == [JobState.DONE] * 4, [
        (js.name, js.reason, js.log_tail) for js in statuses
    ]
    # The members are done before their task ends: the script then copies their lines.
    cluster.wait_for(
        "the bundle tasks to end",
        lambda: all("bundle exited with 0" in (js.dir / "job.log").read_text() for js in statuses),
        dirs=[camp],
    )
    by_task: dict[str, list[str]] = {}
    for js in statuses:
        by_task.setdefault(str(js.task_id), []).append(js.id)
        state = json.loads((js.dir / "state.json").read_text())
        assert state["scheduler_job_id"] == js.task_id  # the bundle's task ran it
        assert f"[{js.id}] done" in (js.dir / "job.log").read_text()
    assert sorted(len(v) for v in by_task.values()) == [2, 2]
    sub = camp / record["dir"]
    logs = sorted(p.name for p in (sub / "logs").iterdir() if p.name.startswith("bundle-"))
    assert logs == ["bundle-0.log", "bundle-1.log"]
    # status --watch ends at once when nothing is in flight, one plain line per refresh
    proc = gridsearch("status", str(camp), "--watch", "--interval", "1")
    assert proc.returncode == 0, proc.stderr
    assert "4 done" in proc.stdout
