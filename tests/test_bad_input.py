"""Damaged and odd data files: one line naming the file, bad_input, exit 2, in the job and
in ``hepae-data inspect/convert``; never a traceback, never ``error: : ...``."""

from __future__ import annotations

import json
import os
import stat

import h5py
import numpy as np
import pytest
import uproot
from conftest import run_job_process, write_job

from hepae_core.cli.data import main
from hepae_core.jobdir import FILE_MODE

N = 3000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A good flat ROOT file and damaged or odd relatives of it."""
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(3)
    cols = {
        "pt": rng.uniform(20, 200, N),
        "eta": rng.normal(0, 1.5, N),
        "phi": rng.uniform(-3, 3, N),
        "E": rng.uniform(200, 400, N),
    }
    good = d / "good.root"
    with uproot.recreate(good) as f:
        t = f.mktree("jets", {k: "f8" for k in cols})
        t.extend(cols)
    with uproot.open(good) as f:
        branch = f["jets"]["E"]
        seek = int(branch.member("fBasketSeek")[0])
        size = int(branch.member("fBasketBytes")[0])
    data = good.read_bytes()
    out = {"good": good}
    out["header_only"] = d / "header_only.root"  # cut right after the file header
    out["header_only"].write_bytes(data[:200])
    out["cut_basket"] = d / "cut_basket.root"  # cut in the middle of E's basket
    out["cut_basket"].write_bytes(data[: seek + size // 2])
    zeroed = bytearray(data)  # E's compressed basket overwritten, file length kept
    zeroed[seek + 80 : seek + size] = bytes(size - 80)
    out["zeroed_basket"] = d / "zeroed_basket.root"
    out["zeroed_basket"].write_bytes(bytes(zeroed))
    out["strings"] = d / "strings.h5"
    with h5py.File(out["strings"], "w") as f:
        for k, v in cols.items():
            f[k] = v
        del f["phi"]
        f["phi"] = np.array([b"left", b"right"] * (N // 2))
    out["binary_csv"] = d / "events.csv"
    out["binary_csv"].write_bytes(
        b"1;ttbar;1;52000;0.3;j,120000,100000,0.5,1.0;\n" + bytes(range(128, 256)) + b"\n"
    )
    out["directory"] = d / "adir.root"
    out["directory"].mkdir()
    return out


DAMAGED = {
    "header_only": "cannot be opened as a ROOT file",
    "cut_basket": "looks truncated or corrupt",
    "zeroed_basket": "looks truncated or corrupt",
    "strings": "column 'phi' holds strings, not numbers",
    "binary_csv": "is not a text file",
    "directory": "is a directory, not a data file",
}


def _one_line_naming(err: str, path) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {path}: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_job_on_damaged_data_fails_as_bad_input(files, tmp_path, tiny_job_config, case):
    cfg = tiny_job_config
    cfg["data"] = {"source": str(files[case]), "max_jets": None}
    job = write_job(tmp_path / "job", cfg)
    out = run_job_process(job)
    assert out.returncode == 2, out.stderr
    line = _one_line_naming(out.stderr, files[case])
    assert DAMAGED[case] in line
    state = json.loads((job / "state.json").read_text())
    assert state["state"] == "failed" and state["error_kind"] == "bad_input"
    assert state["reason"].startswith(f"{files[case]}: ") and DAMAGED[case] in state["reason"]
    assert (state["epoch"], state["epochs"]) == (0, 2)


@pytest.mark.parametrize("case", sorted(set(DAMAGED) - {"strings"}))
def test_inspect_damaged_data(files, capsys, case):
    assert main(["inspect", str(files[case])]) == 2
    captured = capsys.readouterr()
    assert DAMAGED[case] in _one_line_naming(captured.err, files[case])


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_convert_damaged_data(files, tmp_path, capsys, case):
    out = tmp_path / "out.h5"
    rc = main(["convert", str(files[case]), str(out), "--branches", "pt,eta,phi,E"])
    assert rc == 2
    assert DAMAGED[case] in _one_line_naming(capsys.readouterr().err, files[case])
    assert list(tmp_path.iterdir()) == []


def test_inspect_shows_string_columns_without_a_range(files, capsys):
    assert main(["inspect", str(files["strings"])]) == 0
    out = capsys.readouterr().out
    assert "dataset 'phi': shape (3000,), |S5" in out


def test_convert_skips_string_columns_by_default(files, tmp_path, capsys):
    out = tmp_path / "out.h5"
    assert main(["convert", str(files["strings"]), str(out)]) == 0
    with h5py.File(out) as f:
        assert sorted(f) == ["E", "eta", "pt"]


def test_convert_writes_files_with_the_umask_mode(files, tmp_path):
    """Colleagues sharing a directory can read a converted file (not mkstemp's 0600)."""
    umask = os.umask(0o022)
    os.umask(umask)
    assert FILE_MODE == 0o666 & ~umask != 0o600  # the umask of this process, read at import
    for name in ("out.h5", "out.root"):
        assert main(["convert", str(files["good"]), str(tmp_path / name)]) == 0
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == FILE_MODE


def test_inspect_csv_with_nan_shows_finite_ranges_and_the_count(tmp_path, capsys):
    csv = tmp_path / "e.csv"
    csv.write_text(
        "1;ttbar;1;100;0.5;j,100,50,1.0,0.5;j,nan,60,nan,0.1;\n"
        "2;ttbar;1;50;0.1;j,200,150,-1.0,0.2;\n"
    )
    assert main(["inspect", str(csv)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "  E: min 100, max 200, 1 NaN  (likely GeV)" in out
    assert "  eta: min -1, max 1, 1 NaN" in out
    assert "  pt: min 50, max 150  (likely GeV)" in out
