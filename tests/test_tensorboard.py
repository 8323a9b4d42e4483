"""train.tensorboard: per-epoch scalars in the job dir, and a clear refusal without the extra."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, run_job_process, write_job

from hepae_core.training.tensorboard import TENSORBOARD_DIR


def _config(tiny_job_config: dict) -> dict:
    cfg = dict(tiny_job_config)
    cfg["train"] = {**cfg["train"], "epochs": 3, "tensorboard": True}
    return cfg


def test_job_writes_the_epochs_losses_for_tensorboard(tmp_path, tiny_job_config):
    pytest.importorskip("tensorboard", reason="the optional 'tensorboard' extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    job = write_job(tmp_path / "job", _config(tiny_job_config))
    proc = run_job_process(job)
    assert proc.returncode == 0, proc.stderr
    acc = EventAccumulator(str(job / TENSORBOARD_DIR))
    acc.Reload()
    with open(job / "history.csv", newline="") as fh:
        history = list(csv.DictReader(fh))
    for tag, column in (("loss/val", "val_loss"), ("loss/train", "train_loss"), ("lr", "lr")):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2, 3]
        # event files store float32: equal to history.csv's values to float32 precision
        for e, row in zip(events, history):
            assert e.value == pytest.approx(float(row[column]), rel=1e-6)


# Python started with the 'tensorboard' package made unimportable: a stand-in for a machine
# without the optional extra (the test suite itself installs it).
_WITHOUT_TENSORBOARD = """
import sys, runpy
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ImportError("No module named 'tensorboard'")
sys.meta_path.insert(0, Block())
sys.argv = ["hepae_core.job", sys.argv[1]]
runpy.run_module("hepae_core.job", run_name="__main__")
"""


def test_without_the_extra_the_job_says_what_to_install(tmp_path, tiny_job_config):
    job = write_job(tmp_path / "job", _config(tiny_job_config))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TENSORBOARD, str(job)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "'train.tensorboard'" in proc.stderr
    assert "pip install 'hepae-gridsearch[tensorboard]'" in proc.stderr
    state = json.loads((job / "state.json").read_text())
    assert state["state"] == "failed" and state["error_kind"] == "bad_input"
    assert not (job / "metrics.json").exists() and not (job / TENSORBOARD_DIR).exists()
