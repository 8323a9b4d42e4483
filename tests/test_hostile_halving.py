"""Halving and staged campaigns in words that stay true: status reads the whole rung
chain (a rung reached by hand after a cancelled promote job ends the old advice), says
to wait while the rung still runs, names the real site in the out-of-date hint, and
describes a stage-2 job's stage-1 jobs by their states now."""

from __future__ import annotations

import json
from pathlib import Path

from conftest_gs import cli, set_state, write

from gridsearch.backends.base import SchedulerState
from gridsearch.campaign import open_campaign
from gridsearch.halving import rungs as R
from gridsearch.status import campaign_status
from hepae_core.states import JobState

SPACE = """\
name: h
base:
  train: {epochs: 2}
halving: {rungs: [2, 4, 8], keep: 1/2}
grid:
  train.lr: [1.0e-3, 2.0e-3, 3.0e-3, 4.0e-3]
"""


def _campaign(tmp_path: Path, capsys):
    write(tmp_path / "s.yaml", SPACE)
    code, _, err = cli(capsys, "plan", tmp_path / "s.yaml", "-o", tmp_path / "c")
    assert code == 0, err
    camp = open_campaign(tmp_path / "c")
    link = {
        "event": R.RUNG_EVENT, "rung": 1, "site": "slurm", "kind": "slurm",
        "dir": "submit/rung-x", "after": ["41"], "time": "2026-12-01T00:00:00+00:00",
        "command": [], "dry_run": False, "scheduler_id": "48",
    }  # fmt: skip
    camp.append_ledger(link)
    return camp, link


def test_a_cancelled_promote_job_then_a_promote_by_hand_is_old_news(tmp_path, capsys):
    camp, link = _campaign(tmp_path, capsys)
    cancelled = (link, SchedulerState("48", "cancelled", "by user"))
    line = R.describe(camp, cancelled, campaign_status(camp, query=False))
    assert "ended cancelled" in line and "goes on by hand" in line
    assert "rung-48.out" not in line  # no such log: not pointed at
    assert "--site slurm --all-rungs" in line
    # the user goes on by hand: two jobs reach rung 1 (promotion.json), then the last rung
    dirs = sorted((camp.root / "jobs").iterdir())
    for d in dirs[:2]:
        (d / "promotion.json").write_text(json.dumps({"rung": 1}))
    assert R.describe(camp, cancelled, campaign_status(camp, query=False)) is None
    (dirs[0] / "promotion.json").write_text(json.dumps({"rung": 2}))
    assert R.describe(camp, cancelled) is None
    for args in (["status", camp.root, "--no-query"], ["status", camp.root, "--counts"]):
        code, out, err = cli(capsys, *args)
        assert code == 0 and "goes on by hand" not in out + err
    code, out, _ = cli(capsys, "status", camp.root, "--json", "--no-query")
    assert json.loads(out)["rung_chain"]["info"] is None


def test_a_failed_promote_job_says_wait_while_the_rung_runs(tmp_path, capsys):
    camp, link = _campaign(tmp_path, capsys)
    dirs = sorted((camp.root / "jobs").iterdir())
    set_state(dirs[0], "running", host="elsewhere", heartbeat_s=60)
    (dirs[0] / "heartbeat").touch()
    statuses = campaign_status(camp, query=False)
    assert any(js.state == JobState.RUNNING for js in statuses)
    line = R.describe(camp, (link, SchedulerState("48", "failed", "exit 1")), statuses)
    assert "still queued or running: wait until they end, then" in line
    (camp.root / "submit" / "rung-x").mkdir(parents=True)
    (camp.root / "submit" / "rung-x" / "rung-48.out").write_text("promote exited with 1\n")
    set_state(dirs[0], "done")
    line = R.describe(camp, (link, SchedulerState("48", "failed", "exit 1")),
                      campaign_status(camp, query=False))  # fmt: skip
    assert "wait" not in line and "see " in line and "rung-48.out" in line


STAGED = """\
name: st
base:
  data: {source: bundled:dijet_4d, max_jets: 3000}
  train: {epochs: 2}
stages:
  single:
    grid: {model.latent: [2]}
  grouped:
    after: single
    stage1: {pick: best}
    base: {data: {group: {by: sequence}}}
    grid: {data.group.size: [2]}
    zip: {model.latent: [3]}
"""


def test_stage2_reason_and_out_of_date_hint_say_what_is_true(tmp_path, capsys):
    write(tmp_path / "s.yaml", STAGED)
    assert cli(capsys, "plan", tmp_path / "s.yaml", "-o", tmp_path / "c")[0] == 0
    camp = open_campaign(tmp_path / "c")
    statuses = campaign_status(camp, query=False)
    s2 = next(js for js in statuses if js.stage == "grouped")
    s1 = next(js for js in statuses if js.id == s2.after[0])
    # stage 1 was killed while running (its state.json says so, long ago); stage 2 started
    set_state(s1.dir, "running", host="elsewhere", updated="2026-01-01T00:00:00+00:00",
              site="slurm")  # fmt: skip
    set_state(s2.dir, "failed", error_kind="stage1_not_done", exit_code=2,
              reason="none of the 1 stage-1 jobs is done (1 running)")  # fmt: skip
    by_id = {js.id: js for js in campaign_status(camp, query=False)}
    assert by_id[s1.id].state == JobState.LOST
    assert "lost" in by_id[s2.id].reason and "running" not in by_id[s2.id].reason
    set_state(s1.dir, "done", finished="2026-12-01T00:00:00+00:00")
    js = {j.id: j for j in campaign_status(camp, query=False)}[s2.id]
    assert js.state == JobState.FAILED and "running" not in js.reason
    assert "done now: resubmit it" in js.reason
    # out of date: the hint names the campaign's site, never a literal SITE
    set_state(s2.dir, "done", site="slurm")
    choice = {"chosen_id": s1.id, "candidates": [
        {"id": s1.id, "state": "done", "finished": "2026-11-01T00:00:00+00:00"}]}  # fmt: skip
    (s2.dir / "stage1.json").write_text(json.dumps(choice))
    from gridsearch.selection import recovery_hints

    statuses = campaign_status(camp, query=False)
    for js in statuses:
        js.site = "kebnekaise"
    hints = " ".join(recovery_hints(statuses, str(camp.root)))
    assert "out of date" in hints and "--site kebnekaise" in hints and "SITE" not in hints
    for js in statuses:
        js.site = None
    hints = " ".join(recovery_hints(statuses, str(camp.root)))
    assert "--site SITE" not in hints and "<the site you submit to>" in hints


def test_resubmit_reuses_the_campaigns_bundle_and_options(tmp_path, capsys, monkeypatch):
    import os

    bin_dir = tmp_path / "bin"
    write(bin_dir / "sbatch", "#!/bin/sh\necho 4242\n").chmod(0o755)
    for tool in ("squeue", "sacct"):  # a scheduler that has forgotten the jobs
        write(bin_dir / tool, "#!/bin/sh\nexit 0\n").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    write(tmp_path / "s.yaml", "name: b\ngrid:\n  seed: [1, 2, 3, 4]\n")
    assert cli(capsys, "plan", tmp_path / "s.yaml", "-o", tmp_path / "c")[0] == 0
    camp = tmp_path / "c"
    code, out, err = cli(capsys, "submit", camp, "--site", "slurm", "--bundle", "2",
                         "--time", "2h", "--mem", "3G")  # fmt: skip
    assert code == 0, err
    for d in (camp / "jobs").iterdir():
        set_state(d, "failed", reason="boom", error_kind="python_error", site="slurm")
    code, out, _ = cli(capsys, "status", camp, "--no-query")
    hint = next(ln for ln in out.splitlines() if "gridsearch resubmit" in ln)
    assert "(reuses --bundle 2 --time 2h --mem 3G of the last submission)" in hint
    code, out, err = cli(capsys, "resubmit", camp, "--site", "slurm", "--mem", "5G", "--dry-run")
    assert code == 0, err
    assert "note: reusing --bundle 2 --time 2h of submission" in out
    newest = open_campaign(camp).submissions()[-1]
    assert newest["dry_run"] and newest["overrides"] == {"bundle": 2, "time": "2h", "mem": "5G"}
    sub = camp / newest["dir"]
    indices = [ln.split()[0] for ln in (sub / "jobs.txt").read_text().splitlines()]
    assert sorted(indices) == ["0", "0", "1", "1"]  # two bundles of two, not four tasks
    script = (sub / "job.sh").read_text()
    assert "#SBATCH --time=04:00:00" in script or "--time=02:00:00" in script
    assert "#SBATCH --mem=5120M" in script
    # told otherwise, it does otherwise
    code, out, err = cli(capsys, "resubmit", camp, "--site", "slurm", "--bundle", "1", "--dry-run")
    assert code == 0, err
    sub = camp / open_campaign(camp).submissions()[-1]["dir"]
    assert len(set((sub / "jobs.txt").read_text().split())) == 8  # 4 distinct indices


def test_a_killed_stage1_candidate_reads_lost_in_the_stage2_reason(tmp_path):
    """A stage-1 job killed while running leaves state.json saying running and its lock
    free: the stage-2 job's own reason says lost, as status does; a live one stays running."""
    import pytest

    from hepae_core.config import resolve
    from hepae_core.jobdir import job_lock
    from hepae_core.training.two_stage import Stage1NotDone, resolve_stage1

    a = tmp_path / "a"
    a.mkdir()
    set_state(a, "running")
    job = tmp_path / "b"
    job.mkdir()
    cfg = resolve({
        "data": {"source": "bundled:dijet_4d", "group": {"size": 2, "by": "sequence"}},
        "model": {"stage1": {"pick": "best", "by": "best_val_loss", "from": ["../a"]}},
    })  # fmt: skip
    with pytest.raises(Stage1NotDone, match=r"\(1 lost\)"):
        resolve_stage1(cfg, job)
    with job_lock(a), pytest.raises(Stage1NotDone, match=r"\(1 running\)"):
        resolve_stage1(cfg, job)
