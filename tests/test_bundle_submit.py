"""``gridsearch submit --bundle K``: K job dirs per task through ``python -m hepae_core.bundle``.

Real trainings (tiny: 3000 jets, 2 epochs) on the local backend and through a rendered
Slurm script run by hand (as sbatch would run it: the array task's variables set); the
real one-node Slurm cluster is in tests/test_slurm_bundle.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest_gs import THREE_LR_SPACE, cli, write

from gridsearch import bundles, sites
from gridsearch.backends.base import JobRef, Order
from gridsearch.backends.condor import CondorBackend
from gridsearch.backends.slurm import SlurmBackend
from gridsearch.campaign import open_campaign
from gridsearch.errors import GridsearchError
from gridsearch.status import campaign_status
from hepae_core.states import JobState

REPO = Path(__file__).resolve().parents[1]

SPACE = THREE_LR_SPACE


def _plan(tmp_path: Path, space: str = SPACE) -> Path:
    from gridsearch.plan import plan

    camp = tmp_path / "camp"
    plan(write(tmp_path / "space.yaml", space), camp)
    return camp


def _ledger(camp: Path) -> list[dict]:
    return [json.loads(line) for line in (camp / "ledger.jsonl").read_text().splitlines()]


def _set_source(job_dir: Path, source: str) -> None:
    cfg = yaml.safe_load((job_dir / "config.yaml").read_text())
    cfg["data"]["source"] = source
    (job_dir / "config.yaml").write_text(yaml.safe_dump(cfg))


# ------------------------------------------------------------------ choosing and grouping


@pytest.mark.parametrize(
    "wanted, cpus, gpus, n, default, k",
    [
        (None, 4, 0, 100, None, 1),  # no bundle unless asked
        (3, 1, 0, 100, None, 3),
        ("3", 1, 0, 100, None, 3),
        (None, 1, 0, 100, 5, 5),  # the profile's default
        (2, 1, 0, 100, 5, 2),  # the command line wins
        ("auto", 1, 0, 100, None, 4),  # 4 x cpus, at least 4
        ("auto", 2, 0, 100, None, 8),
        ("auto", 8, 0, 100, None, 16),  # at most 16 on CPU
        ("auto", 1, 1, 100, None, 64),  # a GPU task
        ("auto", 8, 0, 5, None, 5),  # never more than the jobs
        (10, 1, 0, 3, None, 3),
    ],
)
def test_choose_size(wanted, cpus, gpus, n, default, k):
    assert bundles.choose_size(wanted, cpus, gpus, n, default) == k


@pytest.mark.parametrize("bad", [0, -1, "0", "many", 1.5, True])
def test_bad_bundle_is_refused(bad):
    with pytest.raises(GridsearchError, match="--bundle"):
        bundles.parse_bundle(bad)


def test_same_shape_jobs_share_a_bundle(tmp_path):
    jobs = []
    for i, width in enumerate([8, 16, 8, 16, 8]):
        d = tmp_path / f"j{i}"
        d.mkdir()
        cfg = {"model": {"encoder": [width]}, "train": {"batch_size": 256}}
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        jobs.append(JobRef(f"j{i}", d, i))
    pairs = bundles.make_bundles(jobs, 2)
    by_task: dict[int, list[str]] = {}
    for index, ref in pairs:
        by_task.setdefault(index, []).append(ref.id)
    # one shape per bundle (widths 16: j1 j3; widths 8: j0 j2, then j4), stable within
    # a shape, bundle indices compact from 0
    assert by_task == {0: ["j1", "j3"], 1: ["j0", "j2"], 2: ["j4"]}


def test_walltime_over_the_limit_names_the_bundle_that_fits(tmp_path):
    profile = sites.load_profile("slurm")
    profile["limits"] = {**profile["limits"], "max_time": "02:00:00"}
    jobs = [JobRef(f"j{i}", tmp_path / f"j{i}", i) for i in range(8)]
    for j in jobs:
        j.dir.mkdir()
    with pytest.raises(GridsearchError) as err:
        SlurmBackend()._prepare(
            Order(jobs, profile, tmp_path / "sub", {"time": "30m", "bundle": 8})
        )
    msg = str(err.value)
    assert "8 x 00:30:00" in msg and "--bundle 4" in msg  # 4 x 30 min = the 2 h limit
    prepared = SlurmBackend()._prepare(
        Order(jobs, profile, tmp_path / "sub", {"time": "30m", "bundle": 4})
    )
    assert prepared.request["time"] == "02:00:00"
    assert "#SBATCH --time=02:00:00" in prepared.files["job.sh"][0]


def test_condor_renders_bundles(tmp_path):
    # HTCondor bundles are tested in tests/test_condor_bundle.py; the choice of K is shared
    profile = sites.load_profile("condor")
    jobs = [JobRef(f"j{i}", tmp_path / f"j{i}", i) for i in range(3)]
    for j in jobs:
        j.dir.mkdir()
    prepared = CondorBackend()._prepare(Order(jobs, profile, tmp_path / "sub", {"bundle": 2}))
    assert prepared.indices() == {"0": ["j0", "j1"], "1": ["j2"]}
    assert prepared.request["bundle"] == 2


# ------------------------------------------------------------------ local, end to end


def test_local_bundle_of_2_end_to_end_and_a_failed_member_rerun_alone(tmp_path, capsys):
    camp = _plan(tmp_path)
    campaign = open_campaign(camp)
    jobs = {js.name: js for js in campaign_status(campaign, query=False)}
    assert len(jobs) == 3
    broken = jobs["lr1e-02"]
    _set_source(broken.dir, str(tmp_path / "missing.root"))  # bad input for this member only

    code, out, err = cli(
        capsys, "submit", camp, "--site", "local", "--bundle", "2", "--workers", "1"
    )
    assert code == 1, out + err
    assert "local run ended: 1 failed, 2 done" in out
    intent, outcome = _ledger(camp)[-2:]
    assert intent["bundle"] == 2
    tasks = outcome["tasks"]
    assert sorted(len(v) for v in tasks.values()) == [1, 2]  # 3 jobs in 2 tasks
    assert sorted(j for v in tasks.values() for j in v) == sorted(js.id for js in jobs.values())

    after = {js.name: js for js in campaign_status(campaign, query=False)}
    assert after["lr1e-02"].state == JobState.FAILED
    assert after["lr1e-02"].error_kind == "bad_input"
    assert after["lr1e-03"].state == after["lr3e-03"].state == JobState.DONE
    for name in ("lr1e-03", "lr3e-03"):
        js = after[name]
        assert (js.dir / "metrics.json").is_file() and (js.dir / "final.pt").is_file()
        log = (js.dir / "job.log").read_text()
        assert f"[{js.id}] done" in log  # its own lines were copied into its job.log
        others = [j.id for j in after.values() if j.id != js.id]
        assert not any(f"[{o}]" in log for o in others)  # and nobody else's
    # every member names its task (bundled members share one)
    assert all(js.task_id for js in after.values())

    # Fix the input; a resubmit takes the failed job alone, never its finished neighbours.
    _set_source(broken.dir, "bundled:dijet_4d")
    done_before = {n: (after[n].dir / "state.json").read_bytes() for n in ("lr1e-03", "lr3e-03")}
    code, out, err = cli(
        capsys, "resubmit", camp, "--site", "local", "--bundle", "2", "--workers", "1"
    )
    assert code == 0, out + err
    assert "1 jobs" in out
    outcome = _ledger(camp)[-1]
    assert list(outcome["tasks"].values()) == [broken.id]  # alone: one job is no bundle
    final = {js.name: js for js in campaign_status(campaign, query=False)}
    assert all(js.state == JobState.DONE for js in final.values())
    for n, text in done_before.items():
        assert (final[n].dir / "state.json").read_bytes() == text  # not touched


# ------------------------------------------------------------------ Slurm script, by hand


def test_slurm_bundle_render_and_run_a_task_as_sbatch_would(tmp_path, capsys):
    camp = _plan(tmp_path)
    code, out, err = cli(
        capsys, "submit", camp, "--site", "slurm", "--bundle", "2", "--time", "20m", "--dry-run"
    )
    assert code == 0, err
    assert "bundles of 2: 3 jobs in 2 tasks" in out
    sub = next((camp / "submit").iterdir())
    script = (sub / "job.sh").read_text()
    assert "#SBATCH --array=0-1\n" in script
    assert "#SBATCH --time=00:40:00\n" in script  # 2 x the per-job 20 min
    assert '-m hepae_core.bundle "${JOB_DIRS[@]}" &' in script
    assert "-m hepae_core.job" not in script
    lines = (sub / "jobs.txt").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["0", "0", "1"]
    subprocess.run(["bash", "-n", str(sub / "job.sh")], check=True)

    # Run task 0 as Slurm would: both of its jobs are trained and done, the third untouched.
    env = dict(
        os.environ,
        SLURM_ARRAY_TASK_ID="0",
        SLURM_ARRAY_JOB_ID="4242",
        SLURM_CPUS_PER_TASK="1",
        PYTHONPATH=str(REPO),
    )
    proc = subprocess.run(
        ["bash", str(sub / "job.sh")], cwd=sub, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    members = [Path(ln.split(" ", 1)[1]) for ln in lines]
    for d in members[:2]:
        st = json.loads((d / "state.json").read_text())
        assert st["state"] == "done" and st["scheduler_job_id"] == "4242_0"
        assert f"[{d.name}] done" in (d / "job.log").read_text()
    assert not (members[2] / "state.json").exists()
    task_log = (sub / "logs" / "bundle-0.log").read_text()
    assert "bundle exited with 0" in task_log
    assert f"bundle: {members[0].name}: done" in task_log


def test_bundle_template_marks_every_member_on_a_bad_environment(tmp_path, capsys):
    camp = _plan(tmp_path)
    sites_dir = tmp_path / "sites"
    write(
        sites_dir / "nopy.yaml",
        "extends: slurm\npython: " + sys.executable + "\nmodule: no_such_module_here\n"
        "bundle_module: no_such_module_here\n",
    )
    code, _, err = cli(
        capsys, "submit", camp, "--site", "nopy", "--sites-dir", sites_dir, "--bundle", "3",
        "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    sub = next((camp / "submit").iterdir())
    env = dict(os.environ, SLURM_ARRAY_TASK_ID="0", SLURM_ARRAY_JOB_ID="7")
    proc = subprocess.run(
        ["bash", str(sub / "job.sh")], cwd=sub, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 78, proc.stdout + proc.stderr
    for line in (sub / "jobs.txt").read_text().splitlines():
        d = Path(line.split(" ", 1)[1])
        st = json.loads((d / "state.json").read_text())
        assert st["state"] == "failed" and st["error_kind"] == "bad_environment"


def test_adopt_maps_a_bundle_task_to_all_its_jobs():
    # an intent whose scheduler ids were printed but not recorded (docs/campaign.md)
    record = {
        "submission": "s",
        "indices": {"0": ["a", "b"], "1": ["c"]},
        "chunks": [{"offset": 0, "indices": [0, 1]}],
    }
    tasks = SlurmBackend().adopt_tasks(record, ["77"])
    assert tasks == {"77_0": ["a", "b"], "77_1": ["c"]}


def test_an_intended_bundle_keeps_every_member_out_of_planned(tmp_path):
    camp = _plan(tmp_path)
    campaign = open_campaign(camp)
    ids = [js.id for js in campaign_status(campaign, query=False)]
    campaign.record_intent(
        "s1", kind="slurm", site="slurm", dir="submit/s1", indices={"0": ids[:2], "1": ids[2:]}
    )
    assert set(campaign.intended_jobs()) == set(ids)
    states = {js.id: js.state for js in campaign_status(campaign, query=False)}
    assert set(states.values()) == {JobState.QUEUED}
