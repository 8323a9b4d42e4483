"""`hepae-data compress --model best --campaign DIR`: the run the summary names, for real.

A two-job campaign on the bundled sample (3000 jets, one epoch) is planned, trained
locally and summarised; `compress --model best` must pick the job with the lowest
best_val_loss (summary/best.json), compress with it at an error bound that every
decompressed value meets, and refuse in one line what it cannot do.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "hepae_core" / "data" / "dijet_4d.root"
BOUNDS = "pt=1e-2,eta=1e-2,phi=1e-2,E=1e-2"
SPACE = """\
name: tiny
base:
  data: {source: bundled:dijet_4d, variables: 4d, max_jets: 3000}
  normalisation: {kind: custom_4d}
  model: {encoder: [16], activation: tanh}
  train: {epochs: 1, batch_size: 256, device: cpu}
  evaluate: {plots: false, bits: [8, 12], timing_jets: 500}
grid:
  model.latent: [2, 3]
evaluate_on: bundled:dijet_4d   # the second sample (here all of the bundled jets)
"""


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def _compress(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    return _run("hepae_core.cli.data", "compress", *argv, cwd=cwd)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("best")
    (work / "space.yaml").write_text(SPACE, encoding="utf-8")
    for argv in (("gridsearch", "plan", "space.yaml", "-o", "camp"),
                 ("gridsearch", "submit", "camp", "--site", "local")):  # fmt: skip
        proc = _run(*argv, cwd=work)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return work


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_before_the_summary_best_is_refused_in_one_line(campaign: Path) -> None:
    (campaign / "camp" / "summary" / "best.json").unlink(missing_ok=True)
    err = _one_line_error(_compress(campaign, "--model", "best", "--campaign", "camp",
                                    str(SAMPLE), "-o", "x.h5"))  # fmt: skip
    assert "no summary yet" in err and "gridsearch summarize camp" in err
    assert not (campaign / "x.h5").exists()


def test_best_is_the_lowest_loss_and_every_value_meets_the_bound(campaign: Path) -> None:
    camp = campaign / "camp"
    proc = _run("gridsearch", "summarize", "camp", "--no-plots", cwd=campaign)
    assert proc.returncode in (0, 1), proc.stderr
    best = json.loads((camp / "summary" / "best.json").read_text())
    losses = {p.parent.name: json.loads(p.read_text())["best_val_loss"]
              for p in (camp / "jobs").glob("*/metrics.json")}  # fmt: skip
    assert len(losses) == 2
    assert best["job_id"] == min(losses, key=losses.get)
    assert best["metric"] == "best_val_loss" and best["value"] == pytest.approx(
        min(losses.values())
    )
    report = (camp / "summary" / "report.txt").read_text()
    assert best["job_dir"] in " ".join(report.split())  # the bottom line names it
    # evaluated on the space file's second sample by default, the predictive codec included
    assert "On another sample: " in report and "dijet_4d.root" in report
    heads = (["8", "pred"], ["12", "pred"])
    rows = [t.split() for t in report.splitlines() if t.split()[:2] in heads]
    assert len(rows) == 2, report
    for r in rows:  # k, best, ratio, other: best, ratio, then own/other per codec
        assert r[3] == "pred" and float(r[2]) > 1 and float(r[4]) > 1
        assert r[5] == f"{float(r[2]):.2f}/{float(r[4]):.2f}"

    proc = _compress(campaign, "--model", "best", "--campaign", "camp", str(SAMPLE), "-o",
                     "best.h5", "--max-error", BOUNDS)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"model: camp/{best['job_dir']} (the summary's best run" in proc.stdout
    # with a bound, best = the smaller file at it: the best autoencoder (values off the
    # bound stored raw) or the predictive codec fitted on the file; both sizes printed
    (verdict,) = [line for line in proc.stdout.splitlines() if line.startswith("codec: ")]
    sizes = [int(t.replace(",", "")) for t in re.findall(r"([\d,]+) B", verdict)]
    assert len(sizes) == 2 and (campaign / "best.h5").stat().st_size == min(sizes), verdict
    # a one-epoch model on 3000 jets: at 1 % nearly every jet misses the bound
    assert verdict.startswith("codec: the predictive codec, the smaller file"), verdict
    with h5py.File(campaign / "best.h5") as f:
        assert f.attrs["codec"] == "pred"
    assert not [p for p in campaign.iterdir() if p.name.startswith(".")]  # no temporary left
    proc = _run("hepae_core.cli.data", "decompress", "best.h5", "-o", "reco.h5", cwd=campaign)
    assert proc.returncode == 0, proc.stderr
    import uproot

    with uproot.open(SAMPLE) as f:
        tree = f["jets"]
        x = {v: tree[v].array(library="np") for v in ("pt", "eta", "phi", "E")}
    with h5py.File(campaign / "reco.h5") as f:
        group = f[next(iter(f.keys()))] if "pt" not in f else f
        y = {v: np.asarray(group[v]) for v in x}
    for v in ("pt", "E"):
        assert np.all(np.abs(y[v] - x[v]) <= 1e-2 * np.abs(x[v])), v
    assert np.all(np.abs(y["eta"] - x["eta"]) <= 1e-2)
    dphi = np.abs((y["phi"] - x["phi"] + np.pi) % (2 * np.pi) - np.pi)
    assert np.all(dphi <= 1e-2)


def test_a_job_id_and_the_refusals(campaign: Path) -> None:
    camp = campaign / "camp"
    ids = sorted(p.name for p in (camp / "jobs").iterdir())
    # a job id is that job's autoencoder, also with a bound (no other codec is tried)
    proc = _compress(campaign, "--model", ids[0], "--campaign", "camp", str(SAMPLE), "-o",
                     "one.h5", "--max-error", BOUNDS)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "codec: " not in proc.stdout and "error bound" in proc.stdout
    with h5py.File(campaign / "one.h5") as f:
        assert f.attrs["model_job_id"] == ids[0]
    err = _one_line_error(_compress(campaign, "--model", ids[0][:-1] + "x", "--campaign",
                                    "camp", str(SAMPLE), "-o", "y.h5"))  # fmt: skip
    assert f"no job '{ids[0][:-1]}x'" in err and "did you mean" in err
    err = _one_line_error(_compress(campaign, "--model", "best", str(SAMPLE), "-o", "y.h5"))
    assert "--model best --campaign DIR" in err
    err = _one_line_error(_compress(campaign, "--model", "best", "--campaign", "nowhere",
                                    str(SAMPLE), "-o", "y.h5"))  # fmt: skip
    assert "--campaign nowhere" in err and "no such directory" in err
    # a job that is not done
    state = camp / "jobs" / ids[1] / "state.json"
    kept = state.read_text()
    try:
        state.write_text(json.dumps({"state": "running"}))
        err = _one_line_error(_compress(campaign, "--model", ids[1], "--campaign", "camp",
                                        str(SAMPLE), "-o", "y.h5"))  # fmt: skip
        assert "is running, not done" in err
    finally:
        state.write_text(kept)
    assert not (campaign / "y.h5").exists()
    # a summary that names no best run (nothing finished with a finite metric)
    best = camp / "summary" / "best.json"
    saved = best.read_text()
    best.unlink()
    try:
        err = _one_line_error(_compress(campaign, "--model", "best", "--campaign", "camp",
                                        str(SAMPLE), "-o", "y.h5"))  # fmt: skip
        assert "names no best run" in err
    finally:
        best.write_text(saved)
