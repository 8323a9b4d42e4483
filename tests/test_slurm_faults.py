"""Faults on a real one-node Slurm cluster, and the one command that recovers from them.

One campaign of six small trainings is submitted with a one-minute walltime (the walltime
warning comes about 20 s after a task starts), and then, as tasks start, it suffers what a
cluster does to jobs: ``kill -9`` of the job's python (the OOM killer), ``scontrol
requeue`` (preemption; Slurm requeues on node failure the same way), ``scancel`` of a
running task, a native crash (SIGSEGV), the walltime, ``scancel`` of a pending task, and a
second task started on a job dir that is running. Status must name each fault, and plain
``gridsearch resubmit DIR --site ...`` (repeated while faults recur, never with
--only/--force) must bring every job to done, with no job dir trained by two processes at
once.

Run with ``-s`` to see the status table after each step (the fault scenarios in the docs
come from it). The scenario runs once in a module fixture; its waits end on progress, not
on a clock (cluster.wait_for), and a step that fails fails ``test_scenario_completes``
alone (the tests of what it did not get to are skipped).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm.cluster import Scenario, slowdown, wait_for

from gridsearch.campaign import open_campaign

REPO = Path(__file__).resolve().parent.parent

# The timeout only guards against a hang: the waits fail by themselves when nothing moves.
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(3600)]

HEARTBEAT_S = 1
# The campaign grows in three plans (as a user adds points): the busy job first, then the
# walltime job (submitted alone with --time 1), then the rest (submitted with the profile's
# hour). Index: fault; epochs at ~0.1-0.2 s each: the requeued job (25) ends by itself
# after its requeue; the walltime job (800) is still training when the warning comes. The
# warning is due 10 s after the start (signal 50 s before the one-minute limit), but
# slurmctld checks time limits only every 30 s, so it may come as late as ~40 s (150 and
# then 500 epochs once finished before it).
BUSY, WALLTIME, KILL9, REQUEUE, SCANCEL_RUNNING, CRASH, CANCEL_PENDING = range(7)
# The jobs hit while training (kill -9, scancel, SIGSEGV) train for 15-30 s, so that each is
# still training when the faults before it have been seen, even on a faster machine.
EPOCHS = [200, 800, 150, 25, 150, 150, 10]
SIGNAL_BEFORE_S = 50
# Seconds per epoch of these jobs on an idle machine: the runtime check scales by what the
# jobs measured against it.
IDLE_EPOCH_S = 0.15
BASE = {
    "data": {"source": "bundled:dijet_4d", "max_jets": None},
    "model": {"encoder": [8]},
    "train": {"batch_size": 1024},
    "evaluate": {"plots": False},
}


def space(n: int) -> dict:
    """The first ``n`` points (seeds keep the ids apart)."""
    return {
        "name": "faults",
        "base": BASE,
        "zip": {"seed": list(range(n)), "train.epochs": EPOCHS[:n]},
    }


def _env() -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        HEPAE_HEARTBEAT_S=str(HEARTBEAT_S),
    )


def gridsearch(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "gridsearch", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,  # a guard against a hang only: Python starts slowly on a loaded machine
        env=_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def status(camp: Path) -> list[dict]:
    return json.loads(gridsearch("status", camp, "--json", "--lines", "0").stdout)["jobs"]


def state_json(job: dict) -> dict:
    try:
        return json.loads((Path(job["dir"]) / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def training(job: dict, epoch: int = 2) -> bool:
    """The job is training (at ``epoch`` or later); fails at once when it has already
    ended, since the fault meant for it can then never be applied."""
    st = state_json(job)
    assert st.get("state") not in ("done", "failed"), f"job {job['index']} ended first: {st}"
    return st.get("state") == "running" and int(st.get("epoch") or 0) >= epoch


def slurm_job(task: str) -> dict[str, str]:
    proc = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", task], capture_output=True, text=True
    )
    return dict(re.findall(r"(\w+)=(\S*)", proc.stdout))


@pytest.fixture(scope="module")
def faults(slurm, tmp_path_factory):
    obs = Scenario("faults")
    with obs.steps():
        _play(obs, tmp_path_factory)
    return obs


def _play(obs: Scenario, tmp_path_factory) -> None:
    tmp = tmp_path_factory.mktemp("faults")
    sites_dir = tmp / "sites"
    sites_dir.mkdir()
    (sites_dir / "test-slurm.yaml").write_text(
        yaml.safe_dump(
            {
                "extends": "slurm",
                "python": sys.executable,
                "env": {
                    "variables": {"PYTHONPATH": str(REPO), "HEPAE_HEARTBEAT_S": str(HEARTBEAT_S)}
                },
                # an hour: the resumed walltime job (800 epochs) must end in one round even
                # when a loaded machine trains ten times slower than an idle one
                "request": {"time": "1:00:00", "signal_before_s": SIGNAL_BEFORE_S},
            }
        )
    )
    site = ["--site", "test-slurm", "--sites-dir", sites_dir]
    camp = tmp / "camp"
    obs["camp"] = camp
    tables: list[tuple[str, str]] = []
    resubmits: list[dict] = []

    def plan(n: int) -> None:
        path = tmp / f"space-{n}.yaml"
        path.write_text(yaml.safe_dump(space(n)))
        gridsearch("plan", path, "-o", camp)

    def table(label: str) -> None:
        text = gridsearch("status", camp).stdout
        tables.append((label, text))
        print(f"\n--- {label}\n{text}")

    def last_submission() -> Path:
        return camp / open_campaign(camp).submissions()[-1]["dir"]

    t0 = time.monotonic()
    # A second task on a running job dir: the job-dir lock turns it away (exit 73).
    plan(1)
    gridsearch("submit", camp, *site)
    jobs = status(camp)
    wait_for("the busy job training", lambda: training(jobs[BUSY]), dirs=[camp], every=0.3)
    sub = last_submission()
    dup = subprocess.run(
        # first in line for the next free slot of the shared cluster
        [
            "sbatch",
            "--parsable",
            "--priority=TOP",
            "--array=0",
            f"--chdir={sub}",
            str(sub / "job.sh"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    obs["busy"] = wait_for(
        "the second task to end",
        lambda: (
            (s := slurm_job(f"{dup}_0")).get("JobState") not in (None, "PENDING", "RUNNING") and s
        ),
        dirs=[camp],
        every=0.3,
    )
    obs["busy_attempt"] = state_json(jobs[BUSY]).get("attempt")
    # it overlapped the first task when that one was still running as it ended
    obs["busy_overlapped"] = state_json(jobs[BUSY]).get("state") == "running"

    # The walltime: one minute, the warning (USR1) comes 10 to 40 s after the start.
    plan(2)
    gridsearch("submit", camp, *site, "--time", "1")

    # The rest, with the profile's time.
    plan(7)
    gridsearch("submit", camp, *site)
    jobs = status(camp)
    task = {j["index"]: j["task_id"] for j in jobs}

    # scancel of a pending task: Slurm drops it from the array without a trace
    subprocess.run(["scancel", task[CANCEL_PENDING]], check=True)
    obs["cancel_pending"] = wait_for(
        "the pending cancel to show",
        lambda: (j := status(camp)[CANCEL_PENDING])["state"] == "cancelled" and j,
        dirs=[camp],
    )

    # kill -9 of the running job's python: lost as soon as Slurm has ended the task
    wait_for("the job to kill training", lambda: training(jobs[KILL9]), dirs=[camp], every=0.3)
    os.kill(state_json(jobs[KILL9])["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    obs["kill9"] = wait_for(
        "the killed job to show lost",
        lambda: (j := status(camp)[KILL9])["state"] == "lost" and j,
        dirs=[camp],
        every=0.5,
    )
    obs["kill9_seconds"] = time.monotonic() - killed_at

    # scontrol requeue: Slurm holds the task PENDING (BeginTime) and will run it again
    wait_for("the job to requeue training", lambda: training(jobs[REQUEUE]), dirs=[camp], every=0.3)
    subprocess.run(["scontrol", "requeue", task[REQUEUE]], check=True)
    obs["requeue"] = wait_for(
        "the requeued job to show queued",
        lambda: (
            (j := status(camp)[REQUEUE])["state"] == "queued" and "requeued" in j["reason"] and j
        ),
        dirs=[camp],
        every=0.5,
    )

    # scancel of a running task (it checkpoints on SIGTERM)
    wait_for(
        "the job to cancel training",
        lambda: training(jobs[SCANCEL_RUNNING]),
        dirs=[camp],
        every=0.3,
    )
    subprocess.run(["scancel", task[SCANCEL_RUNNING]], check=True)

    # a native crash of the job's python
    wait_for("the job to crash training", lambda: training(jobs[CRASH]), dirs=[camp], every=0.3)
    os.kill(state_json(jobs[CRASH])["pid"], signal.SIGSEGV)

    # round 1 is over when Slurm runs nothing of ours (the requeued task waits for BeginTime)
    wait_for(
        "round 1 to settle",
        lambda: all(
            j["state"] != "running" and (j["state"] != "queued" or j["index"] == REQUEUE)
            for j in status(camp)
        ),
        dirs=[camp],
        every=1,
    )
    obs["round1"] = {j["index"]: j for j in status(camp)}
    table("after the faults")

    # Recovery: plain resubmit, repeated while a fault recurs (here: the walltime).
    for round_ in range(1, 5):
        jobs_now = status(camp)
        if all(j["state"] == "done" for j in jobs_now):
            break
        held = {j["id"] for j in jobs_now if j["state"] in ("queued", "running")}
        before = len(open_campaign(camp).submissions())
        out = gridsearch("resubmit", camp, *site).stdout
        tasks = {}
        for rec in open_campaign(camp).submissions()[before:]:
            assert rec["outcome"] == "submitted", rec
            tasks.update(rec.get("tasks") or {})
        resubmits.append({"out": out, "jobs": set(tasks.values()), "held": held})
        if round_ == 1:
            # the requeue delay would pass by itself in a few minutes: let it pass now
            subprocess.run(
                ["scontrol", "update", f"JobId={task[REQUEUE]}", "StartTime=now"], check=False
            )
        wait_for(
            "the resubmitted jobs to end",
            lambda: all(j["state"] not in ("queued", "running") for j in status(camp)),
            dirs=[camp],
            every=2,
        )
        table(f"after resubmit round {round_}")
    obs["resubmits"], obs["tables"] = resubmits, tables
    obs["final"] = status(camp)
    obs["seconds"] = time.monotonic() - t0
    obs["slowdown"] = slowdown([Path(j["dir"]) for j in obs["final"]], IDLE_EPOCH_S)
    print(
        f"\nfault campaign: {obs['seconds']:.0f} s (training {obs['slowdown']:.1f}x idle); "
        f"kill -9 shown lost after {obs['kill9_seconds']:.1f} s"
    )


def test_scenario_completes(faults):
    faults.check_completed()


def test_kill9_is_lost_at_once_with_last_heartbeat_and_slurms_word(faults):
    job = faults["kill9"]
    # a few seconds on an idle machine: Slurm ends the task, status reads it at once
    assert faults["kill9_seconds"] < 30 * faults.get("slowdown", 1.0)
    assert job["reason"].startswith("last heartbeat "), job
    assert "Slurm: failed (exit 137: killed by signal 9)" in job["reason"], job
    assert job["reason"].count("137") == 1


def test_requeue_is_queued_and_not_resubmitted(faults):
    assert faults["requeue"]["reason"].startswith("requeued by Slurm (preempted/node failure)")
    first = faults["resubmits"][0]
    requeued_id = faults["requeue"]["id"]
    assert requeued_id in first["held"] and requeued_id not in first["jobs"]
    # it finished by itself: no resubmission ever named it
    assert all(requeued_id not in r["jobs"] for r in faults["resubmits"])
    final = next(j for j in faults["final"] if j["id"] == requeued_id)
    assert final["state"] == "done"
    st = json.loads((Path(final["dir"]) / "state.json").read_text())
    assert st["attempt"] == 2
    assert "received SIGTERM" in (Path(final["dir"]) / "job.log").read_text()


def test_cancel_while_pending_is_cancelled_and_rerun(faults):
    job = faults["cancel_pending"]
    assert "cancelled while pending" in job["reason"]
    assert job["id"] in faults["resubmits"][0]["jobs"]


def test_round1_names_every_fault(faults):
    r1 = faults["round1"]
    assert r1[KILL9]["state"] == "lost"
    assert r1[REQUEUE]["state"] == "queued"
    assert r1[SCANCEL_RUNNING]["state"] in ("interrupted", "lost")  # checkpointed on SIGTERM
    assert r1[CRASH]["state"] == "lost" and "signal 11" in r1[CRASH]["reason"], r1[CRASH]
    assert r1[WALLTIME]["state"] == "interrupted"
    assert r1[CANCEL_PENDING]["state"] == "cancelled"


def test_second_task_on_a_running_dir_is_refused_by_the_lock(faults):
    if not faults["busy_overlapped"]:
        pytest.skip("the shared cluster had no free slot while the first task ran")
    busy = faults["busy"]
    assert busy["ExitCode"].startswith("73:"), busy
    job = faults["round1"][BUSY]
    log = (Path(job["dir"]) / "job.log").read_text()
    assert "is running this job; this one exits without touching its files" in log
    assert faults["busy_attempt"] == 1  # the second task started no attempt
    # the first task went on undisturbed and finished by itself
    final = faults["final"][BUSY]
    assert final["state"] == "done" and final["attempt"] == 1


def test_one_resubmit_recovers_everything(faults):
    final = faults["final"]
    assert [j["state"] for j in final] == ["done"] * 7, [(j["state"], j["reason"]) for j in final]
    first = faults["resubmits"][0]
    # one compact array of exactly the jobs that ended unfinished
    r1 = faults["round1"]
    expected = {r1[i]["id"] for i in (KILL9, SCANCEL_RUNNING, CRASH, WALLTIME, CANCEL_PENDING)}
    assert first["jobs"] == expected
    first_rec = open_campaign(faults["camp"]).submissions()[3]  # busy, walltime, rest, resubmit
    assert set(first_rec["tasks"].values()) == expected
    script = (faults["camp"] / first_rec["dir"] / "job.sh").read_text()
    assert "#SBATCH --array=1-2,4-6\n" in script  # campaign indices, one array
    # never more rounds than the faults that recur need
    assert len(faults["resubmits"]) <= 2


def test_no_job_dir_trained_by_two_processes(faults):
    for job in faults["final"]:
        d = Path(job["dir"])
        history = (d / "history.csv").read_text().splitlines()[1:]
        epochs = [int(line.split(",")[0]) for line in history]
        st = json.loads((d / "state.json").read_text())
        assert epochs == list(range(1, st["epochs"] + 1)), (job["name"], epochs)
        # every start of the job in job.log is one attempt, but those the lock turned away
        log = (d / "job.log").read_text()
        starts = len(re.findall(r"^=== gridsearch: \S+ task ", log, re.M))
        busy = log.count("this one exits without touching its files")
        idle = log.count("already done; nothing to do")
        assert st["attempt"] == starts - busy - idle, (job["name"], st["attempt"], starts, busy)


def test_fault_campaign_time(faults):
    # ~4 min on an idle 2-core machine; the limit grows with how much slower than idle the
    # jobs trained during the run (their own epoch times)
    assert faults["seconds"] < 420 * faults["slowdown"]
