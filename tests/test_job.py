"""One job directory, end to end, in a subprocess as a scheduler runs it."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, run_job_process, start_job_process, write_job

from hepae_core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from hepae_core.run.job import load_model


def test_job_trains_evaluates_and_writes_everything(tmp_path, tiny_job_config):
    cfg = tiny_job_config
    cfg["evaluate"]["plots"] = True
    job = write_job(tmp_path / "job", cfg)
    out = run_job_process(job)
    assert out.returncode == 0, out.stderr
    state = json.loads((job / "state.json").read_text())
    assert state["state"] == "done" and state["attempt"] == 1
    m = json.loads((job / "metrics.json").read_text())
    assert m["schema_version"] == 1 and m["status"] == "done"
    assert m["param.train.lr"] == 1e-3 and m["param.model.encoder"] == "16-8"
    assert m["train_jets"] + m["val_jets"] + m["test_jets"] == 3000
    for src in ("ae", "ae_f16latent", "float16", "bfloat16"):
        for var in ("pt", "eta", "phi", "E"):
            assert m[f"{src}.{var}.width"] > 0
    assert m["compression_ratio"] == pytest.approx(4 / 3)
    assert m["compression_ratio_f16"] == pytest.approx(8 / 3)
    # float16 keeps ~11 bits of mantissa: relative width about 2e-4
    assert 5e-5 < m["float16.pt.width"] < 5e-4
    assert m["encode_s_per_jet"] > 0 and m["n_params"] > 0
    hist = (job / "history.csv").read_text().splitlines()
    assert hist[0].startswith("epoch,train_loss,val_loss") and len(hist) == 3
    for name in ("loss.png", "input_vs_output.png", "residuals.png"):
        assert (job / "plots" / name).stat().st_size > 1000
    assert not (job / "checkpoint.pt").exists()
    assert not list(job.glob(".*tmp"))
    ev = np.load(job / "evaluation.npz")
    assert ev["inputs"].shape == ev["outputs"].shape and list(ev["variables"]) == [
        "pt",
        "eta",
        "phi",
        "E",
    ]
    # The saved model is usable without the training data.
    model, norm, _ = load_model(job / "model.pt")
    x = ev["inputs"][:100]
    with torch.no_grad():
        y = norm.inverse(model(torch.from_numpy(norm.forward(x))).numpy())
    np.testing.assert_allclose(y, ev["outputs"][:100], rtol=1e-4, atol=1e-4)

    again = run_job_process(job)
    assert again.returncode == 0 and "already done" in again.stderr
    assert json.loads((job / "state.json").read_text())["attempt"] == 1


def test_same_config_same_metrics(tmp_path, tiny_job_config):
    a = write_job(tmp_path / "a", tiny_job_config)
    b = write_job(tmp_path / "b", tiny_job_config)
    assert run_job_process(a).returncode == 0 and run_job_process(b).returncode == 0
    ma = json.loads((a / "metrics.json").read_text())
    mb = json.loads((b / "metrics.json").read_text())
    assert ma["best_val_loss"] == mb["best_val_loss"]
    assert ma["ae.pt.width"] == mb["ae.pt.width"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train": {"lrr": 1}}, "'train.lrr'"),
        ({"data": {"source": "missing.root"}}, "data file not found"),
        ({"data": {"source": "bundled:dijet_4d", "branches": {"pt": "ptt"}}}, "no branch 'ptt'"),
        ({"model": {"latent": 5}}, "choose a latent size below 4"),
    ],
)
def test_bad_input_fails_cleanly(tmp_path, tiny_job_config, change, message):
    cfg = tiny_job_config
    for section, values in change.items():
        cfg.setdefault(section, {}).update(values)
    job = write_job(tmp_path / "job", cfg)
    out = run_job_process(job)
    assert out.returncode == EXIT_BAD_INPUT
    assert message in out.stderr and "Traceback" not in out.stderr
    state = json.loads((job / "state.json").read_text())
    assert state["state"] == "failed" and state["error_kind"] == "bad_input"
    assert message in state["reason"]
    # Failed before its first epoch: status shows 0/N, never 0/None.
    assert state["epoch"] == 0 and state["epochs"] == 2
    assert sorted(p.name for p in job.iterdir()) == [
        ".lock",
        "config.yaml",
        "heartbeat",
        "state.json",
    ]


def test_config_not_a_mapping(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "config.yaml").write_text("- just\n- a list\n")
    out = run_job_process(job)
    assert out.returncode == EXIT_BAD_INPUT and "must be a mapping" in out.stderr


def test_nonfinite_inputs_are_counted_or_refused(tmp_path, tiny_job_config):
    import h5py

    rng = np.random.default_rng(0)
    n = 2000
    pt = rng.uniform(20, 200, n)
    pt[:7] = np.nan
    pt[7] = np.inf
    with h5py.File(tmp_path / "jets.h5", "w") as f:
        f["pt"], f["eta"] = pt, rng.normal(0, 1.5, n)
        f["phi"], f["E"] = rng.uniform(-3, 3, n), pt * 1.5
    cfg = tiny_job_config
    cfg["data"] = {"source": "../jets.h5", "max_jets": None}
    job = write_job(tmp_path / "job", cfg)
    assert run_job_process(job).returncode == 0
    assert json.loads((job / "metrics.json").read_text())["jets_nonfinite_dropped"] == 8
    cfg["data"]["nonfinite"] = "refuse"
    job2 = write_job(tmp_path / "job2", cfg)
    out = run_job_process(job2)
    assert out.returncode == EXIT_BAD_INPUT and "8 jets contain NaN or inf" in out.stderr


def test_sigterm_checkpoints_and_resume_finishes(tmp_path, tiny_job_config):
    cfg = tiny_job_config
    cfg["data"]["max_jets"] = 60000
    cfg["train"]["epochs"] = 40
    job = write_job(tmp_path / "job", cfg)
    proc = start_job_process(job)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for the first epoch to be recorded
        if (job / "history.csv").exists():
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    state = json.loads((job / "state.json").read_text())
    assert state["state"] == "interrupted" and state["signal"] == "SIGTERM"
    assert (job / "checkpoint.pt").is_file()
    epoch_at_stop = torch.load(job / "checkpoint.pt", weights_only=True)["epoch"]
    assert epoch_at_stop < 40

    cfg_done = yaml.safe_load((job / "config.yaml").read_text())
    assert cfg_done["train"]["epochs"] == 40
    out = run_job_process(job)
    assert out.returncode == 0, out.stderr
    assert "resuming from checkpoint.pt" in out.stderr
    m = json.loads((job / "metrics.json").read_text())
    assert m["epochs_run"] == 40 and m["attempts"] == 2
    assert len((job / "history.csv").read_text().splitlines()) == 41


def test_hepae_train_cli(tmp_path, tiny_job_config):
    cfg_file = tmp_path / "my.yaml"
    cfg_file.write_text(yaml.safe_dump(tiny_job_config))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-m", "hepae_core.cli", str(cfg_file), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "run" / "metrics.json").is_file()
    other = dict(tiny_job_config, seed=5)
    cfg_file.write_text(yaml.safe_dump(other))
    out = subprocess.run(
        [sys.executable, "-m", "hepae_core.cli", str(cfg_file), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 2 and "different config" in out.stderr


def test_no_config_in_dir(tmp_path):
    out = run_job_process(tmp_path)
    assert out.returncode == EXIT_BAD_INPUT and "no config.yaml" in out.stderr


def test_reevaluation_rewrites_the_same_evaluation(tmp_path, tiny_job_config):
    job = write_job(tmp_path / "job", tiny_job_config)
    assert run_job_process(job).returncode == 0
    first = dict(np.load(job / "evaluation.npz"))
    (job / "evaluation.npz").unlink()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-m", "hepae_core.evaluation.evaluate_job", str(job)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    again = np.load(job / "evaluation.npz")
    np.testing.assert_array_equal(again["inputs"], first["inputs"])
    np.testing.assert_allclose(again["outputs"], first["outputs"], rtol=1e-5, atol=1e-6)
    assert list(again["variables"]) == list(first["variables"])


def test_job_files_follow_the_umask(tmp_path, tiny_job_config):
    """Colleagues sharing a project directory can read a job's files (not mkstemp's 0600)."""
    from hepae_core.jobdir import FILE_MODE

    job = write_job(tmp_path / "job", tiny_job_config)
    assert run_job_process(job).returncode == 0
    for name in ("state.json", "metrics.json", "history.csv", "model.pt", "evaluation.npz"):
        assert (job / name).stat().st_mode & 0o777 == FILE_MODE
