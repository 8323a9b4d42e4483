"""A full disk, for real: a small tmpfs mounted for the test and filled up to a few KiB.

Mounting needs root (or CAP_SYS_ADMIN); elsewhere these tests are skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, TINY_JOB, run_job_process

from hepae_core.diskfull import RESUME_ADVICE

BUNDLED = REPO / "hepae_core" / "data" / "dijet_4d.root"


@pytest.fixture
def small_fs(tmp_path):
    """A 3 MiB tmpfs; unmounted afterwards."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small file system to fill")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(fs, leave_kib: int):
    """Fill ``fs`` up to ``leave_kib`` KiB free; returns the filler file."""
    filler = fs / "filler"
    with open(filler, "wb") as fh:
        fh.write(bytes(max(0, shutil.disk_usage(fs).free - leave_kib * 1024)))
    return filler


def _job(fs):
    job = fs / "job"
    job.mkdir()
    (job / "config.yaml").write_text(yaml.safe_dump(TINY_JOB))
    return job


def _leftovers(d) -> list[str]:
    """Temporary files (the atomic writers' '.NAME.*' files) left in ``d``."""
    return sorted(p.name for p in d.iterdir() if p.name.startswith(".") and p.name != ".lock")


def test_job_on_a_full_disk_says_so_and_resumes_once_there_is_room(small_fs):
    job = _job(small_fs)
    filler = fill(small_fs, 24)  # room for the model, not for the first checkpoint
    out = run_job_process(job)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: no space left on device while writing {job}/checkpoint.pt; {RESUME_ADVICE}"
    )
    assert RESUME_ADVICE == "free space and resubmit: the job resumes from its last checkpoint"
    state = json.loads((job / "state.json").read_text())
    assert state["state"] == "failed" and state["error_kind"] == "disk_full"
    assert state["exit_code"] == 1 and "checkpoint.pt" in state["reason"]
    assert _leftovers(job) == []
    assert not (job / "checkpoint.pt").exists() and not (job / "metrics.json").exists()

    filler.unlink()
    again = run_job_process(job)
    assert again.returncode == 0, again.stderr
    assert json.loads((job / "state.json").read_text())["state"] == "done"


def test_state_is_recorded_even_when_not_one_more_page_fits(small_fs):
    job = _job(small_fs)
    fill(small_fs, 8)
    out = run_job_process(job)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "no space left on device while writing" in out.stderr
    state = json.loads((job / "state.json").read_text())  # rewritten in place
    assert state["state"] == "failed" and state["error_kind"] == "disk_full"
    assert (state["epoch"], state["epochs"]) == (0, 2)
    assert _leftovers(job) == []


def test_hepae_train_on_a_full_disk(small_fs, tmp_path):
    cfg = tmp_path / "my.yaml"
    cfg.write_text(yaml.safe_dump(TINY_JOB))
    out_dir = small_fs / "run"
    fill(small_fs, 40)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-m", "hepae_core.cli", str(cfg), "--out", str(out_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert (
        out.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: no space left on device while writing {out_dir}/")
    )
    state = json.loads((out_dir / "state.json").read_text())
    assert state["state"] == "failed" and state["error_kind"] == "disk_full"


@pytest.mark.parametrize("suffix", [".h5", ".root"])
def test_convert_on_a_full_disk(small_fs, suffix):
    """Was a segmentation fault (exit 139) for HDF5; now one line, exit 1, nothing left."""
    out = small_fs / f"jets{suffix}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "hepae_core.cli.data", "convert", str(BUNDLED), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        f"error: no space left on device while writing {out}; free space (or choose another "
        "output) and run again; nothing was written"
    )
    assert list(small_fs.iterdir()) == []


def test_hepae_train_cannot_even_write_the_config(small_fs, tmp_path):
    cfg = tmp_path / "my.yaml"
    cfg.write_text(yaml.safe_dump(TINY_JOB))
    out_dir = small_fs / "run"
    out_dir.mkdir()
    fill(small_fs, 0)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-m", "hepae_core.cli", str(cfg), "--out", str(out_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        f"error: no space left on device while writing {out_dir}/config.yaml; free space and "
        "run hepae-train again; nothing was trained"
    )
    assert list(out_dir.iterdir()) == []


# ------------------------------------------------- hepae-data compress/decompress/evaluate

WRITE_ADVICE = "free space (or choose another output) and run again; nothing was written"


@pytest.fixture(scope="module")
def codec_job(tmp_path_factory):
    """A tiny trained job (on the ordinary disk) and a compressed file of the bundled jets."""
    d = tmp_path_factory.mktemp("codec")
    job = d / "job"
    job.mkdir()
    (job / "config.yaml").write_text(yaml.safe_dump(TINY_JOB))
    assert run_job_process(job).returncode == 0
    packed = d / "c.h5"
    done = _hepae_data("compress", "--model", job, BUNDLED, "-o", packed)
    assert done.returncode == 0, done.stderr
    return job, packed


def _hepae_data(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "hepae_core.cli.data", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize("what", ["compress", "decompress.h5", "decompress.root", "evaluate"])
def test_hepae_data_on_a_full_disk(small_fs, codec_job, what):
    """compress/decompress to .h5 segfaulted (exit 139) and named the input file; now one
    line naming the output, exit 1, nothing left under the output's name or hidden."""
    job, packed = codec_job
    before = BUNDLED.read_bytes(), packed.read_bytes()
    if what == "compress":
        out = small_fs / "c.h5"
        fill(small_fs, 200)  # the file is about 0.8 MB
        done = _hepae_data("compress", "--model", job, BUNDLED, "-o", out)
    elif what.startswith("decompress"):
        out = small_fs / f"r.{what.split('.')[1]}"
        fill(small_fs, 400)  # the jets are 2.8 MB as float32
        done = _hepae_data("decompress", packed, "-o", out)
    else:
        out = small_fs / "m.json"
        fill(small_fs, 0)
        done = _hepae_data("evaluate", "--model", job, BUNDLED, "-o", out)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip() == f"error: no space left on device while writing {out}; {WRITE_ADVICE}"
    )
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler"]
    assert (BUNDLED.read_bytes(), packed.read_bytes()) == before


@pytest.fixture
def read_only_fs(tmp_path):
    """A read-only tmpfs: every temporary file fails to be made there."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mnt)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_hepae_data_names_the_output_not_its_temporary_file(read_only_fs, codec_job):
    """An output directory that cannot be written: the message names the output the user
    gave (it named `.m.json.z87viwdg.tmp` or `.c.h5.dth3xxpn.h5`)."""
    job, packed = codec_job
    runs = {
        "c.h5": ("compress", "--model", job, BUNDLED),
        "r.root": ("decompress", packed),
        "v.h5": ("convert", BUNDLED),
        "m.json": ("evaluate", "--model", job, BUNDLED, "--max-jets", "2000"),
    }
    for name, argv in runs.items():
        out = read_only_fs / name
        done = _hepae_data(*argv, "-o", out)
        assert done.returncode in (1, 2) and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip() == f"error: {out}: Read-only file system", done.stderr
