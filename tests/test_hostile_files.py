"""Files the user has: a done job dir is never demoted by a failing environment check,
and ``hepae-train cfg --out DIR`` never overwrites a directory that is not its job's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest_gs import cli, write

from gridsearch import sites
from gridsearch.backends.base import JobRef
from gridsearch.backends.slurm import SlurmBackend
from hepae_core.jobdir import write_state


def _run_task(script: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, SLURM_ARRAY_TASK_ID="0", SLURM_ARRAY_JOB_ID="7")
    return subprocess.run(
        ["bash", str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def test_bad_environment_never_demotes_a_done_job(tmp_path):
    job = tmp_path / "camp" / "jobs" / "job0"
    job.mkdir(parents=True)
    (job / "config.yaml").write_text("seed: 0\n")
    write_state(job, "done", epoch=2, epochs=2)
    before = (job / "state.json").read_bytes()
    profile = sites.load_profile("slurm")
    profile.update(python=sys.executable, module="no_such_module_here")
    sub = SlurmBackend().submit([JobRef("job0", job, 0)], profile, tmp_path / "camp" / "s", True)
    proc = _run_task(sub.directory / "job.sh", sub.directory)
    assert proc.returncode == 78, proc.stdout + proc.stderr
    assert "bad environment" in (job / "job.log").read_text()  # still said, in the log
    assert (job / "state.json").read_bytes() == before  # and the done state kept
    assert not list(job.glob(".state.json*"))


def test_bad_environment_in_a_bundle_keeps_done_members(tmp_path, capsys):
    write(tmp_path / "s.yaml", "name: b\ngrid:\n  seed: [1, 2, 3]\n")
    code, _, err = cli(capsys, "plan", tmp_path / "s.yaml", "-o", tmp_path / "c")
    assert code == 0, err
    camp = tmp_path / "c"
    write(
        tmp_path / "sites" / "nopy.yaml",
        f"extends: slurm\npython: {sys.executable}\nmodule: no_such_module_here\n"
        "bundle_module: no_such_module_here\n",
    )
    code, _, err = cli(
        capsys, "submit", camp, "--site", "nopy", "--sites-dir", tmp_path / "sites",
        "--bundle", "3", "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    sub = next((camp / "submit").iterdir())
    members = [Path(ln.split(" ", 1)[1]) for ln in (sub / "jobs.txt").read_text().splitlines()]
    write_state(members[1], "done", epoch=2, epochs=2)
    kept = (members[1] / "state.json").read_bytes()
    proc = _run_task(sub / "job.sh", sub)
    assert proc.returncode == 78, proc.stdout + proc.stderr
    assert (members[1] / "state.json").read_bytes() == kept
    for d in (members[0], members[2]):
        st = json.loads((d / "state.json").read_text())
        assert st["state"] == "failed" and st["error_kind"] == "bad_environment"


# ---------------------------------------------------------------- hepae-train --out

TRAIN = [sys.executable, "-m", "hepae_core.cli"]
TINY = """\
data: {source: bundled:dijet_4d, max_jets: 2000}
model: {encoder: [8]}
train: {epochs: 1, batch_size: 256, threads: 1, device: DEVICE}
evaluate: {plots: false, timing_jets: 500}
"""


def _one_line(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    err = proc.stderr
    assert proc.returncode == code, proc.stdout + err
    assert "Traceback" not in proc.stdout + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_hepae_train_refuses_a_directory_that_is_not_its_job(tmp_path):
    cfg = write(tmp_path / "cfg.yaml", TINY.replace("DEVICE", "cpu"))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.json").write_text('{"mine": 1}')
    (out / "notes.txt").write_text("keep me")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = subprocess.run([*TRAIN, str(cfg), "--out", str(out)], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    line = _one_line(proc)
    assert str(out) in line and "not empty" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    proc = subprocess.run([*TRAIN, str(cfg), "--out", str(a_file)], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert "is not a directory" in _one_line(proc) and a_file.read_text() == "x"


def test_hepae_train_cuda_without_a_gpu_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        import pytest

        pytest.skip("this machine has a GPU")
    cfg = write(tmp_path / "cfg.yaml", TINY.replace("DEVICE", "cuda"))
    out = tmp_path / "job"  # new: allowed
    proc = subprocess.run([*TRAIN, str(cfg), "--out", str(out)], capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    said = [ln for ln in text.splitlines() if ln.startswith("error:")]
    assert len(said) == 1 and "'train.device'" in said[0] and "no CUDA device" in said[0], text
    state = json.loads((out / "state.json").read_text())
    assert state["state"] == "failed" and state["error_kind"] == "bad_input"


def test_hepae_train_escapes_control_characters_in_its_error(tmp_path):
    out = tmp_path / "x\x1b[2J"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    cfg = write(tmp_path / "cfg.yaml", TINY.replace("DEVICE", "cpu"))
    proc = subprocess.run([*TRAIN, str(cfg), "--out", str(out)], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    line = _one_line(proc)
    assert "\x1b" not in line and "x\\x1b[2J" in line
