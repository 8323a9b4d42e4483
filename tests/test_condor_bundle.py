"""Bundles on HTCondor (``--bundle K``): one proc per bundle, ``queue index from bundles.txt``.

Every rendered submit description is read by HTCondor's own parser (the htcondor wheel).
No HTCondor pool (schedd, startd) can run on the test machines: the submit/status path
runs against the stand-ins in tests/fake_condor/ (which also parse the description with
the wheel), and a bundle proc is run by hand as HTCondor would start it (the arguments of
``job.sub``, in its ``initialdir``), with real trainings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest_gs import THREE_LR_SPACE, cli, write
from test_condor import PATH_NAMES, fake_condor, make_jobs  # noqa: F401 (fixture)

from gridsearch import sites
from gridsearch.backends.base import JobRef
from gridsearch.backends.condor import CondorBackend, parse_submit
from gridsearch.campaign import open_campaign
from gridsearch.errors import GridsearchError
from gridsearch.status import campaign_status
from hepae_core.states import JobState

htcondor2 = pytest.importorskip("htcondor2", reason="the htcondor wheel parses submit files")

REPO = Path(__file__).resolve().parents[1]

SPACE = THREE_LR_SPACE.replace("name: bun", "name: cbun")


def _submit(jobs, site, directory, **overrides):
    return CondorBackend().submit(jobs, sites.load_profile(site), directory, True, overrides)


def _plan(tmp_path: Path) -> Path:
    from gridsearch.plan import plan

    camp = tmp_path / "camp"
    plan(write(tmp_path / "space.yaml", SPACE), camp)
    return camp


@pytest.mark.parametrize("name", [*PATH_NAMES, "dollar $(Cluster) and $ENV(HOME)"])
@pytest.mark.parametrize("site", ["condor", "lxplus"])
def test_one_proc_per_bundle_read_by_htcondor(name, site, tmp_path):
    jobs = make_jobs(tmp_path / name, 5)
    sub = _submit(jobs, site, tmp_path / "submit" / "s", bundle=2, time="30m")
    text = (sub.directory / "job.sub").read_text()
    # HTCondor's parser: 3 procs (5 jobs in bundles of 2), each one task index
    items = parse_submit(text, sub.directory)
    assert items == [{"index": "0"}, {"index": "1"}, {"index": "2"}]
    s = htcondor2.Submit(text)
    assert s["executable"] == str(sub.directory / "job.sh")
    assert s["arguments"] == "$(index) $(ClusterId).$(ProcId)"
    assert s["initialdir"] == str(sub.directory)
    assert s["output"] == "logs/bundle-$(index).out"
    assert s["MY.MaxRuntime"] == str(2 * 30 * 60)  # K x the per-job time
    # no job dir reaches the submit description, whatever its path holds
    assert str(jobs[0].dir) not in text
    assert (sub.directory / "logs").is_dir()  # condor_submit needs the output's folder
    listed = (sub.directory / "jobs.txt").read_text().splitlines()
    assert [ln.split(" ", 1)[0] for ln in listed] == ["0", "0", "1", "1", "2"]
    assert sorted(ln.split(" ", 1)[1] for ln in listed) == sorted(str(j.dir) for j in jobs)
    script = (sub.directory / "job.sh").read_text()
    assert '-m hepae_core.bundle "${JOB_DIRS[@]}" &' in script
    subprocess.run(["bash", "-n", str(sub.directory / "job.sh")], check=True)


def test_a_macro_in_a_job_dir_is_still_refused_without_bundles(tmp_path):
    jobs = make_jobs(tmp_path / "x $(Cluster)", 2)
    with pytest.raises(GridsearchError, match="macros"):
        _submit(jobs, "condor", tmp_path / "s")


@pytest.mark.parametrize(
    ("time", "k", "runtime_s", "flavour"),
    [
        # worked out by hand from sites/lxplus.yaml: espresso 20m, microcentury 1h,
        # longlunch 2h, workday 8h, tomorrow 1d, testmatch 3d, nextweek 1w
        ("20m", 1, 1200, "espresso"),
        ("20m", 3, 3600, "microcentury"),  # exactly 1 h
        ("20m", 4, 4800, "longlunch"),  # 80 min
        ("2h", 4, 28800, "workday"),
        ("2h", 5, 36000, "tomorrow"),
        ("1d", 7, 604800, "nextweek"),
    ],
)
def test_lxplus_flavour_fits_the_bundle(time, k, runtime_s, flavour, tmp_path):
    jobs = make_jobs(tmp_path, k)
    sub = _submit(jobs, "lxplus", tmp_path / "s", bundle=k, time=time)
    s = htcondor2.Submit((sub.directory / "job.sub").read_text())
    assert s["MY.MaxRuntime"] == str(runtime_s)
    assert s["MY.JobFlavour"] == f'"{flavour}"'
    assert len(parse_submit(str(s), sub.directory)) == 1  # one proc for the K jobs


def test_too_long_for_the_longest_flavour_names_the_largest_k(tmp_path):
    jobs = make_jobs(tmp_path, 10)
    with pytest.raises(GridsearchError) as err:
        _submit(jobs, "lxplus", tmp_path / "s", bundle=9, time="1d")
    msg = str(err.value)
    # 9 x 1 d = 9 d > nextweek (7 d): 7 is the largest K that fits
    assert "9 x 1-00:00:00" in msg and "--bundle 7" in msg, msg
    assert not (tmp_path / "s").exists()
    # a site without flavours: its max_time decides (4 x 30 min = the 2 h limit, 5 x: over)
    profile = sites.load_profile("condor")
    profile["limits"] = {**(profile.get("limits") or {}), "max_time": "2h"}
    with pytest.raises(GridsearchError, match="--bundle 4"):
        CondorBackend().submit(jobs, profile, tmp_path / "t", True, {"bundle": 8, "time": "30m"})


def test_bundles_count_as_procs_against_max_jobs_per_submission(tmp_path):
    profile = sites.load_profile("condor")
    profile["limits"] = {**(profile.get("limits") or {}), "max_jobs_per_submission": 3}
    jobs = make_jobs(tmp_path, 9)
    with pytest.raises(GridsearchError, match="max_jobs_per_submission"):
        CondorBackend().submit(jobs, profile, tmp_path / "s", True, {})
    sub = CondorBackend().submit(jobs, profile, tmp_path / "t", True, {"bundle": 3})
    assert len(parse_submit((sub.directory / "job.sub").read_text(), sub.directory)) == 3


def test_submit_ledger_status_and_adopt_with_standins(fake_condor, tmp_path, capsys):  # noqa: F811
    camp = _plan(tmp_path)
    campaign = open_campaign(camp)
    ids = sorted(js.id for js in campaign_status(campaign, query=False))
    code, out, err = cli(capsys, "submit", camp, "--site", "lxplus", "--bundle", "2")
    assert code == 0, out + err
    assert "bundles of 2: 3 jobs in 2 tasks" in out
    intent, outcome = [json.loads(ln) for ln in (camp / "ledger.jsonl").read_text().splitlines()]
    assert intent["bundle"] == 2
    tasks = outcome["tasks"]
    assert sorted(tasks) == ["4711.0", "4711.1"]
    assert sorted(len(v) for v in tasks.values()) == [1, 2]
    assert sorted(j for v in tasks.values() for j in v) == ids
    # each proc runs (arguments from job.sub's items) the index whose jobs the ledger names
    queue = json.loads((Path(os.environ["FAKE_CONDOR_DIR"]) / "queue.json").read_text())
    sub = camp / outcome["dir"]
    listed: dict[str, list[str]] = {}
    for line in (sub / "jobs.txt").read_text().splitlines():
        index, _, job_dir = line.partition(" ")
        listed.setdefault(index, []).append(Path(job_dir).name)
    for ad in queue:
        index = ad["Args"].split()[0]
        assert tasks[f"{ad['ClusterId']}.{ad['ProcId']}"] == listed[index]
    # status: every member names its proc; the pool's word reaches all of a bundle's members
    by_task = {j: t for t, v in tasks.items() for j in v}
    fake_condor.move("4711.0", 2, NumJobStarts=1)
    after = {js.id: js for js in campaign_status(campaign)}
    for job_id, js in after.items():
        assert js.task_id == by_task[job_id]
        want = JobState.RUNNING if by_task[job_id] == "4711.0" else JobState.QUEUED
        assert js.state == want, (js.id, js.state, js.reason)
    # adopt (an intent whose printed cluster id was not recorded) maps procs to bundles
    record = {"submission": "s", "indices": intent["indices"], "chunks": intent["chunks"]}
    assert CondorBackend().adopt_tasks(record, ["4711"]) == tasks


def test_run_a_bundle_proc_as_htcondor_would(tmp_path, capsys):
    """No startd here: job.sh is run with the arguments and in the initialdir of job.sub."""
    camp = _plan(tmp_path)
    sites_dir = tmp_path / "sites"
    write(
        sites_dir / "here.yaml",
        f"extends: condor\npython: {sys.executable}\n"
        f"env: {{variables: {{PYTHONPATH: {json.dumps(str(REPO))}}}}}\n",
    )
    code, _, err = cli(
        capsys, "submit", camp, "--site", "here", "--sites-dir", sites_dir, "--bundle", "2",
        "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    sub = next((camp / "submit").iterdir())
    s = htcondor2.Submit((sub / "job.sub").read_text())
    items = parse_submit(str(s), sub)
    lines = (sub / "jobs.txt").read_text().splitlines()
    members = [Path(ln.split(" ", 1)[1]) for ln in lines if ln.startswith("0 ")]
    assert len(members) == 2
    proc = 0
    args = s["arguments"].replace("$(index)", items[proc]["index"])
    args = args.replace("$(ClusterId)", "4242").replace("$(ProcId)", str(proc))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "HEPAE_"))}
    run = subprocess.run(
        [s["executable"], *args.split()], cwd=s["initialdir"], env=env, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    for d in members:
        st = json.loads((d / "state.json").read_text())
        assert st["state"] == "done" and st["scheduler_job_id"] == "4242.0"
        assert f"[{d.name}] done" in (d / "job.log").read_text()
    others = [Path(ln.split(" ", 1)[1]) for ln in lines if not ln.startswith("0 ")]
    assert others and not any((d / "state.json").exists() for d in others)
    assert "bundle exited with 0" in (sub / "logs" / "bundle-0.log").read_text()


def test_bundle_task_indices_are_compact_whatever_the_campaign_indices(tmp_path):
    jobs = [JobRef(j.id, j.dir, 10 + 5 * n) for n, j in enumerate(make_jobs(tmp_path, 4))]
    sub = _submit(jobs, "condor", tmp_path / "s", bundle=3)
    assert (sub.directory / "bundles.txt").read_text() == "0\n1\n"
