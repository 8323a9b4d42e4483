"""Real Slurm: a two-stage campaign submitted with one command on the one-node cluster of
tests/slurm/start_cluster.sh (shared, left running). Stage 2 is a second array held by
``--dependency=afterany`` on stage 1's: it starts only after every stage-1 job ended, picks
the best finished stage-1 job when it starts, and the campaign ends with every job done."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from slurm import cluster

from gridsearch.campaign import open_campaign
from gridsearch.status import campaign_status
from hepae_core.states import JobState

# The timeout only guards against a hang: the waits fail by themselves when nothing moves.
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(3600)]

BASE = {
    "data": {"source": "bundled:dijet_4d", "variables": "4d", "max_jets": 4000},
    "model": {"encoder": [8]},
    "train": {"epochs": 3, "batch_size": 256},
    "evaluate": {"plots": False, "timing_jets": 1000},
}
SPACE = {
    "name": "slurmstages",
    "base": BASE,
    "stages": {
        "single": {"grid": {"model.latent": [3], "train.lr": [1e-3, 5e-3]}},
        "grouped": {
            "after": "single",
            "stage1": {"pick": "best", "by": "best_val_loss"},
            "base": {"data": {"group": {"by": "sequence"}}, "train": {"epochs": 1}},
            "grid": {"data.group.size": [2], "model.latent": [4]},
        },
    },
}


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_two_stage_campaign_on_real_slurm_with_one_submit(tmp_path, slurm):
    camp, _, proc = cluster.plan_and_submit(tmp_path, SPACE, cluster.write_test_site(tmp_path))
    assert "stage 'single': submitted 2 jobs" in proc.stdout
    assert "stage 'grouped': submitted 1 jobs" in proc.stdout
    records = [json.loads(x) for x in (camp / "ledger.jsonl").read_text().splitlines()]
    submitted = [r for r in records if r.get("event") == "submitted"]
    assert len(submitted) == 2
    assert submitted[1]["after"] == submitted[0]["scheduler_ids"]
    assert f"--dependency=afterany:{submitted[0]['scheduler_ids'][0]}" in submitted[1]["command"]

    campaign = open_campaign(camp)
    seen_waiting = False

    def ended():
        nonlocal seen_waiting
        statuses = campaign_status(campaign)
        stage2 = next(js for js in statuses if js.stage == "grouped")
        if stage2.state == JobState.WAITING:
            seen_waiting = True
            assert stage2.held and "queued behind its stage" in stage2.reason
        return all(js.state in (JobState.DONE, JobState.FAILED) for js in statuses) and statuses

    statuses = cluster.wait_for("both stages to end", ended, dirs=[camp])
    stage2 = next(js for js in statuses if js.stage == "grouped")
    assert [js.state for js in statuses] == [JobState.DONE] * 3, [
        (js.name, js.reason, js.log_tail) for js in statuses
    ]
    assert seen_waiting  # stage 1 takes several seconds: stage 2 was seen held behind it
    singles = [js for js in statuses if js.stage == "single"]
    started = _time(json.loads((stage2.dir / "state.json").read_text())["started"])
    for js in singles:
        finished = _time(json.loads((js.dir / "state.json").read_text())["finished"])
        assert started >= finished, "stage 2 started before a stage-1 job had finished"
    # the choice, made when stage 2 started: the lower best_val_loss of the two
    losses = {
        js.id: json.loads((js.dir / "metrics.json").read_text())["best_val_loss"] for js in singles
    }
    choice = json.loads((stage2.dir / "stage1.json").read_text())
    assert choice["chosen_id"] == min(losses, key=losses.get)
    assert {c["id"] for c in choice["candidates"]} == set(losses)
