"""Two-stage (collective) models: stage 2 on groups of stage-1 latents, end to end."""

import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import run_job_process, write_job

from hepae_core.data.jets import resolve_source
from hepae_core.errors import EXIT_BAD_INPUT, HepaeError
from hepae_core.run.job import load_model
from hepae_core.training.two_stage import codec_from_payload

STAGE1 = {
    "data": {"source": "bundled:dijet_4d", "max_jets": 3000},
    "model": {"encoder": [16, 8], "latent": 3},
    "train": {"epochs": 2, "batch_size": 128, "threads": 1},
    "evaluate": {"plots": False, "timing_jets": 1000, "bits": [8]},
}


def stage2(stage1_path: str, size: int = 2, latent: int = 4) -> dict:
    cfg = copy.deepcopy(STAGE1)
    cfg["data"]["group"] = {"size": size}
    cfg["model"].update(latent=latent, stage1=stage1_path)
    return cfg


@pytest.fixture(scope="module")
def stage1_job(tmp_path_factory):
    job = write_job(tmp_path_factory.mktemp("s1") / "s1", STAGE1)
    out = run_job_process(job)
    assert out.returncode == 0, out.stderr
    return job


def test_stage2_trains_on_stage1_latents_and_stands_alone(tmp_path, stage1_job):
    s1 = tmp_path / "s1"
    shutil.copytree(stage1_job, s1)
    job = write_job(tmp_path / "s2", stage2("../s1", size=2, latent=4))
    out = run_job_process(job)
    assert out.returncode == 0, out.stderr
    m = json.loads((job / "metrics.json").read_text())
    assert m["n_inputs"] == 2 * 3  # G x z1
    assert m["stage1.latent"] == 3
    assert m["compression_ratio"] == pytest.approx(2 * 4 / 4)  # G x d / z2
    assert m["stage1.compression_ratio"] == pytest.approx(4 / 3)
    for v in ("pt", "eta", "phi", "E"):
        assert m[f"stage2_cost.{v}.width_ratio"] == pytest.approx(
            m[f"ae.{v}.width"] / m[f"stage1.{v}.width"]
        )
    assert m["slot0.jets"] + m["slot1.jets"] == m["test_jets"]
    # compress takes grouped and two-stage models too (pairs of consecutive jets here;
    # tests/test_codec_file.py checks the bytes and the round trip)
    src = resolve_source("bundled:dijet_4d")
    res = subprocess.run(
        [sys.executable, "-m", "hepae_core.cli.data", "compress", "--model", str(job), str(src),
         "-o", str(tmp_path / "c.h5"), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "c.h5").exists()
    # model.pt holds stage 1: remove the stage-1 job and decode through both stages
    shutil.rmtree(s1)
    model, norm, payload = load_model(job / "model.pt", allow_grouped=True)
    codec = codec_from_payload(model, norm, payload, torch.device("cpu"))
    ev = np.load(job / "evaluation.npz")
    x = ev["inputs"][:200]
    rows = np.arange(200).reshape(100, 2)
    y = codec.decode(codec.encode(x, rows)).reshape(200, 4)
    # evaluation.npz pairs the jets of each test group in order; the first 200 rows are
    # 100 whole groups (no padding: 3000 jets in groups of 2)
    np.testing.assert_allclose(y, ev["outputs"][:200], rtol=1e-3, atol=1e-3)
    with pytest.raises(HepaeError, match="grouped"):
        load_model(job / "model.pt")  # one-jet-at-a-time users are told, not fed garbage


@pytest.mark.parametrize(
    ("setup", "expect"),
    [
        ("missing", "no stage-1 job directory here"),
        ("unfinished", "not finished"),
        ("variables", "was trained on pt, eta, phi, E"),
        ("latent", "below 6"),
    ],
)
def test_bad_stage1_is_one_clear_line_and_exit_2(tmp_path, stage1_job, setup, expect):
    cfg = stage2("../s1")
    if setup == "unfinished":
        (tmp_path / "s1").mkdir()
        (tmp_path / "s1" / "config.yaml").write_text("{}\n")
    elif setup == "variables":
        shutil.copytree(stage1_job, tmp_path / "s1")
        cfg["data"]["variables"] = ["pt", "eta", "phi", "m"]
        cfg["normalisation"] = {"kind": "standard"}
    elif setup == "latent":  # G x z1 = 2 x 3: a stage-2 latent of 6 does not compress
        shutil.copytree(stage1_job, tmp_path / "s1")
        cfg["model"]["latent"] = 6
    job = write_job(tmp_path / "s2", cfg)
    out = run_job_process(job)
    assert out.returncode == EXIT_BAD_INPUT
    line = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    key = "model.latent" if setup == "latent" else "model.stage1"
    assert len(line) == 1 and key in line[0] and expect in line[0]
    assert "Traceback" not in out.stderr
    assert not (job / "model.pt").exists() and not (job / "metrics.json").exists()
