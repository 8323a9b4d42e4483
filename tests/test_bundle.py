"""``python -m hepae_core.bundle DIR...``: several job dirs in one process, as a task runs them."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY_JOB, run_job_process, write_job

from hepae_core import jobdir
from hepae_core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from hepae_core.run.bundle import bundle_threads


def bundle_process(*args, env: dict | None = None, **kw) -> subprocess.Popen:
    full = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "hepae_core.bundle", *map(str, args)],
        env=full,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        **kw,
    )


def run_bundle(*args, timeout: float = 300, **kw) -> tuple[int, str]:
    proc = bundle_process(*args, **kw)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def config(**train) -> dict:
    cfg = copy.deepcopy(TINY_JOB)
    cfg["train"].update(train)
    return cfg


def state(job: Path) -> dict:
    return json.loads((job / "state.json").read_text())


def metrics(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def test_bundle_writes_every_member_as_a_single_job(tmp_path):
    a = write_job(tmp_path / "bundle" / "a", config(lr=1e-3))
    b = write_job(tmp_path / "bundle" / "b", config(lr=3e-3, schedule="one_cycle"))
    c_cfg = config()
    c_cfg["model"]["encoder"] = [32, 8]  # another shape: trained alone
    c = write_job(tmp_path / "bundle" / "c", c_cfg)
    code, err = run_bundle(a, b, c)
    assert code == EXIT_OK, err
    assert "2 training(s) (2, 1 model(s) each)" in err
    single = write_job(tmp_path / "single" / "b", config(lr=3e-3, schedule="one_cycle"))
    assert run_job_process(single).returncode == 0
    for job in (a, b, c):
        assert state(job)["state"] == "done" and state(job)["attempt"] == 1
        assert not (job / "checkpoint.pt").exists()
        assert (job / "heartbeat").is_file() and (job / "model.pt").is_file()
        assert len((job / "history.csv").read_text().splitlines()) == 3
    # The same files and keys as a single job; the stacked member's numbers as its own.
    ms, mb = metrics(single), metrics(b)
    assert set(mb) == set(ms)
    assert mb["best_val_loss"] == pytest.approx(ms["best_val_loss"], rel=1e-5)
    assert mb["ae.pt.width"] == pytest.approx(ms["ae.pt.width"], rel=1e-3)
    assert mb["param.train.lr"] == 3e-3 and metrics(a)["param.train.lr"] == 1e-3
    # model.pt of a stacked member holds its own weights only, not the stack's buffers
    payload = torch.load(b / "model.pt", weights_only=True)
    for t in payload["state_dict"].values():
        assert t.untyped_storage().nbytes() == t.numel() * t.element_size()

    again, err = run_bundle(a, b, c)
    assert again == EXIT_OK and err.count("already done; skipped") == 3
    assert all(state(j)["attempt"] == 1 for j in (a, b, c))


def test_locked_member_is_skipped_untouched_and_bad_ones_fail_alone(tmp_path):
    a = write_job(tmp_path / "a", config())
    busy = write_job(tmp_path / "busy", config())
    bad = write_job(tmp_path / "bad", {**config(), "train": {"lrr": 1}})
    nan = write_job(tmp_path / "nan", config(lr=1e30))
    with jobdir.job_lock(busy):
        code, err = run_bundle(a, busy, bad, nan)
    assert code == EXIT_FAILED, err
    assert state(a)["state"] == "done"
    assert sorted(p.name for p in busy.iterdir()) == [".lock", "config.yaml"]
    assert "bundle: busy: skipped: pid" in err
    assert state(bad)["state"] == "failed" and state(bad)["error_kind"] == "bad_input"
    assert "'train.lrr'" in state(bad)["reason"]
    assert state(nan)["state"] == "failed" and state(nan)["error_kind"] == "nan"
    assert not (nan / "metrics.json").exists()


def test_sigterm_reaches_every_member_and_resume_is_exact(tmp_path):
    epochs = 20
    cfgs = {"a": config(lr=1e-3), "b": config(lr=2e-3, schedule="one_cycle")}
    for cfg in cfgs.values():
        cfg["data"]["max_jets"] = 30000
        cfg["train"]["epochs"] = epochs  # 0.1 s each here: seconds left after the first
    whole = [write_job(tmp_path / "whole" / n, c) for n, c in cfgs.items()]
    parts = [write_job(tmp_path / "parts" / n, c) for n, c in cfgs.items()]
    code, err = run_bundle(*whole)
    assert code == EXIT_OK, err

    proc = bundle_process(*parts)
    deadline = time.time() + 120
    while time.time() < deadline and not all((j / "history.csv").exists() for j in parts):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err
    for job in parts:
        st = state(job)
        assert st["state"] == "interrupted" and st["signal"] == "SIGTERM"
        ckpt = torch.load(job / "checkpoint.pt", weights_only=True)
        assert 1 <= ckpt["epoch"] < epochs
    code, err = run_bundle(*parts)
    assert code == EXIT_OK, err
    assert err.count("resuming from checkpoint.pt") == 2
    for w, p in zip(whole, parts, strict=True):
        mw, mp = metrics(w), metrics(p)
        assert mp["attempts"] == 2 and mp["epochs_run"] == epochs
        assert mp["best_val_loss"] == mw["best_val_loss"]  # bit for bit
        assert mp["test_loss"] == mw["test_loss"]


def test_bundle_threads_never_exceed_the_allocation(monkeypatch):
    monkeypatch.setenv("HEPAE_THREADS", "1")
    assert bundle_threads([{"train": {"threads": 4}}, {"train": {"threads": 2}}]) == 1
    monkeypatch.delenv("HEPAE_THREADS")
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cpus = len(os.sched_getaffinity(0))
    assert bundle_threads([{"train": {"threads": None}}]) == cpus
    assert bundle_threads([{"train": {"threads": 1}}, {"train": {"threads": 1}}]) == 1
    assert bundle_threads([{"train": {"threads": 999}}]) == cpus


def test_list_file_and_missing_config(tmp_path):
    a = write_job(tmp_path / "a", config(epochs=1))
    (tmp_path / "empty").mkdir()
    listing = tmp_path / "jobs.txt"
    listing.write_text(f"{a}\n\n{tmp_path / 'empty'}\n")
    code, err = run_bundle("--list", listing)
    assert code == EXIT_FAILED
    assert state(a)["state"] == "done"
    assert "no config.yaml here" in err and "Traceback" not in err
