"""The local backend: submitit's LocalExecutor running job dirs, workers x threads <= cores."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest_gs import cli, fake_site, manifest, write

from gridsearch.backends import get_backend
from gridsearch.backends.local import resources
from gridsearch.campaign import open_campaign
from gridsearch.errors import GridsearchError

REPO = Path(__file__).resolve().parents[1]


def test_resources_split_cores(monkeypatch):
    monkeypatch.setattr("gridsearch.backends.local.cores", lambda: 8)
    prof = {"options": {"workers": None, "threads": 1}}
    assert resources(prof, {})["workers"] == 8
    r = resources(prof, {"workers": 2})
    assert (r["workers"], r["threads"]) == (2, 4)
    r = resources(prof, {"workers": 16})
    assert (r["workers"], r["threads"]) == (8, 1) and r["notes"]
    r = resources({"options": {"threads": 3}}, {})
    assert (r["workers"], r["threads"]) == (2, 3)
    r = resources(prof, {"workers": 3, "threads": 4})
    assert r["workers"] * r["threads"] <= 8
    with pytest.raises(GridsearchError):
        resources(prof, {"workers": 0})


@pytest.mark.parametrize(
    "text, minutes",
    [(90, 90), ("90", 90), ("1:30:00", 90), ("2-00:00:00", 2880), ("10:30", 10.5),
     ("2h", 120), ("30m", 30), ("1h30m", 90), ("90s", 1.5)],
)  # fmt: skip
def test_local_time_limit_reads_every_documented_form(text, minutes):
    # one walltime parser for every site: what --site slurm takes, --site local takes
    assert resources({"options": {}}, {"time": text})["timeout_min"] == pytest.approx(minutes)


@pytest.mark.parametrize("bad", ["soon", "0", "0m", "-5", "1h-30m"])
def test_local_bad_time_is_refused(bad):
    with pytest.raises(GridsearchError, match=r"--time.*walltime"):
        resources({"options": {}}, {"time": bad})


@pytest.mark.parametrize("bad", [0, "0", "0G", "lots"])
def test_local_mem_zero_is_refused(bad):
    with pytest.raises(GridsearchError, match=r"--mem.*above zero"):
        resources({"options": {}}, {"mem": bad})


def test_get_backend():
    assert get_backend("local").kind == "local"
    with pytest.raises(GridsearchError, match="unknown scheduler kind"):
        get_backend("pbs")


def _campaign(tmp_path, lrs):
    space = write(tmp_path / "space.yaml", f"name: loc\ngrid:\n  train.lr: {lrs}\n")
    camp = tmp_path / "camp"
    from gridsearch.plan import plan

    plan(space, camp)
    return camp


def test_local_run_fail_interrupt_and_resubmit_exactly_those(tmp_path, monkeypatch, capsys):
    sites = fake_site(tmp_path, monkeypatch)
    camp = _campaign(tmp_path, "[1e-3, 1e-2, 2e-2, 1e-4]")
    code, out, err = cli(capsys, "submit", camp, "--site", "fake", "--sites-dir", sites)
    assert code == 1, err  # not every job is done
    assert "local run ended: 1 interrupted, 1 failed, 2 done" in out
    ledger = open_campaign(camp).submissions()
    assert len(ledger) == 1 and ledger[0]["kind"] == "local" and len(ledger[0]["tasks"]) == 4
    assert ledger[0]["outcome"] == "submitted" and ledger[0]["indices"] == {
        str(i): j["id"] for i, j in enumerate(manifest(camp)["jobs"])
    }
    sub_dir = camp / ledger[0]["dir"]
    assert (sub_dir / "jobs.txt").read_text().count("\n") == 4
    ids = [j["id"] for j in manifest(camp)["jobs"]]
    st = json.loads((camp / "jobs" / ids[0] / "state.json").read_text())
    assert st["threads"] == "1" and st["scheduler_job_id"] in ledger[0]["tasks"]
    code, out, _ = cli(capsys, "status", camp, "--failed")
    assert "ValueError: boom" in out and "4 jobs: 1 interrupted, 1 failed, 2 done" in out
    # nothing planned is left: a plain submit does nothing
    code, out, _ = cli(capsys, "submit", camp, "--site", "fake", "--sites-dir", sites)
    assert code == 0 and "nothing to submit" in out
    # resubmit: exactly the failed and interrupted ones
    mtimes = {i: (camp / "jobs" / i / "state.json").stat().st_mtime_ns for i in ids}
    code, out, _ = cli(capsys, "resubmit", camp, "--site", "fake", "--sites-dir", sites)
    ledger = open_campaign(camp).submissions()
    assert sorted(ledger[-1]["tasks"].values()) == sorted([ids[1], ids[2]])
    for i in (ids[0], ids[3]):
        assert (camp / "jobs" / i / "state.json").stat().st_mtime_ns == mtimes[i]
    # done jobs need --force, and then start afresh with the old outputs kept
    code, _, err = cli(
        capsys, "submit", camp, "--site", "fake", "--sites-dir", sites, "--only", "done"
    )
    assert code == 2 and "--force" in err
    code, out, _ = cli(
        capsys, "submit", camp, "--site", "fake", "--sites-dir", sites,
        "--only", "done", "--force", "--workers", "1",
    )  # fmt: skip
    assert "submitted 2 jobs" in out
    prev = list((camp / "jobs" / ids[0] / "previous").iterdir())
    assert len(prev) == 1 and (prev[0] / "metrics.json").exists()
    assert (camp / "jobs" / ids[0] / "metrics.json").exists()


def test_dry_run_runs_nothing(tmp_path, monkeypatch, capsys):
    sites = fake_site(tmp_path, monkeypatch)
    camp = _campaign(tmp_path, "[1e-3]")
    code, out, _ = cli(capsys, "submit", camp, "--site", "fake", "--sites-dir", sites, "--dry-run")
    assert code == 0 and "would submit 1 jobs" in out
    assert not list((camp / "jobs").glob("*/state.json"))
    rec = json.loads((camp / "ledger.jsonl").read_text())
    assert rec["dry_run"] is True
    code, out, _ = cli(capsys, "status", camp)
    assert "1 planned" in out


def test_ctrl_c_asks_jobs_to_checkpoint(tmp_path, monkeypatch):
    sites = fake_site(tmp_path, monkeypatch)
    camp = _campaign(tmp_path, "[3e-2]")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env["PYTHONPATH"]])
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridsearch", "submit", str(camp), "--site", "fake",
         "--sites-dir", str(sites)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    job = next((camp / "jobs").iterdir())
    deadline = time.time() + 30
    while time.time() < deadline and not (job / "state.json").exists():
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "checkpoint" in err
    assert json.loads((job / "state.json").read_text())["state"] == "interrupted"
    from gridsearch.campaign import read_ledger

    events = [r.get("event") for r in read_ledger(camp / "ledger.jsonl")]
    assert events == ["intent", "submitted"]  # written ahead, completed on Ctrl-C
    rec = read_ledger(camp / "ledger.jsonl")[-1]
    assert rec["interrupted"] is True and list(rec["tasks"].values()) == [job.name]


def test_local_jobs_get_the_scheduler_id_and_threads(tmp_path, monkeypatch, capsys):
    # What the job really receives (the stand-in writes it into state.json), not a string
    # in the stand-in's source.
    sites = fake_site(tmp_path, monkeypatch, workers=1)
    camp = _campaign(tmp_path, "[1e-3]")
    code, out, err = cli(capsys, "submit", camp, "--site", "fake", "--sites-dir", sites)
    assert code == 0, out + err
    job = next((camp / "jobs").iterdir())
    state = json.loads((job / "state.json").read_text())
    from gridsearch.campaign import read_ledger

    rec = read_ledger(camp / "ledger.jsonl")[-1]
    assert rec["event"] == "submitted" and rec["tasks"] == {state["scheduler_job_id"]: job.name}
    from gridsearch.backends.local import cores

    assert state["threads"] == str(cores())  # one worker gets every core
