"""Campaigns with stages (gridsearch/stages.py): planning, bad input, waiting and out of
date in status, which jobs a submission takes, and the submissions of each stage.

Job states are set here by writing state.json the way a job does (the status logic reads
only files); the real trainings of a staged campaign are in test_stages_run.py and the
real Slurm run in test_slurm_stages.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest_gs import cli, write

from gridsearch.campaign import open_campaign
from gridsearch.errors import GridsearchError
from gridsearch.plan import plan
from gridsearch.status import campaign_status
from gridsearch.submit import submit
from hepae_core.states import JobState

STAGED = """\
name: coll
base:
  data: {source: bundled:dijet_4d, variables: 4d, max_jets: 3000}
  model: {encoder: [8]}
  train: {epochs: 1, batch_size: 256}
  evaluate: {plots: false, timing_jets: 1000}
stages:
  single:
    grid: {model.latent: [2, 3], train.lr: [1e-3, 3e-3]}
  grouped:
    after: single
    stage1: {pick: each}
    base: {data: {group: {by: sequence}}}
    grid: {data.group.size: [2]}
    zip: {model.latent: [3]}
"""


def _plan(tmp_path: Path, text: str = STAGED, name: str = "space.yaml"):
    space = write(tmp_path / name, text)
    report = plan(space, tmp_path / "camp")
    return report, open_campaign(tmp_path / "camp")


def _set_state(job_dir: Path, state: str, **fields) -> None:
    rec = {"state": state, "attempt": 1, "updated": "2026-11-26T01:00:00+00:00", **fields}
    (job_dir / "state.json").write_text(json.dumps(rec))


def _by_stage(statuses, stage):
    return [js for js in statuses if js.stage == stage]


def test_plan_orders_stages_and_records_dependencies(tmp_path):
    report, camp = _plan(tmp_path)
    stages = [j.stage for j in report.jobs]
    assert stages == ["single"] * 4 + ["grouped"] * 4  # pick each: one point per stage-1 job
    manifest = json.loads((camp.root / "manifest.json").read_text())
    assert manifest["stages"] == [
        {"name": "single", "after": None},
        {"name": "grouped", "after": "single"},
    ]
    singles = [j for j in manifest["jobs"] if j["stage"] == "single"]
    grouped = [j for j in manifest["jobs"] if j["stage"] == "grouped"]
    assert all(j["after"] == [] for j in singles)
    # each stage-2 job depends on exactly one stage-1 job, each stage-1 job once
    assert sorted(j["after"][0] for j in grouped) == sorted(j["id"] for j in singles)
    for entry in grouped:
        cfg = (camp.root / entry["dir"] / "config.yaml").read_text()
        assert f"stage1: ../{entry['after'][0]}" in cfg
        assert entry["name"].startswith("grouped_")
    assert [j["index"] for j in manifest["jobs"]] == list(range(8))
    # planning again changes nothing
    again = plan(tmp_path / "space.yaml", tmp_path / "camp")
    assert again.added == [] and len(again.unchanged) == 8


def test_pick_best_groups_candidates_per_key(tmp_path):
    text = STAGED.replace("{pick: each}", "{pick: best, by: ae.pt.width, per: [model.latent]}")
    report, camp = _plan(tmp_path, text)
    singles = {j.id: j for j in report.jobs if j.stage == "single"}
    grouped = [j for j in report.jobs if j.stage == "grouped"]
    assert len(grouped) == 2  # one per stage-1 latent size (2 and 3)
    for job in grouped:
        latents = {singles[d].params["model.latent"] for d in job.after}
        assert len(job.after) == 2 and latents == {job.params["stage1.model.latent"]}
        cfg = (camp.job_dir(job.id) / "config.yaml").read_text()
        assert "pick: best" in cfg and "by: ae.pt.width" in cfg
        for dep in job.after:
            assert f"../{dep}" in cfg


AFTER = "    after: single\n"
PICK = "    stage1: {pick: each}\n"
GROUP_BASE = "    base: {data: {group: {by: sequence}}}\n"
BAD_STAGED = [
    # (replacements old -> new, words the message must hold)
    (
        (AFTER, "    after: grouped\n", "  single:\n", "  single:\n    after: grouped\n"),
        ["cycle (", "-> grouped", "stages.", "after"],
    ),
    ((AFTER, "    after: singel\n"), ["names no stage", "did you mean 'single'"]),
    (("stages:\n", "grid: {train.lr: [1e-3]}\nstages:\n"), ["cannot stand beside 'stages:'"]),
    ((PICK, "    stage1: {pick: worst}\n"), ["'best'", "'each'"]),
    ((AFTER, ""), ["needs 'after: <stage>'"]),
    ((PICK, "    stage1: {pick: best, per: [model.latnt]}\n"), ["model.latent"]),
    ((PICK, "    stage1: {pick: each, where: {model.latent: 7}}\n"), ["matches 'where'"]),
    (("    grid: {data.group.size", "    grdi: {data.group.size"), ["not a stage key", "grid"]),
    (
        (GROUP_BASE, "    base: {data: {group: {by: sequence}, variables: [pt, eta, phi]}}\n"),
        ["same data.variables", "stage 'grouped' reads pt, eta, phi"],
    ),
]


@pytest.mark.parametrize("change, words", BAD_STAGED)
def test_bad_staged_spaces_name_file_line_and_key(tmp_path, capsys, change, words):
    text = STAGED
    pairs = list(zip(change[::2], change[1::2]))
    for old, new in pairs:
        assert old in text
        text = text.replace(old, new, 1)
    space = write(tmp_path / "space.yaml", text)
    code, out, err = cli(capsys, "plan", space, "-o", tmp_path / "camp")
    assert code == 2, (out, err)
    assert "Traceback" not in err and str(space) in err
    for word in words:
        assert word in err, err
    assert not (tmp_path / "camp").exists()  # nothing half-written


def test_cycle_through_three_stages_is_refused(tmp_path):
    text = STAGED + "  third:\n    after: grouped\n    grid: {train.lr: [1e-3]}\n"
    text = text.replace("  single:\n", "  single:\n    after: third\n", 1)
    space = write(tmp_path / "space.yaml", text)
    with pytest.raises(GridsearchError) as exc:
        plan(space, tmp_path / "camp")
    assert "cycle (single -> third -> grouped -> single)" in str(exc.value)


def test_status_waiting_then_ready_then_out_of_date(tmp_path):
    _, camp = _plan(tmp_path)
    statuses = campaign_status(camp, query=False)
    grouped = _by_stage(statuses, "grouped")
    assert {js.state for js in grouped} == {JobState.WAITING}
    assert "waits on 1 of 1 jobs of stage 'single' (1 planned)" in grouped[0].reason
    singles = _by_stage(statuses, "single")
    assert {js.state for js in singles} == {JobState.PLANNED}

    # stage 1: one done, one failed; the grouped job on the done one is ready (planned)
    s_done, s_failed = singles[0], singles[1]
    _set_state(s_done.dir, "done", finished="2026-11-26T01:00:00+00:00")
    _set_state(s_failed.dir, "failed", reason="boom", error_kind="python_error")
    statuses = {js.id: js for js in campaign_status(camp, query=False)}
    on_done = next(js for js in statuses.values() if js.after == [s_done.id])
    on_failed = next(js for js in statuses.values() if js.after == [s_failed.id])
    assert on_done.state == JobState.PLANNED
    assert on_failed.state == JobState.WAITING and "1 failed" in on_failed.reason

    # the grouped job ran and picked s_done (stage1.json as the job writes it)
    _set_state(on_done.dir, "done", finished="2026-11-26T01:10:00+00:00")
    choice = {
        "pick": "path",
        "chosen": f"../{s_done.id}",
        "chosen_id": s_done.id,
        "candidates": [
            {"dir": f"../{s_done.id}", "id": s_done.id, "state": "done",
             "finished": "2026-11-26T01:00:00+00:00"},
        ],
    }  # fmt: skip
    (on_done.dir / "stage1.json").write_text(json.dumps(choice))
    js = next(j for j in campaign_status(camp, query=False) if j.id == on_done.id)
    assert js.state == JobState.DONE and js.out_of_date == ""
    # stage 1 reran (a promote or a forced resubmit): the grouped job is out of date
    _set_state(s_done.dir, "done", finished="2026-11-26T02:00:00+00:00")
    js = next(j for j in campaign_status(camp, query=False) if j.id == on_done.id)
    assert js.state == JobState.DONE
    assert "finished again" in js.out_of_date and s_done.name in js.out_of_date


def test_started_before_stage1_done_is_waiting_not_failed(tmp_path):
    _, camp = _plan(tmp_path)
    statuses = campaign_status(camp, query=False)
    job = _by_stage(statuses, "grouped")[0]
    dep = next(js for js in statuses if js.id == job.after[0])
    _set_state(job.dir, "failed", error_kind="stage1_not_done", reason="none done", exit_code=2)
    _set_state(dep.dir, "running", pid=2**22 + 12345, host="elsewhere")
    js = next(j for j in campaign_status(camp, query=False) if j.id == job.id)
    assert js.state == JobState.WAITING and "started before any stage-1 job was done" in js.reason
    _set_state(dep.dir, "done", finished="2026-11-26T01:00:00+00:00")
    js = next(j for j in campaign_status(camp, query=False) if j.id == job.id)
    assert js.state == JobState.FAILED  # ready now: resubmit reruns it


def test_submission_takes_waiting_jobs_only_behind_their_dependencies(tmp_path):
    from gridsearch.selection import RESUBMIT_DEFAULT, select_jobs

    _, camp = _plan(tmp_path)
    statuses = campaign_status(camp, query=False)
    chosen, skipped = select_jobs(statuses)  # a fresh staged campaign: everything
    assert len(chosen) == 8 and not skipped
    singles = _by_stage(statuses, "single")
    _set_state(singles[0].dir, "failed", reason="boom", error_kind="python_error")
    for js in singles[1:]:
        _set_state(js.dir, "done", finished="2026-11-26T01:00:00+00:00")
    statuses = campaign_status(camp, query=False)
    chosen, skipped = select_jobs(statuses)  # submit: planned + waiting
    chosen_ids = {js.id for js in chosen}
    assert len(chosen) == 3 and all(js.stage == "grouped" for js in chosen)
    assert singles[0].id not in chosen_ids
    assert skipped["waiting on stage-1 jobs that ended unfinished (resubmit those first)"] == 1
    chosen, skipped = select_jobs(statuses, set(RESUBMIT_DEFAULT) | {JobState.PLANNED})
    # the failed stage-1 job and the one waiting on it go together (stage 1 first), with
    # the three planned ones whose stage-1 jobs are done
    assert len(chosen) == 5 and chosen[0].id == singles[0].id
    assert [js.stage for js in chosen] == ["single"] + ["grouped"] * 4


def test_slurm_dry_run_submits_each_stage_behind_the_one_before(tmp_path, capsys):
    _plan(tmp_path)
    code, out, err = cli(capsys, "submit", tmp_path / "camp", "--site", "slurm", "--dry-run")
    assert code == 0, err
    assert "stage 'single': would submit 4 jobs" in out
    assert "stage 'grouped': would submit 4 jobs" in out
    commands = [ln for ln in out.splitlines() if ln.startswith("command: ")]
    assert len(commands) == 2
    assert "--dependency" not in commands[0]
    assert "--dependency=afterany:<ids of stage single>" in commands[1].replace("'", "")
    ledger = [json.loads(x) for x in (tmp_path / "camp" / "ledger.jsonl").read_text().splitlines()]
    assert [r["jobs"] for r in ledger] == [4, 4] and ledger[1]["after"]


def test_condor_submits_the_first_stage_and_says_when_to_submit_the_next(tmp_path, capsys):
    _plan(tmp_path)
    code, out, err = cli(capsys, "submit", tmp_path / "camp", "--site", "condor", "--dry-run")
    assert code == 0, err
    assert "would submit 4 jobs" in out and out.count("would submit") == 1
    assert "stage 'grouped' (4 jobs) was not submitted" in out
    assert "submit again once 'gridsearch status' shows them done" in out


def test_backend_without_dependencies_refuses_after(tmp_path):
    from gridsearch.backends.condor import CondorBackend

    with pytest.raises(GridsearchError, match="cannot hold jobs until others ended"):
        CondorBackend().submit([], {}, tmp_path / "s", dry_run=True, after=["123"])


def test_submit_report_of_unstaged_campaign_is_one_part(tmp_path):
    text = STAGED.split("stages:")[0] + "grid: {model.latent: [2, 3]}\n"
    _, camp = _plan(tmp_path, text)
    report = submit(camp, "slurm", dry_run=True)
    assert len(report.parts) == 1 and report.parts[0].stage is None
    assert len(report.selected) == 2


def test_watch_ends_when_only_unsubmitted_jobs_wait(tmp_path):
    import io

    from gridsearch.watch import watch

    _, camp = _plan(tmp_path)
    naps: list[float] = []
    statuses = watch(
        camp, interval=1, query=False, lost_after_s=600, out=io.StringIO(), sleep=naps.append,
        max_refreshes=5,
    )  # fmt: skip
    assert naps == []  # ended at the first refresh: nothing moves by itself
    assert {js.state for js in statuses} == {JobState.PLANNED, JobState.WAITING}


def test_promote_ranks_each_stage_on_its_own(tmp_path):
    from fractions import Fraction

    from gridsearch.halving.promote import choose

    _, camp = _plan(tmp_path)
    for k, js in enumerate(campaign_status(camp, query=False)):
        _set_state(js.dir, "done", finished="2026-11-26T01:00:00+00:00")
        (js.dir / "metrics.json").write_text(json.dumps({"best_val_loss": 0.1 * (k + 1)}))
    statuses = campaign_status(camp, query=False, metrics=True)
    chosen, ranked, _ = choose(statuses, Fraction(1, 4), "best_val_loss", None)
    # one of four per stage (the lowest loss of each), not the two lowest of stage 1
    assert ranked == 8
    assert sorted((p.js.stage, p.value) for p in chosen) == [
        ("grouped", pytest.approx(0.5)),
        ("single", pytest.approx(0.1)),
    ]
