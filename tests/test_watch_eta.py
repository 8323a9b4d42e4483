"""`status --watch` ETA counts the queued jobs at the wall time jobs really take (reading
the data and evaluating included), not only their epochs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gridsearch import watch as W
from gridsearch.status import JobStatus
from hepae_core.states import JobState


def _js(tmp: Path, i: int, state: JobState, epoch=None, epochs=None, **record) -> JobStatus:
    d = tmp / f"j{i}"
    d.mkdir()
    (d / "state.json").write_text(json.dumps(record))
    return JobStatus(index=i, id=f"j{i}", name=f"j{i}", dir=d, state=state, epoch=epoch,
                     epochs=epochs, started=record.get("started"),
                     finished=record.get("finished"))  # fmt: skip


def test_four_queued_small_jobs_are_not_four_seconds(tmp_path):
    now = datetime.now(UTC)
    iso = lambda s: (now - timedelta(seconds=s)).isoformat(timespec="seconds")  # noqa: E731
    jobs = [
        # two jobs ended: 16 s and 18 s from start to finish, of which 2 epochs of 0.5 s
        _js(tmp_path, 0, JobState.DONE, 2, 2, started=iso(40), finished=iso(24)),
        _js(tmp_path, 1, JobState.DONE, 2, 2, started=iso(22), finished=iso(4)),
        # one running for 13 s, one epoch left of 0.5 s
        _js(tmp_path, 2, JobState.RUNNING, 1, 2, started=iso(13)),
        *(_js(tmp_path, i, JobState.QUEUED) for i in range(3, 7)),
    ]
    walls, elapsed = W.timings(jobs)
    assert sorted(walls) == [16, 18] and elapsed["j2"] == pytest.approx(13, abs=1.5)
    # epochs alone: 0.5 s left, 1 s a job: "ETA 4s" for four queued jobs
    assert W.eta_s(jobs, {"j2": 0.5}) == pytest.approx(0.5 + 4 * 1.0)
    # with the wall times: 17 - 13 = 4 s left of the running job, then 4 x 17 s
    eta = W.eta_s(jobs, {"j2": 0.5}, walls, elapsed)
    assert eta == pytest.approx(4 + 4 * 17, abs=1.5)
    assert "ETA 1m1" in W.render(jobs, {"j2": 0.5}, walls, elapsed)[0]  # 72 s, give or take
    # before the first epoch of the running job: the wall time still answers
    assert W.eta_s(jobs, {}, walls, elapsed) == pytest.approx((4 + 1) * 17)
