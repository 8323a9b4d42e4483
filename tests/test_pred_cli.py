"""``hepae-data compress --codec pred``: the error-bounded predictive codec from the command
line, no trained job. Every value within its bound, the bytes as reported, every dataset
checked before decoding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import uproot

from hepae_core.cli.data import main
from hepae_core.codecs.codec import CorruptFile, decompress
from hepae_core.codecs.pred_file import compress_pred
from hepae_core.data.jets import bundled_path

VARS = ["pt", "eta", "phi", "E"]
BOUNDS = "pt=1e-3,eta=1e-3,phi=1e-3,E=1e-3"


def _bundled() -> dict[str, np.ndarray]:
    with uproot.open(bundled_path("dijet_4d")) as f:
        return {v: f["jets"][v].array(library="np") for v in VARS}


def _write(path: Path, cols: dict[str, np.ndarray], tree: str = "jets") -> Path:
    with uproot.recreate(path) as f:
        f.mktree(tree, {k: v.dtype for k, v in cols.items()})
        f[tree].extend(cols)
    return path


def _read(path: Path, names: list[str], tree: str = "jets") -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        return {k: f[tree][k].array(library="np") for k in names}


def _storage(path: Path) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: out.__setitem__(n, (o.id.get_offset(), o.id.get_storage_size()))
                     if isinstance(o, h5py.Dataset) else None)  # fmt: skip
    return out


def _check_bounds(x: dict[str, np.ndarray], y: dict[str, np.ndarray], bounds: dict) -> None:
    """Every value within its bound: relative for pt, E and m, absolute for eta and phi."""
    for v, b in bounds.items():
        xv, yv = x[v].astype(np.float64), y[v].astype(np.float64)
        err = np.abs(yv - xv)
        limit = b * np.abs(xv) if v in ("pt", "E", "m") else np.full(len(xv), b)
        worst = int(np.argmax(err - limit))
        assert (err <= limit).all(), f"{v}: {err[worst]} > {limit[worst]} at {worst}"
        # and the bound is used, not beaten by storing everything exactly
        assert np.median(err / np.maximum(limit, 1e-300)) > 0.2


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The bundled real jets, compressed from the command line."""
    d = tmp_path_factory.mktemp("pred")
    out = d / "c.h5"
    assert main(["compress", str(bundled_path("dijet_4d")), "-o", str(out), "--codec", "pred",
                 "--max-error", BOUNDS, "--quiet"]) == 0  # fmt: skip
    return bundled_path("dijet_4d"), out


def test_round_trip_meets_every_bound(files, tmp_path: Path, capsys) -> None:
    _, out = files
    reco = tmp_path / "reco.root"
    assert main(["decompress", str(out), "-o", str(reco), "--quiet"]) == 0
    x, y = _bundled(), _read(reco, VARS)
    assert len(y["pt"]) == len(x["pt"]) == 176_867
    assert all(y[v].dtype == np.float32 for v in VARS)
    _check_bounds(x, y, dict.fromkeys(VARS, 1e-3))
    with h5py.File(out) as f:
        assert f.attrs["codec"] == "pred" and json.loads(f.attrs["variables"]) == VARS


def test_names_units_and_a_tree_of_another_name(tmp_path: Path) -> None:
    """--tree, --branches and an absolute energy bound with its unit (MeV file)."""
    cols = {f"j_{v}": c[:20_000] * (1000.0 if v in ("pt", "E", "m") else 1.0)
            for v, c in _bundled().items()}  # fmt: skip
    cols["j_m"] = np.abs(cols["j_E"] - cols["j_pt"]).astype(np.float32)
    src = _write(tmp_path / "mev.root", cols, tree="t")
    out = tmp_path / "c.h5"
    branches = ",".join(f"{v}=j_{v}" for v in [*VARS, "m"])
    assert main(["compress", str(src), "-o", str(out), "--codec", "pred", "--tree", "t",
                 "--variables", "pt,eta,phi,E,m", "--branches", branches, "--units", "MeV",
                 "--max-error", f"{BOUNDS},m=2e-3", "--quiet"]) == 0  # fmt: skip
    reco = tmp_path / "r.h5"
    assert main(["decompress", str(out), "-o", str(reco), "--quiet"]) == 0
    with h5py.File(reco) as f:
        y = {v: f["t"][f"j_{v}"][()] for v in [*VARS, "m"]}
    x = {v: cols[f"j_{v}"] for v in [*VARS, "m"]}
    _check_bounds(x, y, {**dict.fromkeys(VARS, 1e-3), "m": 2e-3})
    # the energy variables' bounds are relative: a unit on one is refused
    err = tmp_path / "e.h5"
    assert main(["compress", str(src), "-o", str(err), "--codec", "pred", "--tree", "t",
                 "--branches", branches, "--max-error", "pt=1GeV,eta=1e-3,phi=1e-3,E=1e-3",
                 "--quiet"]) == 2  # fmt: skip
    assert not err.exists()


def test_file_size_is_payload_side_and_model_within_one_percent(tmp_path: Path) -> None:
    cols = _bundled()
    both = {v: np.concatenate([c, c]) for v, c in cols.items()}
    both["phi"][len(cols["pt"]) :] = -both["phi"][len(cols["pt"]) :]
    src = _write(tmp_path / "big.root", both)
    out = tmp_path / "big.h5"
    s = compress_pred(src, out, max_error=BOUNDS)
    n = len(both["pt"])
    sizes = {k: v[1] for k, v in _storage(out).items()}
    assert set(sizes) == {"codes", "tables", "meta", "raw", "chunks", "model"}
    assert s["payload_bytes"] == sizes["codes"]
    assert s["model_bytes"] == sizes["model"] > 0  # the fitted predictor, counted
    assert s["side_bytes"] == sum(sizes[k] for k in ("tables", "meta", "raw", "chunks"))
    assert s["file_bytes"] == out.stat().st_size
    credited = s["payload_bytes"] + s["side_bytes"] + s["model_bytes"]
    assert s["container_bytes"] == s["file_bytes"] - credited >= 0
    assert abs(out.stat().st_size - credited) <= 0.01 * out.stat().st_size
    assert s["ratio"] == pytest.approx(16 * n / (s["payload_bytes"] + s["side_bytes"]))
    assert s["ratio_with_model"] == pytest.approx(16 * n / credited)
    assert s["ratio"] > 3.0  # SZ3 reaches 2.66 on these jets at a 12-bit bound
    with h5py.File(out) as f:
        assert f.attrs["fit_jets"] == 200_000 and len(f["chunks"]) == 4


def _flip(src: Path, dst: Path, offset: int) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x01]))


def test_a_flipped_byte_in_any_dataset_is_refused(files, tmp_path: Path, capsys) -> None:
    _, src = files
    seen = set()
    for name, (offset, size) in _storage(src).items():
        if size == 0:
            continue
        seen.add(name)
        for where in (0, size // 2, size - 1):
            bad = tmp_path / "bad.h5"
            _flip(src, bad, offset + where)
            out = tmp_path / "r.root"
            with pytest.raises(CorruptFile, match=f"/{name} does not match its checksum"):
                decompress(bad, out)
            assert not out.exists() and len(list(tmp_path.iterdir())) == 1
    assert seen == {"codes", "tables", "meta", "raw", "chunks", "model"}
    with h5py.File(tmp_path / "bad.h5", "r+") as f:  # an attribute changed
        f.attrs["n_jets"] = 1000
    with pytest.raises(CorruptFile, match="attributes do not match"):
        decompress(tmp_path / "bad.h5", tmp_path / "r.root")
    # the command line: one line naming the file, exit 1, nothing written
    offset, size = _storage(src)["codes"]
    bad = tmp_path / "bad.h5"
    _flip(src, bad, offset + size // 2)
    capsys.readouterr()
    assert main(["decompress", str(bad), "-o", str(tmp_path / "r.h5"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "checksum" in err
    assert not (tmp_path / "r.h5").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--max-error", "pt=1e-3,eta=1e-3"], ["no bound for phi, E"]),
        ([], ["--max-error", "every variable"]),
        (["--max-error", f"{BOUNDS},m=1e-3"], ["'m' is not compressed"]),
        (["--max-error", BOUNDS, "--model", "job"], ["--model", "not used by --codec pred"]),
        (["--max-error", BOUNDS, "--bits", "8"], ["--bits", "not used"]),
    ],
)
def test_refusals_are_one_line_and_write_nothing(
    tmp_path: Path, capsys, args: list[str], words: list[str]
) -> None:
    out = tmp_path / "c.h5"
    rc = main(["compress", str(bundled_path("dijet_4d")), "-o", str(out), "--codec", "pred",
               "--quiet", *args])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert all(w in err for w in words), err
    assert list(tmp_path.iterdir()) == []


def test_the_autoencoder_path_still_needs_its_model(tmp_path: Path, capsys) -> None:
    out = tmp_path / "c.h5"
    assert main(["compress", str(bundled_path("dijet_4d")), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--model" in err
    assert not out.exists()


def test_inputs_and_existing_outputs_are_never_overwritten(tmp_path: Path, capsys) -> None:
    """An HDF5 input named as the output, an existing output without --force, a file of no
    jets: refused in one line, the files as they were."""
    cols = {v: c[:3000] for v, c in _bundled().items()}
    src = tmp_path / "jets.h5"
    with h5py.File(src, "w") as f:
        for v, c in cols.items():
            f[v] = c
    before = src.read_bytes()
    args = ["--codec", "pred", "--max-error", BOUNDS, "--quiet"]
    assert main(["compress", str(src), "-o", str(src), "--force", *args]) == 2
    assert "input" in capsys.readouterr().err
    assert src.read_bytes() == before
    out = tmp_path / "c.h5"
    out.write_bytes(b"mine")
    assert main(["compress", str(src), "-o", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--force" in err
    assert out.read_bytes() == b"mine"
    assert main(["compress", str(src), "-o", str(out), "--force", *args]) == 0
    assert out.read_bytes()[:4] != b"mine"
    empty = _write(tmp_path / "empty.root", {v: c[:0] for v, c in cols.items()})
    assert main(["compress", str(empty), "-o", str(tmp_path / "e.h5"), *args]) != 0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "e.h5").exists()


def test_a_file_written_before_the_exact_1_symbol_still_decodes(tmp_path: Path) -> None:
    """tests/data/pred_layout1_3000jets.h5 was written by the released 0.1.0 codec (symbols
    ESC, ZERO, codes from 2; 8 size contexts; no ``symbols`` attribute) from the first
    3000 jets of the bundled sample at 1e-3 bounds. It must decode to those jets within the
    bounds, not be refused as damaged."""
    src = Path(__file__).parent / "data" / "pred_layout1_3000jets.h5"
    with h5py.File(src, "r") as f:
        assert "symbols" not in f.attrs  # really the old layout
    out = tmp_path / "old.root"
    assert main(["decompress", str(src), "-o", str(out)]) == 0
    got = _read(out, VARS)
    want = {v: c[:3000].astype(np.float64) for v, c in _bundled().items()}
    for v in ("pt", "E"):
        rel = np.abs(got[v] / want[v] - 1)
        assert rel.max() <= 1e-3 and rel.max() > 1e-4  # lossy, within the bound
    for v in ("eta", "phi"):
        assert np.abs(got[v] - want[v]).max() <= 1e-3
