"""A job under faults: a second process on its dir, a kill -9, a closed pipe, an interrupt.

Every test runs the real job (``python -m hepae_core.job``) in subprocesses, as a scheduler
does.
"""

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import torch
from conftest import REPO, run_job_process, write_job

from hepae_core import jobdir
from hepae_core.states import EXIT_BUSY, EXIT_INTERRUPTED

# About 0.7 s per epoch on one CPU thread: long enough to catch the job mid-run.
SLOW_JOB = {
    "data": {"source": "bundled:dijet_4d", "max_jets": 20000},
    "model": {"encoder": [16, 8], "latent": 3},
    "train": {"epochs": 30, "batch_size": 32, "threads": 1},
    "evaluate": {"plots": False, "timing_jets": 1000},
}
TIMINGS = {
    "train_time_s",
    "train_jets_per_s",
    "stack_jets_per_s",
    "encode_s_per_jet",
    "decode_s_per_jet",
    "baselines_s",
    "evaluate_s",
}


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), **extra)
    return env


def _start(job, **env):
    return subprocess.Popen(
        [sys.executable, "-m", "hepae_core.job", str(job)],
        env=_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path, proc, timeout=120.0) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def _snapshot(job) -> dict[str, tuple[str, int]]:
    """sha256 and mtime (ns) of every file of the job dir, job.log aside."""
    out = {}
    for p in sorted(job.rglob("*")):
        if p.is_file() and p.name != jobdir.LOG:
            out[str(p.relative_to(job))] = (
                hashlib.sha256(p.read_bytes()).hexdigest(),
                p.stat().st_mtime_ns,
            )
    return out


def test_second_process_on_a_running_job_touches_nothing(tmp_path):
    job = write_job(tmp_path / "job", SLOW_JOB)
    first = _start(job, HEPAE_HEARTBEAT_S="0.2")
    try:
        _wait_for(job / jobdir.HISTORY, first)
        # The running job keeps beating between epochs (0.2 s interval here).
        age0 = jobdir.heartbeat_age(job)
        time.sleep(0.6)
        assert jobdir.heartbeat_age(job) < 0.5 and age0 is not None
        holder = jobdir.job_lock_holder(job)
        assert holder is not None and f"pid {first.pid} " in holder
        # Freeze the first process: it keeps its lock but writes nothing meanwhile, so
        # any change to the files would be the second process's doing.
        first.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        before = _snapshot(job)
        assert "state.json" in before and "checkpoint.pt" in before

        second = run_job_process(job, timeout=120)
        assert second.returncode == EXIT_BUSY, second.stderr
        assert "Traceback" not in second.stderr
        line = (
            f"gridsearch: another process (pid {first.pid} on "
            f"{os.uname().nodename}, scheduler job -, since "
        )
        log = (job / jobdir.LOG).read_text().splitlines()
        assert len(log) == 1 and log[0].startswith(line)
        assert log[0].endswith("is running this job; this one exits without touching its files")

        # Under a job script stderr already is job.log: the line is written once, not twice.
        with open(job / jobdir.LOG, "a") as fh:
            third = subprocess.run(
                [sys.executable, "-m", "hepae_core.job", str(job)],
                env=_env(),
                stderr=fh,
                stdout=fh,
                timeout=120,
            )
        assert third.returncode == EXIT_BUSY
        assert len((job / jobdir.LOG).read_text().splitlines()) == 2
        assert _snapshot(job) == before

        # kill -9 (the OOM killer): the lock goes with the process, the heartbeat stops.
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert jobdir.job_lock_holder(job) is None
        time.sleep(0.5)
        assert jobdir.heartbeat_age(job) > 0.5
        state = json.loads((job / "state.json").read_text())
        assert state["state"] == "running"
        # the job's own pace is recorded, so status judges its silence by it
        assert state["heartbeat_s"] == 0.2
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_closed_stdout_and_stderr_do_not_fail_a_finished_job(tmp_path, tiny_job_config):
    """``hepae-train ... 2>&1 | head -1``: the reader goes away, the job still finishes."""
    cfg_file = tmp_path / "my.yaml"
    cfg_file.write_text(json.dumps(tiny_job_config))
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hepae_core.cli", str(cfg_file), "--out", str(out)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()
    proc.stderr.close()  # every message of the job now meets a broken pipe
    assert proc.wait(timeout=300) == 0
    state = json.loads((out / "state.json").read_text())
    assert state["state"] == "done" and "error_kind" not in state
    assert (out / "metrics.json").is_file()


def _history(job):
    """history.csv without its two timing columns (seconds, jets_per_s)."""
    with open(job / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: r[k] for k in ("epoch", "train_loss", "val_loss", "lr")} for r in rows]


def test_interrupted_and_resumed_job_equals_an_uninterrupted_one(tmp_path):
    cfg = json.loads(json.dumps(SLOW_JOB))
    cfg["train"]["epochs"] = 8  # 0.35 s each here: seconds left when the signal comes
    cfg["train"]["schedule"] = "one_cycle"
    whole = write_job(tmp_path / "whole", cfg)
    cut = write_job(tmp_path / "cut", cfg)
    assert run_job_process(whole).returncode == 0

    proc = _start(cut)
    _wait_for(cut / jobdir.HISTORY, proc)  # epoch 1 is done: stop inside epoch 2
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    ckpt = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] < 8
    resumed = run_job_process(cut)
    assert resumed.returncode == 0 and "resuming from checkpoint.pt" in resumed.stderr

    # The whole history, every row and every column except the timings.
    assert len(_history(whole)) == 8
    assert _history(cut) == _history(whole)
    # Every tensor of model.pt and every field besides.
    a = torch.load(whole / "model.pt", weights_only=True)
    b = torch.load(cut / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert {k: v for k, v in a.items() if k != "state_dict"} == {
        k: v for k, v in b.items() if k != "state_dict"
    }
    # Every array of evaluation.npz.
    ea, eb = np.load(whole / "evaluation.npz"), np.load(cut / "evaluation.npz")
    assert sorted(ea.files) == sorted(eb.files)
    for k in ea.files:
        np.testing.assert_array_equal(ea[k], eb[k], err_msg=k)
    # Every metric except timings and the attempt count.
    ma = json.loads((whole / "metrics.json").read_text())
    mb = json.loads((cut / "metrics.json").read_text())
    assert (ma["attempts"], mb["attempts"]) == (1, 2)
    assert ma.keys() == mb.keys() and len(ma) > 150
    for k in ma.keys() - TIMINGS - {"attempts"}:
        assert ma[k] == mb[k], k


def test_heartbeat_interval_comes_from_the_environment(monkeypatch):
    from hepae_core.run.job import heartbeat_interval

    monkeypatch.setenv("HEPAE_HEARTBEAT_S", "0.25")
    assert heartbeat_interval() == 0.25
    for bad in ("", "soon", "0", "-3", "nan", "inf"):
        monkeypatch.setenv("HEPAE_HEARTBEAT_S", bad)
        assert heartbeat_interval() == jobdir.HEARTBEAT_INTERVAL_S == 30.0
    monkeypatch.delenv("HEPAE_HEARTBEAT_S")
    assert heartbeat_interval() == 30.0
