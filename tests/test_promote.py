"""``gridsearch promote``: the best fraction of done jobs continues for more epochs from the
exact end of its training (final.pt), and is submitted as one array.

Real tiny trainings on the local backend. The key check: a job trained 2 epochs, then
promoted to 5, ends with the very losses of the same job trained 5 epochs in one go.
"""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest_gs import cli, write

from gridsearch.campaign import open_campaign
from gridsearch.errors import GridsearchError
from gridsearch.halving import parse_keep
from gridsearch.halving import promote as P
from gridsearch.status import JobStatus, campaign_status
from hepae_core.states import JobState

SPACE = """\
name: prom
base:
  data: {source: bundled:dijet_4d, max_jets: 3000}
  model: {encoder: [8]}
  train: {epochs: EPOCHS, batch_size: 256, threads: 1}
  evaluate: {plots: false, timing_jets: 1000}
grid:
  train.lr: LRS
  model.latent: LATENTS
"""


def _space(epochs: int, lrs: str, latents: str) -> str:
    return SPACE.replace("EPOCHS", str(epochs)).replace("LRS", lrs).replace("LATENTS", latents)


def _history(d: Path) -> list[dict]:
    with open(d / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    "text, value", [("1/3", Fraction(1, 3)), ("0.25", Fraction(1, 4)), ("1", 1), ("5", 5)]
)
def test_parse_keep(text, value):
    assert parse_keep(text) == value


@pytest.mark.parametrize("bad", ["0", "0/3", "4/3", "-1", "half", "1/0"])
def test_bad_keep(bad):
    with pytest.raises(GridsearchError, match="--keep"):
        parse_keep(bad)


@pytest.mark.parametrize(
    "spec, old, new", [("x3", 10, 30), ("x1.5", 10, 15), ("+20", 10, 30), ("90", 30, 90)]
)
def test_new_epochs(spec, old, new):
    assert P.new_epochs(spec, old) == new


@pytest.mark.parametrize("spec", ["x1", "+0", "10", "x0.5", "three", "-5"])
def test_new_epochs_must_add_epochs(spec):
    with pytest.raises(GridsearchError, match="--epochs"):
        P.new_epochs(spec, 10)


def _js(i: int, value: float | None, latent: int, state=JobState.DONE) -> JobStatus:
    metrics = None if value is None else {"best_val_loss": value}
    return JobStatus(
        index=i, id=f"j{i}", name=f"j{i}", dir=Path("."), state=state,
        params={"model.latent": latent}, metrics=metrics,
    )  # fmt: skip


def test_choose_ranks_per_group_and_rounds_up():
    jobs = [
        _js(0, 0.5, 2), _js(1, 0.1, 2), _js(2, 0.3, 2), _js(3, 0.2, 2),  # 4 of latent 2
        _js(4, 0.9, 3), _js(5, 0.7, 3),  # 2 of latent 3
        _js(6, None, 3, JobState.FAILED), _js(7, float("nan"), 3),
    ]  # fmt: skip
    chosen, ranked, skipped = P.choose(jobs, Fraction(1, 3), "best_val_loss", None)
    # 6 ranked; ceil(6/3) = 2 best overall: j1 (0.1), j3 (0.2)
    assert [p.js.id for p in chosen] == ["j1", "j3"] and ranked == 6
    assert skipped == {"not done (failed)": 1, "no finite metric": 1}
    chosen, _, _ = P.choose(jobs, Fraction(1, 3), "best_val_loss", "model.latent")
    # per latent: ceil(4/3) = 2 of latent 2 (j1, j3), ceil(2/3) = 1 of latent 3 (j5)
    assert [(p.js.id, p.rank, p.of) for p in chosen] == [("j1", 1, 4), ("j3", 2, 4), ("j5", 1, 2)]
    chosen, _, _ = P.choose(jobs, 1, "best_val_loss", "model.latent")
    assert [p.js.id for p in chosen] == ["j1", "j5"]
    with pytest.raises(GridsearchError, match=r"did you mean 'model\.latent'"):
        P.choose(jobs, 1, "best_val_loss", "model.latnt")
    with pytest.raises(GridsearchError, match="--metric"):
        P.choose(jobs, 1, "best_val_los", None)


def test_promote_continues_exactly_and_submits_only_the_promoted(tmp_path, capsys):
    from gridsearch.plan import plan

    camp = tmp_path / "camp"
    plan(write(tmp_path / "space.yaml", _space(2, "[1.0e-3, 1.0e-2]", "[2, 3]")), camp)
    code, out, err = cli(capsys, "submit", camp, "--site", "local", "--workers", "2")
    assert code == 0, out + err
    campaign = open_campaign(camp)
    before = {js.id: js for js in campaign_status(campaign, metrics=True, query=False)}
    best = sorted(before.values(), key=lambda js: js.metrics["best_val_loss"])

    code, out, err = cli(
        capsys, "promote", camp, "--keep", "1/3", "--epochs", "+3", "--per", "model.latent",
        "--site", "local", "--bundle", "2", "--workers", "1",
    )  # fmt: skip
    assert code == 0, out + err
    # per latent: 2 jobs each, ceil(2/3) = 1 promoted per latent value
    expected = {
        latent: min(
            (js for js in before.values() if js.params["model.latent"] == latent),
            key=lambda js: js.metrics["best_val_loss"],
        ).id
        for latent in (2, 3)
    }
    assert "promoted 2 of 4 ranked jobs" in out
    after = {js.id: js for js in campaign_status(campaign, metrics=True, query=False)}
    assert all(js.state == JobState.DONE for js in after.values())
    ledger = [json.loads(x) for x in (camp / "ledger.jsonl").read_text().splitlines()]
    prom = [r for r in ledger if r.get("event") == "promote"][-1]
    assert set(prom["jobs"]) == set(expected.values())
    assert ledger[-1]["tasks"] and sum(len(v) for v in ledger[-1]["tasks"].values()) == 2
    for jid, js in after.items():
        if jid in expected.values():
            assert js.epochs == 5 and js.epoch == 5
            rec = json.loads((js.dir / "promotion.json").read_text())
            assert (rec["rung"], rec["from_epochs"], rec["epochs"]) == (1, 2, 5)
            assert yaml.safe_load((js.dir / "config.yaml").read_text())["train"]["epochs"] == 5
            old = js.dir / rec["previous"]
            assert yaml.safe_load((old / "config.yaml").read_text())["train"]["epochs"] == 2
            assert json.loads((old / "metrics.json").read_text()) == before[jid].metrics
            assert "resuming from checkpoint.pt: epoch 2" in (js.dir / "job.log").read_text()
            assert len(_history(js.dir)) == 5
        else:  # not promoted: untouched
            assert js.epochs == 2 and not (js.dir / "promotion.json").exists()
    assert best[0].id in expected.values()
    code, out, _ = cli(capsys, "status", camp, "--json")
    rungs = {j["id"]: j["rung"] for j in json.loads(out)["jobs"]}
    assert rungs == {jid: int(jid in expected.values()) for jid in after}
    code, out, _ = cli(capsys, "status", camp)
    assert out.splitlines()[0].split()[5] == "rung"

    # Exactness: the promoted job equals the same grid point trained 5 epochs at once.
    one = next(iter(expected.values()))
    point = after[one].params
    camp5 = tmp_path / "camp5"
    space5 = _space(5, f"[{point['train.lr']!r}]", f"[{point['model.latent']}]")
    plan(write(tmp_path / "space5.yaml", space5), camp5)
    (target,) = campaign_status(open_campaign(camp5), query=False)
    assert target.params == point
    code, out, err = cli(capsys, "submit", camp5, "--site", "local", "--workers", "1")
    assert code == 0, out + err
    got = [float(r["val_loss"]) for r in _history(after[one].dir)]
    want = [float(r["val_loss"]) for r in _history(target.dir)]
    assert got == pytest.approx(want, rel=1e-6, abs=0)


def test_one_cycle_is_refused_and_nothing_changes(tmp_path, capsys):
    from gridsearch.plan import plan

    space = _space(1, "[1.0e-3]", "[3]").replace("threads: 1}", "threads: 1, schedule: one_cycle}")
    camp = tmp_path / "camp"
    plan(write(tmp_path / "space.yaml", space), camp)
    assert cli(capsys, "submit", camp, "--site", "local")[0] == 0
    job = next((camp / "jobs").iterdir())
    config = (job / "config.yaml").read_bytes()
    code, _, err = cli(capsys, "promote", camp, "--keep", "1", "--epochs", "x2", "--site", "local")
    assert code == 2 and "one_cycle" in err and "Traceback" not in err
    assert (job / "config.yaml").read_bytes() == config
    assert not (job / "promotion.json").exists() and not (job / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    "halving, match",
    [
        ("{rungs: [2]}", "halving.rungs"),
        ("{rungs: [4, 2]}", "halving.rungs"),
        ("{rungs: [1, 2], keep: 2/1}", "halving.keep"),
        ("{rungs: [1, 2], kep: 1/2}", "halving"),
        ("{rungs: [3, 9]}", "first rung is 3"),  # base train.epochs is 1
    ],
)
def test_bad_halving_is_refused_at_plan(tmp_path, halving, match):
    from gridsearch.plan import plan

    space = _space(1, "[1.0e-3]", "[3]") + f"halving: {halving}\n"
    with pytest.raises(GridsearchError, match=match):
        plan(write(tmp_path / "space.yaml", space), tmp_path / "camp")
    assert not (tmp_path / "camp" / "manifest.json").exists()


def test_halving_from_the_space_file_rung_by_rung(tmp_path, capsys):
    from gridsearch.plan import plan

    space = _space(1, "[1.0e-3, 1.0e-2]", "[3]") + "halving: {rungs: [1, 2, 3], keep: 1/2}\n"
    camp = tmp_path / "camp"
    plan(write(tmp_path / "space.yaml", space), camp)
    assert cli(capsys, "submit", camp, "--site", "local", "--workers", "2")[0] == 0
    # rung 0 -> 1: the better of the two (ceil(2 x 1/2) = 1) continues to 2 epochs
    code, out, err = cli(capsys, "promote", camp, "--site", "local")
    assert code == 0, out + err
    assert "promoted 1 of 2 ranked jobs" in out and "epochs 1 -> 2, rung 1" in out
    # rung 1 -> 2: only the rung-1 job competes; the one left at rung 0 stays there
    code, out, err = cli(capsys, "promote", camp, "--site", "local")
    assert code == 0, out + err
    assert "promoted 1 of 1 ranked jobs" in out and "epochs 2 -> 3, rung 2" in out
    assert "left at a lower rung than 1" in out
    code, out, err = cli(capsys, "promote", camp, "--site", "local")
    assert code == 2 and "all 3 rungs" in err
    code, out, _ = cli(capsys, "status", camp, "--json")
    assert sorted((j["rung"], j["epochs"]) for j in json.loads(out)["jobs"]) == [(0, 1), (2, 3)]
    # the summary marks the promoted job and draws where each run stopped
    code, out, err = cli(capsys, "summarize", camp, "--format", "png")
    assert code in (0, 1), out + err
    import h5py

    with h5py.File(camp / "summary" / "summary.h5") as f:
        jobs = f["jobs"]
        rung = dict(zip((s.decode() for s in jobs["job_id"][:]), jobs["rung"][:]))
        from_epochs = jobs["promoted_from_epochs"][:]
    assert sorted(np.nan_to_num(list(rung.values()))) == [0, 2]  # NaN: never promoted
    assert sorted(v for v in from_epochs if np.isfinite(v)) == [2]  # rung 1 -> 2 at epoch 2
    report = (camp / "summary" / "report.txt").read_text()
    assert "promoted to rung 2" in report
    assert (camp / "summary" / "figures" / "curves_halving.png").is_file()
