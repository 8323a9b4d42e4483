"""A staged campaign with real trainings, run locally with one command: stage 2 picks the
best finished stage-1 job when it starts; a rerun of that stage-1 job marks it out of date,
and ``resubmit --out-of-date`` reruns it (and nothing else)."""

from __future__ import annotations

import json

import pytest
from conftest_gs import cli, write

from gridsearch.campaign import open_campaign
from gridsearch.status import campaign_status
from hepae_core.states import JobState

pytestmark = pytest.mark.timeout(600)

SPACE = """\
name: staged
base:
  data: {source: bundled:dijet_4d, variables: 4d, max_jets: 3000}
  model: {encoder: [8]}
  train: {epochs: 2, batch_size: 256}
  evaluate: {plots: false, timing_jets: 1000, bits: [8]}
stages:
  single:
    grid: {model.latent: [3], train.lr: [1e-4, 1e-2]}
  grouped:
    after: single
    stage1: {pick: best, by: best_val_loss}
    base: {data: {group: {by: sequence}}, train: {epochs: 1}}
    grid: {data.group.size: [2], model.latent: [4]}
"""


def test_staged_campaign_runs_locally_and_reruns_out_of_date_jobs(tmp_path, capsys):
    space = write(tmp_path / "space.yaml", SPACE)
    camp = tmp_path / "camp"
    assert cli(capsys, "plan", space, "-o", camp)[0] == 0
    code, out, err = cli(capsys, "submit", camp, "--site", "local", "--workers", "2")
    assert code == 0, out + err
    assert "stage 'single': submitted 2 jobs" in out and "stage 'grouped': submitted 1" in out
    campaign = open_campaign(camp)
    statuses = campaign_status(campaign, query=False)
    assert [js.state for js in statuses] == [JobState.DONE] * 3
    singles = [js for js in statuses if js.stage == "single"]
    stage2 = next(js for js in statuses if js.stage == "grouped")
    losses = {
        js.id: json.loads((js.dir / "metrics.json").read_text())["best_val_loss"] for js in singles
    }
    assert len(set(losses.values())) == 2  # lr 1e-4 and 1e-2 train differently
    choice = json.loads((stage2.dir / "stage1.json").read_text())
    best = min(losses, key=losses.get)
    assert choice["chosen_id"] == best and choice["by"] == "best_val_loss"
    assert choice["value"] == pytest.approx(losses[best])
    assert stage2.out_of_date == ""
    code, out, _ = cli(capsys, "show", stage2.id, camp)
    assert code == 0 and f"stage 1: {best} chosen" in out and "of 2 candidate(s)" in out

    # a forced rerun of every done job: stage 1 first, then stage 2 behind it
    code, out, err = cli(
        capsys, "resubmit", camp, "--site", "local", "--only", "done", "--force", "--workers", "1",
    )  # fmt: skip
    assert code == 0, out + err
    statuses = {js.id: js for js in campaign_status(campaign, query=False)}
    assert statuses[stage2.id].state == JobState.DONE
    # stage 2 reran in the same submission after stage 1: it is up to date again
    assert statuses[stage2.id].out_of_date == ""
    rechosen = json.loads((stage2.dir / "stage1.json").read_text())
    assert rechosen["time"] != choice["time"]

    # now only stage 1 reruns (ids limit the choice, as promote does): stage 2 is stale
    from gridsearch.submit import submit

    report = submit(campaign, "local", only={JobState.DONE}, force=True, ids={best})
    assert [js.id for js in report.selected] == [best]
    js2 = next(js for js in campaign_status(campaign, query=False) if js.id == stage2.id)
    assert js2.state == JobState.DONE and "finished again" in js2.out_of_date
    code, out, err = cli(capsys, "status", camp, "--no-query")
    assert "done (out of date)" in out and "--out-of-date" in out
    code, out, err = cli(capsys, "resubmit", camp, "--site", "local", "--out-of-date")
    assert code == 0, out + err
    assert "submitted 1 jobs" in out
    js2 = next(js for js in campaign_status(campaign, query=False) if js.id == stage2.id)
    assert js2.state == JobState.DONE and js2.out_of_date == ""
    # the earlier outputs were kept, not overwritten
    assert any((stage2.dir / "previous").iterdir())
