"""HTCondor: rendered submit descriptions parsed by HTCondor's own parser (the htcondor
wheel), and the submit/status path against stand-in condor_submit/condor_q/condor_history.

No HTCondor pool can be started on the test machines, so the submit and status tests run
against the stand-ins in tests/fake_condor/, which print what the real tools print and keep
their queue in JSON files. What is real: the submit description and its parsing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from conftest_gs import TINY_BASE, cli, write

from gridsearch import sites
from gridsearch.backends.base import JobRef
from gridsearch.backends.condor import CondorBackend, classify, parse_submit
from gridsearch.errors import GridsearchError

htcondor2 = pytest.importorskip("htcondor2", reason="the htcondor wheel parses submit files")

FAKE = Path(__file__).resolve().parent / "fake_condor"
PATH_NAMES = [
    "plain",
    "with space",
    'it\'s "quoted"',
    "comma,separated and space",
    "back`tick` ; semi",
    "pipe | at the end |",
    "hash # not a comment",
    "ümläut",
]


def make_jobs(root: Path, n: int) -> list[JobRef]:
    jobs = []
    for i in range(n):
        d = root / "jobs" / f"{i:012x}"
        d.mkdir(parents=True)
        (d / "config.yaml").write_text("seed: 0\n")
        jobs.append(JobRef(f"{i:012x}", d))
    return jobs


@pytest.mark.parametrize("name", PATH_NAMES)
@pytest.mark.parametrize("site", ["condor", "lxplus"])
def test_submit_description_yields_exactly_the_planned_jobs(name, site, tmp_path):
    root = tmp_path / name
    jobs = make_jobs(root, 5)
    sub = CondorBackend().submit(jobs, sites.load_profile(site), root / "submit" / "s", True)
    text = (sub.directory / "job.sub").read_text()
    items = parse_submit(text, sub.directory)
    assert items == [{"index": str(i), "jobdir": str(j.dir)} for i, j in enumerate(jobs)]
    s = htcondor2.Submit(text)
    assert s["executable"] == str(sub.directory / "job.sh")
    assert s["initialdir"] == "$(jobdir)"
    assert s["output"] == "$(jobdir)/condor.out"
    assert s["log"] == "$(jobdir)/condor.log"
    assert s["arguments"] == "$(index) $(ClusterId).$(ProcId)"
    assert "ExitCode =!= 75" in s["on_exit_remove"]


def test_subset_keeps_campaign_indices(tmp_path):
    jobs = make_jobs(tmp_path, 6)
    (tmp_path / "manifest.json").write_text(
        json.dumps({"jobs": [{"index": i, "id": j.id} for i, j in enumerate(jobs)]})
    )
    subset = [JobRef(j.id, j.dir, i) for i, j in enumerate(jobs)][1:2] + [
        JobRef(j.id, j.dir, i) for i, j in enumerate(jobs)
    ][4:6]
    sub = CondorBackend().submit(subset, sites.load_profile("condor"), tmp_path / "s", True)
    items = parse_submit((sub.directory / "job.sub").read_text(), sub.directory)
    assert [it["index"] for it in items] == ["1", "4", "5"]


def test_lxplus_requests(tmp_path):
    jobs = make_jobs(tmp_path, 2)
    sub = CondorBackend().submit(
        jobs,
        sites.load_profile("lxplus"),
        tmp_path / "s",
        True,
        {"time": "50m", "mem": "3G", "cpus": 4, "gpus": 1},
    )
    s = htcondor2.Submit((sub.directory / "job.sub").read_text())
    assert s["MY.JobFlavour"] == '"microcentury"'
    assert s["MY.MaxRuntime"] == "3000"
    assert s["request_cpus"] == "4"
    assert s["request_memory"] == "3072"
    assert s["request_gpus"] == "1"
    assert s["should_transfer_files"] == "NO"
    with pytest.raises(GridsearchError, match="more than the 1 a node has"):
        CondorBackend().submit(
            jobs, sites.load_profile("lxplus"), tmp_path / "t", True, {"gpus": 2}
        )
    assert not (tmp_path / "t").exists()


def test_extra_submit_commands(tmp_path):
    profile = sites.load_profile("condor")
    profile["request"]["extra"] = {"requirements": 'OpSysAndVer == "AlmaLinux9"', "+Group": '"hep"'}
    sub = CondorBackend().submit(make_jobs(tmp_path, 1), profile, tmp_path / "s", True)
    s = htcondor2.Submit((sub.directory / "job.sub").read_text())
    assert s["requirements"] == 'OpSysAndVer == "AlmaLinux9"'
    profile["request"]["extra"] = {"requirements": "x\nqueue 1000"}
    with pytest.raises(GridsearchError, match="one-line value"):
        CondorBackend().submit(make_jobs(tmp_path / "b", 1), profile, tmp_path / "t", True)


@pytest.fixture
def fake_condor(tmp_path, monkeypatch):
    """The stand-in tools first on PATH (no pool can run here), with their queue files."""
    state = tmp_path / "fake-condor-state"
    state.mkdir()
    monkeypatch.setenv("FAKE_CONDOR_DIR", str(state))
    monkeypatch.setenv(
        "PATH", os.pathsep.join([str(FAKE), str(Path(sys.executable).parent), os.environ["PATH"]])
    )

    class Queue:
        def move(self, task: str, status: int, **attrs):
            cluster, proc = (int(x) for x in task.split("."))
            queue = json.loads((state / "queue.json").read_text())
            ad = next(a for a in queue if (a["ClusterId"], a["ProcId"]) == (cluster, proc))
            ad.update(JobStatus=status, **attrs)
            if status in (3, 4):
                queue.remove(ad)
                hist = state / "history.json"
                old = json.loads(hist.read_text()) if hist.exists() else []
                hist.write_text(json.dumps([*old, ad]))
            (state / "queue.json").write_text(json.dumps(queue))

    return Queue()


def test_submit_and_status_with_standins(fake_condor, tmp_path):
    jobs = make_jobs(tmp_path / "camp aign", 6)
    backend = CondorBackend()
    sub = backend.submit(
        jobs, sites.load_profile("lxplus"), tmp_path / "camp aign" / "submit" / "s"
    )
    assert sub.scheduler_ids == ["4711"]
    assert sub.tasks == {f"4711.{i}": j.id for i, j in enumerate(jobs)}
    assert sub.command == ["condor_submit", "job.sub"]
    assert {s.state for s in backend.query(list(sub.tasks)).values()} == {"queued"}

    fake_condor.move("4711.0", 2, NumJobStarts=1)
    fake_condor.move("4711.1", 4, ExitCode=0, ExitBySignal=False, NumJobStarts=1)
    fake_condor.move("4711.2", 5, HoldReason="Job has gone over memory limit of 2048 megabytes.")
    fake_condor.move("4711.3", 4, ExitCode=1, ExitBySignal=False, NumJobStarts=1)
    fake_condor.move(
        "4711.4",
        3,
        RemoveReason="Job removed by SYSTEM_PERIODIC_REMOVE due to wall time exceeded allowed max.",
    )
    fake_condor.move("4711.5", 3, RemoveReason="via condor_rm (by user jdoe)")
    states = backend.query([*sub.tasks, "9999.0"])
    assert states["4711.0"].state == "running"
    assert states["4711.1"].state == "done"
    assert states["4711.2"].state == "held"  # still queued: it runs again once released
    assert states["4711.3"].state == "failed" and states["4711.3"].exit_code == 1
    assert states["4711.4"].state == "timeout"
    assert states["4711.5"].state == "cancelled"
    assert states["9999.0"].state == "unknown"

    # resubmission of the failed ones: a second cluster with just those
    retry = backend.submit(
        [jobs[3], jobs[4]],
        sites.load_profile("lxplus"),
        tmp_path / "camp aign" / "submit" / "r",
        overrides={"mem": "8G"},
    )
    assert retry.tasks == {"4712.0": jobs[3].id, "4712.1": jobs[4].id}
    assert "request_memory          = 8192" in (retry.directory / "job.sub").read_text()


def test_condor_submit_errors(fake_condor, tmp_path, monkeypatch):
    jobs = make_jobs(tmp_path, 1)
    monkeypatch.setenv("FAKE_CONDOR_FAIL", "1")
    with pytest.raises(GridsearchError, match=r"condor_submit refused .*queue manager"):
        CondorBackend().submit(jobs, sites.load_profile("condor"), tmp_path / "s")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(GridsearchError, match="condor_submit not found"):
        CondorBackend().submit(jobs, sites.load_profile("condor"), tmp_path / "t")


def test_query_without_condor_tools(tmp_path, monkeypatch):
    # no condor_q: no answer, which must not read as "the pool does not know the job"
    from gridsearch.backends.base import SchedulerUnavailable

    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(SchedulerUnavailable, match="condor_q"):
        CondorBackend().query(["1.0"])


@pytest.mark.parametrize(
    ("ad", "expected"),
    [
        ({"JobStatus": 1}, "queued"),
        ({"JobStatus": 2}, "running"),
        ({"JobStatus": 4, "ExitCode": 0, "ExitBySignal": False}, "done"),
        ({"JobStatus": 4, "ExitCode": 75, "ExitBySignal": False}, "failed"),
        ({"JobStatus": 4, "ExitBySignal": True, "ExitSignal": 9}, "failed"),
        # held: in the queue until released or removed, whatever the cause
        ({"JobStatus": 5, "HoldReason": "Error from slot1: memory usage exceeded"}, "held"),
        ({"JobStatus": 5, "HoldReason": "Job exceeded MaxRuntime"}, "held"),
        ({"JobStatus": 5}, "held"),
        # removed by a site policy: ended, and the cause says which way
        (
            {"JobStatus": 3, "RemoveReason": "SYSTEM_PERIODIC_REMOVE: memory usage exceeded"},
            "oom",
        ),
        (
            {"JobStatus": 3, "RemoveReason": "periodic remove: job exceeded MaxRuntime"},
            "timeout",
        ),
        ({"JobStatus": 3, "RemoveReason": "via condor_rm"}, "cancelled"),
        ({"JobStatus": 9}, "unknown"),
    ],
)
def test_classify(ad, expected):
    assert classify(ad)[0] == expected


def test_classify_held_keeps_the_hold_reason():
    state, reason, code = classify(
        {"JobStatus": 5, "HoldReason": "Error from slot1: memory usage exceeded", "ExitCode": 1}
    )
    assert (state, code) == ("held", None)
    assert reason == "Error from slot1: memory usage exceeded"


def test_classify_interrupted_says_resume():
    assert "resume" in classify({"JobStatus": 4, "ExitCode": 75, "NumJobStarts": 5})[1]


def test_held_job_is_queued_with_advice_and_not_resubmitted(fake_condor, tmp_path, capsys):
    """A task held after its job started (an HTCondor memory hold) stays queued in status,
    says how to release or remove it, and resubmit leaves it alone: released later, it
    would otherwise run a second time. Stand-in tools: no HTCondor pool can run here."""
    space = write(tmp_path / "space.yaml", "name: held\n" + TINY_BASE + "grid: {seed: [0, 1]}\n")
    camp = tmp_path / "camp"
    assert cli(capsys, "plan", space, "-o", camp)[0] == 0
    code, out, err = cli(capsys, "submit", camp, "--site", "lxplus")
    assert code == 0, out + err
    manifest = json.loads((camp / "manifest.json").read_text())
    held_dir = camp / manifest["jobs"][0]["dir"]
    # the job started, then HTCondor killed it and put the task on hold
    (held_dir / "state.json").write_text(
        json.dumps(
            {"state": "running", "attempt": 1, "epoch": 1, "epochs": 2, "pid": 1,
             "host": "elsewhere", "heartbeat_s": 1,
             "updated": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
        )
    )  # fmt: skip
    fake_condor.move("4711.0", 5, HoldReason="Job has gone over memory limit of 2048 megabytes.")
    fake_condor.move("4711.1", 4, ExitCode=1, ExitBySignal=False, NumJobStarts=1)

    code, out, err = cli(capsys, "status", camp, "--json")
    assert code == 0, err
    jobs = json.loads(out)["jobs"]
    held = jobs[0]
    assert held["state"] == "queued" and held["on_hold"] is True, held
    assert held["reason"].startswith("HTCondor: held (Job has gone over memory limit")
    assert "`condor_release 4711.0`" in held["reason"] and "`condor_rm 4711.0`" in held["reason"]
    assert "its last attempt running at epoch 1/2" in held["reason"]
    assert jobs[1]["state"] == "failed"

    code, out, err = cli(capsys, "resubmit", camp, "--site", "lxplus")
    assert code == 0, out + err
    rec = [json.loads(x) for x in (camp / "ledger.jsonl").read_text().splitlines()][-1]
    assert sorted(rec["tasks"].values()) == [manifest["jobs"][1]["id"]]  # not the held one
