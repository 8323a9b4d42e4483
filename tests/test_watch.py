"""``gridsearch status --watch``: progress, ETA, in place on a terminal, plain lines
otherwise, ending when nothing is in flight. The numbers are checked against values
worked out by hand; the end to end part watches a real local run."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest_gs import write

from gridsearch import watch as W
from gridsearch.campaign import open_campaign
from gridsearch.status import JobStatus
from hepae_core.states import JobState

REPO = Path(__file__).resolve().parents[1]


def _js(i: int, state: JobState, epoch: int | None = None, epochs: int | None = None):
    return JobStatus(
        index=i, id=f"j{i}", name=f"j{i}", dir=Path("."), state=state, epoch=epoch,
        epochs=epochs,
    )  # fmt: skip


def test_progress_and_eta_by_hand():
    jobs = [
        _js(0, JobState.DONE, 10, 10),
        _js(1, JobState.RUNNING, 2, 10),  # 3 s/epoch: 8 epochs left = 24 s, 30 s a job
        _js(2, JobState.QUEUED),
        _js(3, JobState.QUEUED),
    ]
    assert W.progress(jobs) == pytest.approx((1 + 0.2) / 4)
    # 24 s for the running one, then the two queued one after the other (1 runs at a
    # time now): 2 x 30 s
    assert W.eta_s(jobs, {"j1": 3.0}) == pytest.approx(24 + 2 * 30)
    jobs.append(_js(4, JobState.RUNNING, 5, 10))  # 1 s/epoch: 5 s left, 10 s a job
    # max(24, 5) + ceil(2 queued / 2 running) x mean(30, 10)
    assert W.eta_s(jobs, {"j1": 3.0, "j4": 1.0}) == pytest.approx(24 + 1 * 20)
    assert W.eta_s(jobs, {}) is None  # nothing to go by
    assert W.eta_s([_js(0, JobState.DONE)], {}) == 0.0
    lines = W.render(jobs, {"j1": 3.0, "j4": 1.0})
    assert "5 jobs: 2 queued, 2 running, 1 done" in lines[0]
    assert "ETA 44s" in lines[0] and " 34.0%" in lines[0]  # (1 + 0.2 + 0.5) / 5
    assert lines[1].strip() == "j1: epoch 2/10, 3.0 s/epoch"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_watch_a_real_local_run(tmp_path):
    from gridsearch.plan import plan

    space = write(
        tmp_path / "space.yaml",
        """\
        name: w
        base:
          data: {source: bundled:dijet_4d, max_jets: 3000}
          model: {encoder: [8]}
          train: {epochs: 8, batch_size: 256, threads: 1}
          evaluate: {plots: false, timing_jets: 1000}
        grid:
          train.lr: [1.0e-3, 2.0e-3, 3.0e-3]
        """,
    )
    camp = tmp_path / "camp"
    plan(space, camp)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.Popen(
        [sys.executable, "-m", "gridsearch", "submit", str(camp), "--site", "local",
         "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (camp / "ledger.jsonl").exists():  # the run has begun
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.2)
        term = _Terminal()
        W.watch(open_campaign(camp), interval=0.5, lost_after_s=600, out=term, max_refreshes=3)
        text = term.getvalue()
        assert "\x1b[" in text  # redrawn in place
        assert text.count("jobs:") == 3
        plain = subprocess.run(
            [sys.executable, "-m", "gridsearch", "status", str(camp), "--watch", "--interval",
             "1"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert plain.returncode == 0, plain.stderr
        assert run.wait(timeout=60) == 0
    finally:
        if run.poll() is None:
            run.terminate()
            run.wait()
    lines = plain.stdout.splitlines()
    bars = [ln for ln in lines if "] " in ln and "ETA" in ln]
    assert len(bars) >= 2 and "\x1b[" not in plain.stdout  # plain lines, one per refresh
    assert any("running" in ln for ln in bars)
    assert "100.0%" in bars[-1] and "3 jobs: 3 done" in bars[-1]
