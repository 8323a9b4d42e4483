"""Real Slurm: ``gridsearch submit --all-rungs`` runs successive halving to its last rung
with one command. Behind each rung's array a promote job waits (``--dependency=afterany``);
once the rung has ended it promotes the best half and queues the next. ``status --watch``
follows the whole chain and ends only after the last rung."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from slurm import cluster

from gridsearch.campaign import open_campaign
from gridsearch.halving import rungs
from gridsearch.halving.promote import rung_of

REPO = Path(__file__).resolve().parent.parent

# The timeout only guards against a hang: the waits fail by themselves when nothing moves.
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(3600)]

SPACE = cluster.tiny_space("slurmrungs")
SPACE["grid"] = {"train.lr": [1e-3, 2e-3, 3e-3, 4e-3]}
SPACE["halving"] = {"rungs": [1, 2, 3], "keep": "1/2"}


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_all_rungs_on_real_slurm_with_one_submit(tmp_path, slurm):
    sites = cluster.write_test_site(tmp_path)
    camp, _, proc = cluster.plan_and_submit(tmp_path, SPACE, sites, "--all-rungs")
    assert "halving: queued job" in proc.stdout, proc.stdout
    # the promote job is held by the scheduler itself until rung 0's array has ended
    (link,) = [r for r in open_campaign(camp).ledger() if r.get("event") == rungs.RUNG_EVENT]
    (array,) = open_campaign(camp).submissions()[-1]["scheduler_ids"]
    shown = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", link["scheduler_id"]],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"Dependency=afterany:{array}" in shown, shown

    # --watch runs as long as the chain does: wait for it while the jobs make progress (it
    # must end by itself once the last rung has, or the wait stalls and fails).
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "gridsearch", "status", str(camp), "--watch", "--interval", "1"]
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as watch:
        try:
            cluster.wait_for("status --watch to end", lambda: watch.poll() is not None,
                             dirs=[camp], every=2)  # fmt: skip
        finally:
            if watch.poll() is None:
                watch.kill()
        out, err = watch.communicate()
    assert watch.returncode == 0, err
    assert "halving: job" in out  # it showed the promote job it waited for

    campaign = open_campaign(camp)
    links = [r for r in campaign.ledger() if r.get("event") == rungs.RUNG_EVENT]
    assert [r["rung"] for r in links] == [1, 2]  # one promote job per later rung
    subs = [s for s in campaign.submissions() if s.get("kind") == "slurm"]
    assert len(subs) == 3  # rung 0 (by hand), rungs 1 and 2 (by the promote jobs)
    for link, before in zip(links, subs, strict=False):
        assert link["after"] == before["scheduler_ids"]  # held behind that rung's array
        log = camp / link["dir"] / f"rung-{link['scheduler_id']}.out"
        assert "promoted " in log.read_text()
    assert "the last rung is reached" in log.read_text()

    status = json.loads(cluster.gridsearch("status", str(camp), "--json").stdout)
    assert [j["state"] for j in status["jobs"]] == ["done"] * 4, (
        [(j["state"], j["reason"]) for j in status["jobs"]],
        out[-1500:],
    )
    assert status["rung_chain"]["in_flight"] is False
    reached = sorted(rung_of(Path(j["dir"])) for j in status["jobs"])
    assert reached == [0, 0, 1, 2]
    # Each promotion to rung R came after every run of rung R-1 had finished (the promote
    # job waited for the whole array), from the jobs' own files.
    finished: dict[int, list[float]] = {}
    promoted: dict[int, list[float]] = {}
    for job in status["jobs"]:
        d = Path(job["dir"])
        top = rung_of(d)
        for r in range(top + 1):
            found = sorted((d / "previous").glob(f"*-rung{r}")) if r < top else []
            run_dir = found[0] if found else d
            state = json.loads((run_dir / "state.json").read_text())
            finished.setdefault(r, []).append(_time(state["finished"]))
            if (run_dir / "promotion.json").exists():
                rec = json.loads((run_dir / "promotion.json").read_text())
                promoted.setdefault(rec["rung"], []).append(_time(rec["time"]))
        rows = (d / "history.csv").read_text().splitlines()[1:]
        assert len(rows) == [1, 2, 3][top]
    assert sorted(len(v) for v in promoted.values()) == [1, 2]
    assert len(finished[0]) == 4
    for rung, times in promoted.items():
        assert min(times) >= max(finished[rung - 1]), (rung, times, finished)
