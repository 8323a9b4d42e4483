"""Real Slurm: ``promote`` right after the jobs wrote ``done`` while their tasks still run
(a site template that lingers 15 s after the training, as a slow log copy or epilogue
would). Promote waits for the tasks to end, then submits the promoted job, which ends done
with the new epochs; before, it was left ``interrupted`` as "held by the scheduler"."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from slurm import cluster

from gridsearch.campaign import open_campaign
from gridsearch.status import campaign_status
from hepae_core.states import JobState

# The timeout only guards against a hang: the waits fail by themselves when nothing moves.
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(3600)]

LINGER = """{% extends "slurm.sh.j2" %}
{% block finish %}
sleep 15
exit "$rc"
{% endblock %}
"""
SPACE = cluster.tiny_space("slurmpromote")


def _wait(campaign, until, what: str):
    def reached():
        statuses = campaign_status(campaign)
        return until(statuses) and statuses

    return cluster.wait_for(what, reached, dirs=[campaign.root])


def test_promote_waits_for_tasks_that_still_run_after_done(tmp_path, slurm):
    sites = cluster.write_test_site(tmp_path)
    (sites / "linger.sh.j2").write_text(LINGER)
    profile = yaml.safe_load((sites / "test-slurm.yaml").read_text())
    (sites / "test-slurm.yaml").write_text(yaml.safe_dump({**profile, "template": "linger.sh.j2"}))
    camp, site, _ = cluster.plan_and_submit(tmp_path, SPACE, sites)
    campaign = open_campaign(camp)
    _wait(campaign, lambda ss: all(js.state == JobState.DONE for js in ss), "both jobs done")
    # both wrote done; their tasks linger 15 s more in the scheduler
    t0 = time.monotonic()
    proc = cluster.gridsearch("promote", str(camp), "--keep", "1", "--epochs", "2", *site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "submitted 1 jobs" in proc.stdout, proc.stdout
    assert time.monotonic() - t0 > 5  # it waited for the old tasks to end
    statuses = _wait(
        campaign,
        lambda ss: all(js.state in (JobState.DONE, JobState.FAILED) for js in ss),
        "the promoted job to end",
    )
    assert [js.state for js in statuses] == [JobState.DONE] * 2
    epochs = sorted(
        json.loads((js.dir / "state.json").read_text()).get("epochs") for js in statuses
    )
    assert epochs == [1, 2]
