"""Real Slurm: a one-node cluster started by tests/slurm/start_cluster.sh runs tiny
trainings submitted through the Slurm backend as job arrays.

Everything is submitted first and waited for together (two cores run two tasks at a
time), so the whole module takes about a minute and a half on an idle machine. The
scenario runs once in a module fixture; waits end on progress, not on a clock
(cluster.wait_for), and a step that fails fails ``test_scenario_completes`` alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm.cluster import Scenario, slowdown, wait_for

from gridsearch import sites
from gridsearch.backends.base import JobRef
from gridsearch.backends.slurm import SlurmBackend, classify

REPO = Path(__file__).resolve().parent.parent

# The timeout only guards against a hang: the waits fail by themselves when nothing moves.
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(3600)]

TINY = {
    "data": {"source": "bundled:dijet_4d", "max_jets": 3000},
    "model": {"encoder": [8]},
    "train": {"epochs": 2},
    "evaluate": {"plots": False},
}
# The walltime warning is due 10 s after the start (1 min limit, signal 50 s before), but
# slurmctld checks time limits only every 30 s, so it may come as late as ~40 s. The long
# job must still be training then on a fast machine (about 0.1 s per epoch here, so
# 100 s), and short enough to finish when resumed.
LONG_EPOCHS = 1000
SIGNAL_BEFORE_S = 50
# The job to preempt: still training (15 s here) when the test has seen its second epoch.
PREEMPT_EPOCHS = 150
LONG = {
    "data": {"source": "bundled:dijet_4d", "max_jets": None},
    "model": {"encoder": [8]},
    "train": {"epochs": LONG_EPOCHS, "batch_size": 1024},
    "evaluate": {"plots": False},
}
# A campaign path no shell may misread: spaces, quotes, $() and backticks.
CAMPAIGN_NAME = "scan 'q' \"dq\" $(touch pwned) `touch pwned2`"
TERMINAL = {"done", "failed", "cancelled", "timeout", "oom", "node_fail", "preempted", "unknown"}
# Seconds per epoch of LONG on an idle machine: the runtime check scales by what the jobs
# measured against it.
IDLE_EPOCH_S = 0.1


def _merge(base: dict, **sections: dict) -> dict:
    out = json.loads(json.dumps(base))
    for k, v in sections.items():
        if isinstance(v, dict):
            out.setdefault(k, {}).update(v)
        else:
            out[k] = v
    return out


def make_campaign(root: Path, configs: list[tuple[str, dict]]) -> list[JobRef]:
    """Job dirs with config.yaml and a manifest.json as `gridsearch plan` writes them."""
    root.mkdir(parents=True)
    jobs, entries = [], []
    for index, (job_id, cfg) in enumerate(configs):
        d = root / "jobs" / job_id
        d.mkdir(parents=True)
        (d / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
        jobs.append(JobRef(job_id, d, index))  # the campaign index, as submit passes it
        entries.append(
            {
                "index": index,
                "id": job_id,
                "name": job_id,
                "params": {},
                "dir": f"jobs/{job_id}",
                "in_space": True,
            }
        )
    (root / "manifest.json").write_text(json.dumps({"name": "t", "jobs": entries}))
    return jobs


def test_profile(tmp_path_factory) -> dict:
    """A user profile extending the generic one: this interpreter, this checkout."""
    d = tmp_path_factory.mktemp("sites")
    (d / "test-slurm.yaml").write_text(
        yaml.safe_dump(
            {
                "extends": "slurm",
                "python": sys.executable,
                "env": {"variables": {"PYTHONPATH": str(REPO)}},
                "request": {"time": "1:00:00", "signal_before_s": SIGNAL_BEFORE_S},
            }
        )
    )
    return sites.load_profile("test-slurm", [d])


test_profile.__test__ = False  # a helper, not a test


def wait(backend: SlurmBackend, tasks: list[str], root: Path) -> dict:
    """The tasks' states once every one has ended (however long that takes while they
    make progress)."""

    def ended():
        states = backend.query(tasks)
        return all(s.state in TERMINAL for s in states.values()) and states

    return wait_for(f"tasks {tasks} to end", ended, dirs=[root], every=1.5)


def _epoch(job: JobRef) -> int:
    path = job.dir / "state.json"
    return int(json.loads(path.read_text()).get("epoch") or 0) if path.exists() else 0


def state_of(job: JobRef) -> dict:
    return json.loads((job.dir / "state.json").read_text())


@pytest.fixture(scope="module")
def run(slurm, tmp_path_factory):
    """Submit the campaign (walltime job alone first, then the rest), cancel one task,
    wait; then resubmit the failed and interrupted jobs as one compact array and wait."""
    obs = Scenario("job-array")
    with obs.steps():
        _play(obs, tmp_path_factory)
    return obs


def _play(obs: Scenario, tmp_path_factory) -> None:
    root = tmp_path_factory.mktemp("camp") / CAMPAIGN_NAME
    cuda = _merge(TINY, train={"device": "cuda"})  # bad input on a machine without a GPU
    jobs = make_campaign(
        root,
        [
            ("aaaa00000000", TINY),
            ("bbbb11111111", cuda),
            ("cccc22222222", _merge(TINY, seed=1)),
            ("dddd33333333", LONG),
            ("eeee44444444", _merge(TINY, train={"epochs": 500})),
            ("ffff55555555", _merge(LONG, train={"epochs": PREEMPT_EPOCHS})),
        ],
    )
    ok0, bad, ok1, long_job, cancel_me, preempt_me = jobs
    obs["root"] = root
    obs["jobs"] = dict(zip(("ok0", "bad", "ok1", "long", "cancel", "preempt"), jobs))
    profile = test_profile(tmp_path_factory)
    backend = SlurmBackend()
    t0 = time.monotonic()
    walltime = backend.submit(
        [long_job], profile, root / "submit" / "s-walltime", overrides={"time": 1}
    )
    obs["walltime"] = walltime
    first = backend.submit([ok0, bad, ok1, cancel_me], profile, root / "submit" / "s-first")
    obs["first"] = first
    # A pending array task that is cancelled leaves no record at all (Slurm just drops
    # it from the array), so cancel it once it runs, as a user would notice and do.
    cancel_task = next(t for t, j in first.tasks.items() if j == cancel_me.id)

    def cancel_task_running():
        state = backend.query([cancel_task])[cancel_task].state
        assert state in ("queued", "running"), f"the task to cancel ended first: {state}"
        return state == "running"

    wait_for("the task to cancel to start", cancel_task_running, dirs=[root], every=0.5)
    subprocess.run(["scancel", cancel_task], check=True)
    tasks = list(walltime.tasks) + list(first.tasks)
    obs["states"] = wait(backend, tasks, root)
    t1 = time.monotonic()
    obs["long_after_first"] = state_of(long_job)

    retry_jobs = [bad, long_job]  # what `--only failed,interrupted` selects
    # an hour: the resumed 1000 epochs take 2 min idle, 10 or more on a loaded machine
    retry = backend.submit(
        retry_jobs, profile, root / "submit" / "s-retry", overrides={"time": "60m"}
    )
    # Preemption: `scontrol requeue` sends SIGTERM (passed on: checkpoint, exit 75) and
    # queues the task again; started at once, it resumes to done.
    preempt = backend.submit([preempt_me], profile, root / "submit" / "s-preempt")
    obs["retry"], obs["preempt"] = retry, preempt
    ptask = next(iter(preempt.tasks))

    def preempt_training():
        state = state_of(preempt_me) if (preempt_me.dir / "state.json").exists() else {}
        assert state.get("state") != "done", "the job to preempt ended before its requeue"
        return _epoch(preempt_me) >= 2

    wait_for("the task to preempt to train", preempt_training, dirs=[root], every=0.3)
    subprocess.run(["scontrol", "requeue", ptask], check=True)

    def requeued():
        state = backend.query([ptask])[ptask]
        return state.state == "queued" and state

    obs["requeued"] = wait_for("the requeued task to show queued", requeued, every=0.3)
    subprocess.run(["scontrol", "update", f"JobId={ptask}", "StartTime=now"], check=False)
    obs["retry_states"] = wait(backend, [*retry.tasks, ptask], root)
    obs["seconds"] = (t1 - t0, time.monotonic() - t1)


def test_scenario_completes(run):
    run.check_completed()


def test_array_done_with_metrics(run):
    first = run["first"]
    assert len(first.scheduler_ids) == 1  # one array for the submission
    for name in ("ok0", "ok1"):
        job = run["jobs"][name]
        task = next(t for t, j in first.tasks.items() if j == job.id)
        assert run["states"][task].state == "done", run["states"][task]
        state = state_of(job)
        assert state["state"] == "done"
        assert state["scheduler_job_id"] == task  # HEPAE_SCHEDULER_JOB_ID from the template
        metrics = json.loads((job.dir / "metrics.json").read_text())
        assert metrics["status"] == "done"
        assert "gridsearch: " in (job.dir / "job.log").read_text()
    # the array indices are the campaign indices 0, 1, 2, 4
    text = (first.directory / "job.sh").read_text()
    assert "#SBATCH --array=0-2,4\n" in text
    assert sorted(first.tasks) == sorted(f"{first.scheduler_ids[0]}_{i}" for i in (0, 1, 2, 4))


def test_hostile_campaign_path_ran_nothing(run):
    assert not list(run["root"].parent.rglob("pwned*"))
    assert not list(Path.cwd().glob("pwned*"))


def test_bad_config_is_failed_with_message(run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the failing job asks for CUDA, which this machine has")
    job = run["jobs"]["bad"]
    task = next(t for t, j in run["first"].tasks.items() if j == job.id)
    assert run["states"][task].state == "failed"
    # device cuda without a GPU is a config error: exit 2, one line naming the key
    assert run["states"][task].exit_code == 2
    state = state_of(job)
    assert state["state"] == "failed" and state["error_kind"] == "bad_input"
    assert "'train.device'" in state["reason"] and "no CUDA device" in state["reason"]


def test_scancel_is_cancelled(run):
    job = run["jobs"]["cancel"]
    task = next(t for t, j in run["first"].tasks.items() if j == job.id)
    assert run["states"][task].state == "cancelled"
    assert not (job.dir / "metrics.json").exists()


def test_walltime_checkpoints_then_resumes(run):
    job = run["jobs"]["long"]
    task = next(iter(run["walltime"].tasks))
    assert "#SBATCH --time=00:01:00" in (run["walltime"].directory / "job.sh").read_text()
    assert (
        f"#SBATCH --signal=B:USR1@{SIGNAL_BEFORE_S}"
        in (run["walltime"].directory / "job.sh").read_text()
    )
    first = run["long_after_first"]
    assert first["state"] == "interrupted", first
    assert first["signal"] == "SIGUSR1"
    assert first["epoch"] < LONG_EPOCHS  # 0 when the warning came early (Slurm may send it early)
    sched = run["states"][task]
    assert sched.state == "failed" and sched.exit_code == 75 and "resume" in sched.reason
    assert "received SIGUSR1" in (job.dir / "job.log").read_text()
    # resubmitted: resumed from the checkpoint (second attempt) and done
    final = state_of(job)
    assert final["state"] == "done", final
    assert final["attempt"] == 2
    retry_task = next(t for t, j in run["retry"].tasks.items() if j == job.id)
    assert run["retry_states"][retry_task].state == "done"
    history = (job.dir / "history.csv").read_text().splitlines()
    assert len(history) == 1 + LONG_EPOCHS


def test_only_failed_is_one_compact_array(run):
    retry = run["retry"]
    text = (retry.directory / "job.sh").read_text()
    assert "#SBATCH --array=1,3\n" in text  # campaign indices of the two jobs only
    assert "#SBATCH --time=01:00:00" in text
    assert len(retry.scheduler_ids) == 1
    array = retry.scheduler_ids[0]
    assert retry.tasks == {f"{array}_1": "bbbb11111111", f"{array}_3": "dddd33333333"}
    listed = (retry.directory / "jobs.txt").read_text().splitlines()
    assert [line.split(" ", 1)[0] for line in listed] == ["1", "3"]


def test_preempted_task_is_requeued_and_resumes(run):
    job = run["jobs"]["preempt"]
    requeued = run["requeued"]
    assert requeued.state == "queued", requeued
    assert requeued.restarts >= 1 and "requeued" in requeued.reason
    ptask = next(iter(run["preempt"].tasks))
    assert run["retry_states"][ptask].state == "done"
    final = state_of(job)
    assert final["state"] == "done" and final["attempt"] == 2, final
    assert "received SIGTERM" in (job.dir / "job.log").read_text()
    assert len((job.dir / "history.csv").read_text().splitlines()) == 1 + PREEMPT_EPOCHS


def test_runtime_is_reasonable(run):
    """About 2 min on an idle machine: the limit grows with how much slower than idle the
    jobs trained during the run (their own epoch times), never with a guess."""
    first, second = run["seconds"]
    slower = slowdown([j.dir for j in run["jobs"].values()], IDLE_EPOCH_S)
    print(f"first round {first:.0f}s, retry {second:.0f}s; training {slower:.1f}x idle")
    assert first + second < 300 * slower


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("JobHeldUser", "held"), ("JobHeldAdmin", "held"), ("Priority", "queued")],
)
def test_classify_pending_held(reason, expected):
    state, why, _ = classify("PENDING", "0:0", reason)
    assert state == expected and reason in why


def test_query_unknown_and_sacct_fallback(slurm):
    backend = SlurmBackend()
    states = backend.query(["999999_0"])
    assert states["999999_0"].state == "unknown"
    assert states["999999_0"].reason == "Slurm no longer knows task 999999_0"
    # this cluster has no accounting database: sacct fails, and query answers without it
    proc = subprocess.run(["sacct", "-n"], capture_output=True, text=True)
    assert proc.returncode != 0 and "disabled" in proc.stderr + proc.stdout
    assert SlurmBackend._sacct(["1"]) == {}


@pytest.mark.parametrize(
    ("slurm", "exit_code", "expected"),
    [
        ("PENDING", "0:0", "queued"),
        ("RUNNING", "0:0", "running"),
        ("COMPLETED", "0:0", "done"),
        ("FAILED", "1:0", "failed"),
        ("FAILED", "75:0", "failed"),
        ("CANCELLED by 0", "0:15", "cancelled"),
        ("TIMEOUT", "0:0", "timeout"),
        ("OUT_OF_MEMORY", "0:125", "oom"),
        ("NODE_FAIL", "0:0", "node_fail"),
        ("PREEMPTED", "0:15", "preempted"),
        ("REQUEUED", "0:0", "queued"),  # the moment of a requeue: it will run again
        ("REQUEUE_HOLD", "0:0", "queued"),
        ("BOGUS", "", "unknown"),
    ],
)
def test_classify(slurm, exit_code, expected):
    assert classify(slurm, exit_code)[0] == expected


def test_classify_reasons():
    assert "resume" in classify("FAILED", "75:0")[1]
    assert classify("FAILED", "0:9")[1] == "killed by signal 9"
    # the job's python killed inside the batch shell: the shell exits 128 + signal
    assert classify("FAILED", "137:0") == ("failed", "exit 137: killed by signal 9", 137)
    assert "another process runs this job dir" in classify("FAILED", "73:0")[1]
    assert "cannot import the project" in classify("FAILED", "78:0")[1]
    assert "requeued 1 time" in classify("PENDING", "0:0", "BeginTime", restarts=1)[1]
    assert classify("TIMEOUT", "0:1")[1] == "walltime exceeded"


def test_query_raises_when_squeue_cannot_answer(monkeypatch, tmp_path):
    """A stand-in squeue that fails as one does without a controller (nothing real can make
    the shared cluster's controller vanish): silence must not read as 'task unknown'."""
    from gridsearch.backends.slurm import SchedulerUnavailable

    fake = tmp_path / "squeue"
    fake.write_text(
        "#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(SchedulerUnavailable, match="Unable to contact"):
        SlurmBackend().query(["12_0"])
