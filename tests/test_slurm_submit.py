"""Submission on the real one-node Slurm cluster: a refusal leaves nothing behind, a
throttle holds across array chunks, and a full disk at the ledger write (after sbatch
accepted) never leads to a second submission of the same jobs."""

from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm import cluster

from gridsearch.campaign import open_campaign

REPO = Path(__file__).resolve().parent.parent

# The timeout only guards against a hang: the waits fail by themselves when nothing moves.
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(3600)]

# A stand-in job: writes state.json with its start and end times (epoch seconds) and
# sleeps a few seconds in between, so that overlapping tasks would show.
SLOW_JOB = """
import json, os, sys, time
d = sys.argv[1]
def w(state, **kw):
    rec = {"state": state, "attempt": 1, "pid": os.getpid(), "host": os.uname().nodename,
           "updated": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
           "scheduler_job_id": os.environ.get("HEPAE_SCHEDULER_JOB_ID"), **kw}
    tmp = os.path.join(d, ".state.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(rec))
    os.replace(tmp, os.path.join(d, "state.json"))
start = time.time()
w("running", started=start)
time.sleep(float(os.environ.get("SLOW_JOB_S", "3")))
w("done", started=start, ended=time.time())
"""


def _site(tmp_path: Path, **more) -> list[str]:
    pkg = tmp_path / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "slowjob.py").write_text(SLOW_JOB)
    sites_dir = tmp_path / "sites"
    sites_dir.mkdir(exist_ok=True)
    profile = {
        "extends": "slurm",
        "python": sys.executable,
        "module": "slowjob",
        "env": {"variables": {"PYTHONPATH": f"{pkg}:{REPO}"}},
        "request": {"time": "5:00"},
        **more,
    }
    (sites_dir / "test-slurm.yaml").write_text(yaml.safe_dump(profile))
    return ["--site", "test-slurm", "--sites-dir", str(sites_dir)]


def gridsearch(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if path:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "gridsearch", *args],
        capture_output=True,
        text=True,
        timeout=600,  # a guard against a hang only: Python starts slowly under load
        env=env,
        check=False,
    )


def _plan(camp: Path, n: int) -> list[dict]:
    space = camp.parent / f"space-{camp.name}.yaml"
    space.write_text(yaml.safe_dump({"name": "sub", "grid": {"seed": list(range(n))}}))
    proc = gridsearch("plan", str(space), "-o", str(camp))
    assert proc.returncode == 0, proc.stderr
    return json.loads((camp / "manifest.json").read_text())["jobs"]


def _wait_done(camp: Path, n: int) -> list[dict]:
    def done():
        states = []
        for j in json.loads((camp / "manifest.json").read_text())["jobs"]:
            try:
                states.append(json.loads((camp / "jobs" / j["id"] / "state.json").read_text()))
            except (OSError, ValueError):
                states.append({})
        assert not [s for s in states if s.get("state") == "failed"], states
        return sum(s.get("state") == "done" for s in states) == n and states

    return cluster.wait_for(f"{n} jobs done", done, dirs=[camp])


def test_sbatch_refusal_leaves_no_submission_dir(tmp_path, slurm):
    site = _site(tmp_path)
    camp = tmp_path / "camp"
    _plan(camp, 2)
    proc = gridsearch("submit", str(camp), *site, "--partition", "nosuchpartition")
    assert proc.returncode == 2 and "sbatch refused job.sh" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((camp / "submit").iterdir()) if (camp / "submit").exists() else True
    ledger = [json.loads(x) for x in (camp / "ledger.jsonl").read_text().splitlines()]
    assert [r["event"] for r in ledger] == ["intent", "refused"]
    status = json.loads(gridsearch("status", str(camp), "--json").stdout)
    assert [j["state"] for j in status["jobs"]] == ["planned", "planned"]


def test_throttle_holds_across_array_chunks(tmp_path, slurm):
    """Four jobs in two arrays (MaxArraySize 2), --throttle 1: never two tasks at once."""
    site = _site(tmp_path, limits={"max_array_size": 2})
    camp = tmp_path / "camp"
    _plan(camp, 4)
    proc = gridsearch("submit", str(camp), *site, "--throttle", "1")
    assert proc.returncode == 0, proc.stderr
    rec = [json.loads(x) for x in (camp / "ledger.jsonl").read_text().splitlines()][-1]
    first, second = rec["scheduler_ids"]
    assert f"--dependency=afterany:{first}" in rec["command"]  # chunk 2 waits for chunk 1
    assert {t.split("_")[0] for t in rec["tasks"]} == {first, second}
    sub = camp / rec["dir"]
    for name in ("job-0.sh", "job-1.sh"):
        assert "#SBATCH --array=0-1%1\n" in (sub / name).read_text()
    states = _wait_done(camp, 4)
    spans = sorted((s["started"], s["ended"]) for s in states)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two tasks ran at once: {spans}"


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")


def test_full_disk_at_the_ledger_write_never_submits_twice(tmp_path, slurm):
    """Real sbatch queues the array, then the campaign's file system fills up (a wrapper
    around sbatch fills it) before the ledger can record the ids."""
    fs = tmp_path / "fs"
    _mount_tmpfs(fs, "4m")
    ids: list[str] = []
    try:
        site = _site(tmp_path)
        # tmpfs allocates whole pages: a record shorter than the free part of the ledger's
        # last page would still fit on a full disk. A long (legal) campaign path makes
        # the completion record longer than a page, so it needs space the disk lacks.
        camp = fs.joinpath(*[f"{k}" * 230 for k in range(9)], "camp")
        camp.parent.mkdir(parents=True)
        jobs = _plan(camp, 2)
        calls = tmp_path / "sbatch-calls"
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "sbatch"
        wrapper.write_text(
            "#!/bin/sh\n"
            f"echo call >> {shlex.quote(str(calls))}\n"
            # --hold: the tasks must not start (and fail on the full disk) before the
            # test has freed it; released below
            f'out=$({shlex.quote(shutil.which("sbatch"))} --hold "$@") || exit $?\n'
            f"dd if=/dev/zero of={shlex.quote(str(fs / 'fill'))} bs=64k 2>/dev/null\n"
            'echo "$out"\n'
        )
        wrapper.chmod(0o755)
        path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        proc = gridsearch("submit", str(camp), *site, path=path)
        assert proc.returncode != 0, proc.stdout
        assert "Traceback" not in proc.stderr
        assert "do NOT submit them again" in proc.stderr
        adopt_cmd = proc.stderr.split("record them with: ", 1)[1].strip()
        ids = adopt_cmd.split("--ids ", 1)[1].split(",")
        assert all(i.isdigit() for i in ids)
        queued = subprocess.run(["scontrol", "show", "job", ids[0]], capture_output=True,
                                text=True, check=False)  # fmt: skip
        assert f"ArrayJobId={ids[0]}" in queued.stdout  # really queued

        # The disk is still full: a second submit must not queue the jobs again.
        again = gridsearch("submit", str(camp), *site, path=path)
        assert "nothing to submit" in again.stdout, again.stdout + again.stderr
        assert calls.read_text().count("call") == 1
        in_flight = open_campaign(camp).intended_jobs()  # what status reads as in flight
        assert sorted(in_flight) == sorted(j["id"] for j in jobs)

        (fs / "fill").unlink()
        words = shlex.split(adopt_cmd)
        assert words[:2] == ["gridsearch", "adopt"]
        adopted = gridsearch(*words[1:])
        assert adopted.returncode == 0, adopted.stderr
        rec = [json.loads(x) for x in (camp / "ledger.jsonl").read_text().splitlines()][-1]
        assert rec["event"] == "submitted" and rec["scheduler_ids"] == ids
        assert rec["tasks"] == {f"{ids[0]}_{j['index']}": j["id"] for j in jobs}
        subprocess.run(["scontrol", "release", ids[0]], check=True)
        _wait_done(camp, 2)
        status = json.loads(gridsearch("status", str(camp), "--json").stdout)
        assert [j["state"] for j in status["jobs"]] == ["done", "done"]
        assert calls.read_text().count("call") == 1  # submitted once, all done
    finally:
        for i in ids:
            subprocess.run(["scancel", i], check=False)
        deadline = time.monotonic() + 60
        while ids and time.monotonic() < deadline:
            q = subprocess.run(["squeue", "-h", "-j", ",".join(ids)], capture_output=True,
                               text=True, check=False)  # fmt: skip
            if not q.stdout.strip():
                break
            time.sleep(1)
        subprocess.run(["umount", "-l", str(fs)], check=False)
