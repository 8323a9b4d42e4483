"""The compressed file keeps its promises: bytes on disk = bytes credited, exact bit widths,
ranges from the file, integrity checks on every dataset, the jagged round trip."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import uproot
from conftest import TINY_JOB, write_job

from hepae_core.cli.data import main
from hepae_core.codecs.codec import (
    CorruptFile,
    compress,
    decompress,
    iter_decompressed,
    load_codec,
    parse_bounds,
)
from hepae_core.codecs.container import _header_hash
from hepae_core.data.jets import bundled_path
from hepae_core.errors import HepaeError
from hepae_core.run.job import run_job

VARS = ["pt", "eta", "phi", "E"]


def _job(root: Path, norm: str | None = None, **data: object) -> Path:
    cfg = copy.deepcopy(TINY_JOB)
    cfg["evaluate"]["bits"] = [8, 12]
    cfg["data"].update(data)
    if norm:
        cfg["normalisation"] = {"kind": norm}
    d = write_job(root / "job", cfg)
    assert run_job(d) == 0
    return d


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _job(tmp_path_factory.mktemp("codecfile"))


def _bundled(n: int | None = None) -> dict[str, np.ndarray]:
    with uproot.open(bundled_path("dijet_4d")) as f:
        return {v: f["jets"][v].array(library="np")[:n] for v in [*VARS, "m"]}


def _write(path: Path, cols: dict[str, np.ndarray]) -> Path:
    with uproot.recreate(path) as f:
        f.mktree("jets", {k: v.dtype for k, v in cols.items()})
        f["jets"].extend(cols)
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5000 real jets, an event number, one jet outside the model's domain (pt = -1)."""
    cols = {v: c for v, c in _bundled(5000).items() if v in VARS}
    cols["pt"][17] = -1.0
    cols["event"] = np.arange(5000, dtype=np.int64) // 2
    return _write(tmp_path_factory.mktemp("data") / "jets.root", cols)


def _storage(path: Path) -> dict[str, int]:
    """Bytes on disk of every dataset, read by h5py (independent of the writer's counts)."""
    out: dict[str, int] = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: out.__setitem__(n, o.id.get_storage_size())
                     if isinstance(o, h5py.Dataset) else None)  # fmt: skip
    return out


def _read(path: Path, names: list[str], tree: str = "jets") -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        return {k: f[tree][k].array(library="np") for k in names}


# --------------------------------------------------------------------------- bit widths


@pytest.mark.parametrize("bits", [1, 7, 12, 16, [12, 10, 8]])
def test_codes_take_exactly_the_bits_asked(job: Path, sample: Path, tmp_path: Path, bits) -> None:
    out = tmp_path / "c.h5"
    s = compress(job, sample, out, bits=bits, chunk_size=2000)
    widths = [bits] * 3 if isinstance(bits, int) else bits
    chunks = [2000, 2000, 1000]
    assert s["payload_bytes"] == sum(math.ceil(n * sum(widths) / 8) for n in chunks)
    assert _storage(out)["codes"] == s["payload_bytes"]
    assert abs(s["bits_per_jet"] - sum(widths)) < 0.01
    y = np.concatenate([c["pt"] for c, _ in iter_decompressed(out)])
    assert len(y) == 5000 and y[17] == -1.0
    if widths == [16] * 3:  # 16 bits is finer than the model: the round trip is its own
        x = _read(sample, ["pt"])["pt"]
        ok = x > 0
        assert np.median(np.abs(y[ok] / x[ok] - 1)) < 0.5


def test_cli_bits_12_stores_36_bits_a_jet(job: Path, sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.h5"
    assert main(["compress", "--model", str(job), str(sample), "-o", str(out), "--bits", "12",
                 "--quiet"]) == 0  # fmt: skip
    with h5py.File(out) as f:
        assert f.attrs["payload_bytes"] == 5000 * 36 // 8 == f["codes"].size


@pytest.mark.parametrize("bits", [0, 17, [12, 12], "12,x"])
def test_bad_bit_widths_are_refused(job: Path, sample: Path, tmp_path: Path, bits) -> None:
    with pytest.raises(HepaeError, match="--bits"):
        compress(job, sample, tmp_path / "c.h5", bits=bits)
    assert not (tmp_path / "c.h5").exists()


# --------------------------------------------------------------------------- accounting


def test_reported_bytes_are_the_bytes_on_disk(job: Path, sample: Path, tmp_path: Path) -> None:
    """Every category is the sum of its datasets' storage as h5py reads it, exactly."""
    out = tmp_path / "c.h5"
    s = compress(job, sample, out, bits=10, keep=["event"], chunk_size=1500,
                 max_error="pt=0.05,eta=0.05", entropy="ans")  # fmt: skip
    sizes = _storage(out)
    assert set(sizes) == {"model", "codes", "ranges", "chunks", "exceptions", "corrections/pt",
                          "corrections/eta", "ans_tables", "kept/event"}  # fmt: skip
    assert s["payload_bytes"] == sizes["codes"]
    assert s["model_bytes"] == sizes["model"] == (job / "model.pt").stat().st_size
    assert s["kept_bytes"] == sizes["kept/event"]
    # the side bytes hold the stored latent ranges (4 chunks x 3 latents x lo, hi float32)
    assert sizes["ranges"] == 4 * 3 * 2 * 4
    side = ("ranges", "chunks", "exceptions", "corrections/pt", "corrections/eta", "ans_tables")
    assert s["side_bytes"] == sum(sizes[k] for k in side)
    assert s["file_bytes"] == out.stat().st_size
    parts = s["payload_bytes"] + s["side_bytes"] + s["model_bytes"] + s["kept_bytes"]
    assert s["container_bytes"] == s["file_bytes"] - parts >= 0
    raw = 5000 * 16
    assert s["ratio"] == pytest.approx(raw / (s["payload_bytes"] + s["side_bytes"]))
    assert s["ratio_with_model"] == pytest.approx(raw / (parts - s["kept_bytes"]))
    # the model is paid for at break_even_jets, not one jet earlier
    per_jet = (s["payload_bytes"] + s["side_bytes"]) / 5000
    assert s["break_even_jets"] * (16 - per_jet) >= s["model_bytes"]
    assert (s["break_even_jets"] - 1) * (16 - per_jet) < s["model_bytes"]
    with h5py.File(out) as f:
        assert f.attrs["side_bytes"] == s["side_bytes"]


def test_file_size_is_the_credited_bytes_within_one_percent(job: Path, tmp_path: Path) -> None:
    """A real file (the bundled sample twice, 353,734 jets): payload + side + model is the
    file size within 1 %; the rest is HDF5's own metadata."""
    cols = _bundled()
    both = {v: np.concatenate([c, c]) for v, c in cols.items() if v in VARS}
    both["phi"][len(cols["pt"]) :] = -both["phi"][len(cols["pt"]) :]
    src = _write(tmp_path / "big.root", both)
    out = tmp_path / "big.h5"
    s = compress(job, src, out, bits=12)
    n = len(both["pt"])
    assert s["payload_bytes"] == sum(math.ceil(m * 36 / 8) for m in (100_000,) * 3 + (53_734,))
    credited = s["payload_bytes"] + s["side_bytes"] + s["model_bytes"]
    assert abs(out.stat().st_size - credited) <= 0.01 * out.stat().st_size
    assert s["ratio"] == pytest.approx(16 * n / (s["payload_bytes"] + s["side_bytes"]))
    assert 3.5 < s["ratio"] < 16 / 4.5  # 36 bits a jet, less the side bytes


# --------------------------------------------------------------------------- ranges


def test_ranges_come_from_the_file_and_nothing_clips(job: Path, tmp_path: Path) -> None:
    cols = {v: c for v, c in _bundled(4000).items() if v in VARS}
    for v in ("pt", "E"):  # another sample: 20x harder than the training jets
        cols[v] = cols[v] * 20
    cols["E"][5] = np.inf
    src = _write(tmp_path / "hard.root", cols)
    out = tmp_path / "hard.h5"
    s = compress(job, src, out, bits=12, chunk_size=4000)
    codec = load_codec(job)
    assert s["n_exceptions"] == 1  # E = inf: stored raw and counted
    assert s["n_outside_training"] > 100  # reported, and encoded anyway
    x = np.stack([cols[v] for v in VARS], axis=1).astype(np.float64)
    ok = np.isfinite(x).all(axis=1)
    z = codec.latents(x[ok])
    with h5py.File(out) as f:
        r = f["ranges"][0]
    assert (r[:, 0] == z.min(axis=0)).all() and (r[:, 1] == z.max(axis=0)).all()
    assert (r[:, 1] > np.asarray(codec.quantiser.hi)).any()  # beyond the training ranges
    y = next(iter_decompressed(out))[0]
    assert y["E"][5] == np.inf


def test_an_empty_file_is_refused(job: Path, tmp_path: Path) -> None:
    src = _write(tmp_path / "empty.root", {v: np.empty(0, np.float32) for v in VARS})
    with pytest.raises(HepaeError, match="no jets"):
        compress(job, src, tmp_path / "e.h5")
    assert not (tmp_path / "e.h5").exists()


# --------------------------------------------------------------------------- entropy coding


def test_entropy_coding_decodes_the_same_jets(job: Path, sample: Path, tmp_path: Path) -> None:
    plain = compress(job, sample, tmp_path / "p.h5", bits=12, chunk_size=5000)
    ans = compress(job, sample, tmp_path / "a.h5", bits=12, chunk_size=5000, entropy="ans")
    assert ans["payload_bytes"] < plain["payload_bytes"]
    a = next(iter_decompressed(tmp_path / "p.h5"))[0]
    b = next(iter_decompressed(tmp_path / "a.h5"))[0]
    for v in VARS:
        np.testing.assert_array_equal(a[v], b[v])


# --------------------------------------------------------------------------- integrity


def _flip(src: Path, dst: Path, offset: int) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x01]))


def _datasets(path: Path) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: out.__setitem__(n, (o.id.get_offset(), o.id.get_storage_size()))
                     if isinstance(o, h5py.Dataset) else None)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def full_files(job: Path, sample: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A flat file with every kind of dataset, and a jagged one (counts)."""
    d = tmp_path_factory.mktemp("full")
    flat = d / "flat.h5"
    compress(job, sample, flat, bits=9, keep=["event"], chunk_size=2000,
             max_error="pt=0.05,eta=0.05", entropy="ans")  # fmt: skip
    import awkward as ak

    cols = _bundled(1200)
    counts = np.tile([1, 2, 3], 200)
    jet = ak.zip({v: ak.unflatten(cols[v], counts) for v in VARS})
    src = d / "events.root"
    with uproot.recreate(src) as f:
        f.mktree("events", {"event": np.int64, "jet": jet.type.content})
        f["events"].extend({"event": np.arange(600, dtype=np.int64), "jet": jet})
    jagged = d / "jagged.h5"
    compress(job, src, jagged, tree="events", container="jet_", keep=["event"])
    return [flat, jagged]


def test_a_flipped_byte_in_any_dataset_is_refused(
    full_files: list[Path], tmp_path: Path, capsys
) -> None:
    seen = set()
    for src in full_files:
        for name, (offset, size) in _datasets(src).items():
            if size == 0:
                continue
            seen.add(name.split("/")[0])
            for where in (0, size // 2, size - 1):
                bad = tmp_path / "bad.h5"
                _flip(src, bad, offset + where)
                out = tmp_path / "r.root"
                with pytest.raises(CorruptFile, match=f"/{name} does not match its checksum"):
                    decompress(bad, out)
                assert not out.exists() and len(list(tmp_path.iterdir())) == 1
    assert seen == {"model", "codes", "ranges", "chunks", "exceptions", "corrections",
                    "ans_tables", "kept", "counts"}  # fmt: skip
    # the command line: one line naming the file, exit 1, nothing written
    name, (offset, size) = next(iter(_datasets(full_files[0]).items()))
    bad = tmp_path / "bad.h5"
    _flip(full_files[0], bad, offset + size // 2)
    capsys.readouterr()
    assert main(["decompress", str(bad), "-o", str(tmp_path / "r.h5"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "checksum" in err
    assert not (tmp_path / "r.h5").exists()


def test_changed_attributes_and_truncation_are_refused(full_files: list[Path], tmp_path: Path):
    bad = tmp_path / "bad.h5"
    shutil.copyfile(full_files[0], bad)
    with h5py.File(bad, "r+") as f:
        f.attrs["n_jets"] = 4000  # the codes of 5000 jets said to be 4000
    with pytest.raises(CorruptFile, match="attributes do not match"):
        decompress(bad, tmp_path / "r.root")
    shutil.copyfile(full_files[0], bad)
    with h5py.File(bad, "r+") as f:  # an attribute gone, the header checksum made to fit
        del f.attrs["latent"]
        f.attrs["header_sha256"] = _header_hash(dict(f.attrs))
    with pytest.raises(CorruptFile, match="damaged or incomplete"):
        decompress(bad, tmp_path / "r.root")
    cut = tmp_path / "cut.h5"
    data = full_files[0].read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CorruptFile):
        decompress(cut, tmp_path / "r.root")
    assert not (tmp_path / "r.root").exists()


def _rewrite(path: Path, change) -> None:
    """Change a file and recompute its checksums: consistent, but wrong."""
    with h5py.File(path, "r+") as f:
        change(f)
        checks = json.loads(f.attrs["checksums"])
        for name in checks:
            checks[name] = hashlib.sha256(np.ascontiguousarray(f[name][()]).tobytes()).hexdigest()
        f.attrs["checksums"] = json.dumps(checks, sort_keys=True)
        f.attrs["model_sha256"] = hashlib.sha256(f["model"][()].tobytes()).hexdigest()
        f.attrs["header_sha256"] = _header_hash(dict(f.attrs))


def test_a_model_that_does_not_fit_the_codes_is_refused(
    job: Path, full_files: list[Path], tmp_path: Path
) -> None:
    other = _job(tmp_path, variables=["pt", "eta", "phi", "m"])  # a (pt, eta, phi, m) model
    bad = tmp_path / "m.h5"
    shutil.copyfile(full_files[0], bad)

    def swap(f: h5py.File) -> None:
        del f["model"]
        f["model"] = np.frombuffer((other / "model.pt").read_bytes(), np.uint8)

    _rewrite(bad, swap)
    with pytest.raises(CorruptFile, match=r"does not fit the codes: its variables"):
        decompress(bad, tmp_path / "r.root")
    # the same variables, another normalisation
    retrained = _job(tmp_path / "again", norm="standard")
    shutil.copyfile(full_files[0], bad)

    def swap2(f: h5py.File) -> None:
        del f["model"]
        f["model"] = np.frombuffer((retrained / "model.pt").read_bytes(), np.uint8)

    _rewrite(bad, swap2)
    with pytest.raises(CorruptFile, match="normalisation differs"):
        decompress(bad, tmp_path / "r.root")
    # the same variables and normalisation, another latent size
    cfg = copy.deepcopy(TINY_JOB)
    cfg["model"]["latent"] = 2
    small = write_job(tmp_path / "small" / "job", cfg)
    assert run_job(small) == 0
    shutil.copyfile(full_files[0], bad)

    def swap3(f: h5py.File) -> None:
        del f["model"]
        f["model"] = np.frombuffer((small / "model.pt").read_bytes(), np.uint8)

    _rewrite(bad, swap3)
    with pytest.raises(CorruptFile, match="latent of 2 per 1 jets, the codes 3 per 1"):
        decompress(bad, tmp_path / "r.root")
    # codes cut short, the chunk table left as it was
    shutil.copyfile(full_files[0], bad)

    def cut(f: h5py.File) -> None:
        codes = f["codes"][()]
        del f["codes"]
        f["codes"] = codes[:100]

    _rewrite(bad, cut)
    with pytest.raises(CorruptFile, match="does not add up to the size of /codes"):
        decompress(bad, tmp_path / "r.root")
    assert not (tmp_path / "r.root").exists()


# --------------------------------------------------------------------------- units


def test_absolute_bounds_are_in_the_files_units_or_their_own() -> None:
    v, k = ["pt", "eta", "NegativeE"], ["relative", "absolute", "absolute"]
    assert parse_bounds("NegativeE=0.5", v, k, "MeV") == {"NegativeE": 0.5}  # file units
    assert parse_bounds("NegativeE=0.5GeV", v, k, "MeV") == {"NegativeE": 500.0}
    assert parse_bounds("NegativeE=500MeV", v, k, "GeV") == {"NegativeE": 0.5}
    assert parse_bounds("pt=0.01,eta=0.02", v, k, "MeV") == {"pt": 0.01, "eta": 0.02}
    refused = [("pt=0.5GeV", "a fraction"), ("eta=1GeV", "own units"),
               ("NegativeE=1parsec", "unknown unit"), ("eta=-1", "number > 0")]  # fmt: skip
    for spec, what in refused:
        with pytest.raises(HepaeError, match=what):
            parse_bounds(spec, v, k, "MeV")


# --------------------------------------------------------------------------- ATLAS jagged


def test_atlas_jagged_round_trip_keeps_every_branch_and_counter(job: Path, tmp_path: Path):
    from hepae_core.data.readers.synthetic import (
        ATLAS_CONTAINER,
        ATLAS_TREE,
        events_of,
        write_atlas_root,
    )

    rng = np.random.default_rng(3)
    cols = {v: c.astype(np.float64) for v, c in _bundled(3000).items()}
    cols["Width"] = rng.exponential(0.08, 3000)
    counts = events_of(3000, rng)
    src = write_atlas_root(tmp_path / "atlas.root", cols, counts)  # MeV, one counter a branch
    out, reco = tmp_path / "a.h5", tmp_path / "a.root"
    s = compress(job, src, out, tree=ATLAS_TREE, container=ATLAS_CONTAINER, units="MeV",
                 keep=["*"], max_error="pt=0.05")  # fmt: skip
    assert s["n_jets"] == 3000 and s["n_events"] == len(counts)
    decompress(out, reco)
    with uproot.open(src) as f:
        t_in = f[ATLAS_TREE]
        names = sorted(t_in.keys())
        x = {k: t_in[k].array(library="np") for k in names if k.startswith("n_")}
        kept = {k: t_in[k].array() for k in (ATLAS_CONTAINER + "m", ATLAS_CONTAINER + "Width")}
        pt_in = t_in[ATLAS_CONTAINER + "pt"].array()
    with uproot.open(reco) as f:
        t = f[ATLAS_TREE]
        assert sorted(t.keys()) == names  # 6 branches and their 6 counters, same names
        for c, v in x.items():
            np.testing.assert_array_equal(t[c].array(library="np"), v)
        for k, v in kept.items():
            assert t[k].array().tolist() == v.tolist()  # kept exactly, per event
        pt = t[ATLAS_CONTAINER + "pt"].array()
    import awkward as ak

    assert ak.num(pt).tolist() == counts.tolist()
    rel = np.abs(ak.to_numpy(ak.flatten(pt)) / ak.to_numpy(ak.flatten(pt_in)) - 1)
    assert rel.max() <= 0.05 * (1 + 1e-6)  # in MeV, as the input
    # to HDF5: flat jet columns and every counter as a per-event column, same names
    decompress(out, tmp_path / "a.h5")
    with h5py.File(tmp_path / "a.h5") as f:
        g = f[ATLAS_TREE]
        assert sorted(g.keys()) == names
        for c, v in x.items():
            np.testing.assert_array_equal(g[c][()], v)


# --------------------------------------------------------------------------- grouped models


def test_grouped_model_compresses_groups_of_jets(tmp_path: Path, sample: Path) -> None:
    gjob = _job(tmp_path, group={"size": 4})
    out = tmp_path / "g.h5"
    s = compress(gjob, sample, out, bits=12, chunk_size=2001, max_error="eta=0.5")
    units = sum(-(-n // 4) for n in (2001, 2001, 998))
    latent = load_codec(gjob).latent
    assert s["payload_bytes"] == sum(math.ceil(-(-n // 4) * latent * 12 / 8)
                                     for n in (2001, 2001, 998))  # fmt: skip
    assert units == 1252 and s["bits_per_jet_nominal"] == latent * 12 / 4
    y = np.concatenate([c["eta"] for c, _ in iter_decompressed(out)])
    x = _read(sample, ["eta"])["eta"]
    assert len(y) == 5000 and np.abs(y - x).max() <= 0.5 + 1e-6


# --------------------------------------------------------------------------- numpy model


@pytest.mark.parametrize("model", [{}, {"batch_norm": True, "activation": "silu"},
                                   {"activation": "elu", "latent_activation": True}])  # fmt: skip
def test_the_numpy_model_is_the_torch_model(tmp_path: Path, model: dict) -> None:
    """The codec runs per-jet models on numpy; they give torch's numbers to float32 rounding."""
    import torch

    from hepae_core.evaluation.evaluate import decode, encode

    cfg = copy.deepcopy(TINY_JOB)
    cfg["model"].update(model)
    d = write_job(tmp_path / "job", cfg)
    assert run_job(d) == 0
    codec = load_codec(d)
    x = np.stack([c for v, c in _bundled(3000).items() if v in VARS], axis=1).astype(np.float64)
    z = codec.latents(x)
    zt = encode(codec.model, codec.norm, x, torch.device("cpu"))
    np.testing.assert_allclose(z, zt, rtol=1e-4, atol=1e-5)
    yt = decode(codec.model, codec.norm, zt, torch.device("cpu"))
    np.testing.assert_allclose(codec.jets(zt, len(zt)), yt, rtol=1e-4, atol=1e-5)


def test_compress_and_decompress_do_not_import_torch(job: Path, sample: Path, tmp_path: Path):
    import subprocess
    import sys

    code = (
        "import sys; from hepae_core.codecs.codec import compress, decompress; "
        f"compress({str(job)!r}, {str(sample)!r}, {str(tmp_path / 'c.h5')!r}); "
        f"decompress({str(tmp_path / 'c.h5')!r}, {str(tmp_path / 'r.root')!r}); "
        "print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_jets_outside_the_codecs_domain_are_stored_raw_and_counted(job: Path, tmp_path: Path):
    """pt = E = 3e38 saturates the encoder and would decode as an ordinary jet: stored raw."""
    cols = {v: c for v, c in _bundled(3000).items() if v in VARS}
    cols["pt"][7] = cols["E"][7] = 3e38
    cols["pt"][9] = np.nan
    src = _write(tmp_path / "odd.root", cols)
    s = compress(job, src, tmp_path / "odd.h5")
    assert s["n_exceptions"] == 2 and s["n_decoded_off"] == 1
    y = next(iter_decompressed(tmp_path / "odd.h5"))[0]
    assert y["pt"][7] == y["E"][7] == np.float32(3e38) and np.isnan(y["pt"][9])
    ok = np.ones(3000, bool)
    ok[[7, 9]] = False
    assert np.median(np.abs(y["pt"][ok] / cols["pt"][ok] - 1)) < 0.5  # the rest, decoded


def test_two_stage_model_compresses_pairs_of_jets(job: Path, sample: Path, tmp_path: Path):
    shutil.copytree(job, tmp_path / "s1")
    cfg = copy.deepcopy(TINY_JOB)
    cfg["data"]["group"] = {"size": 2}
    cfg["model"].update(latent=4, stage1="../s1")
    d = write_job(tmp_path / "s2", cfg)
    assert run_job(d) == 0
    out = tmp_path / "t.h5"
    s = compress(d, sample, out, bits=[12, 10, 8, 6])
    assert s["model_kind"] == "two_stage" and s["group"] == 2
    assert s["payload_bytes"] == math.ceil(2500 * 36 / 8)  # 2,500 pairs x (12+10+8+6) bits
    assert s["model_bytes"] == (d / "model.pt").stat().st_size
    y = next(iter_decompressed(out))[0]
    assert len(y["pt"]) == 5000 and y["pt"][17] == -1.0


def test_the_file_codec_is_a_registry_codec(job: Path) -> None:
    """The same class serves the evaluation (codecs.JetCodec: training ranges, model bytes)."""
    from hepae_core.codecs.registry import JetCodec

    codec = load_codec(job)
    codec.bits = [10]
    assert isinstance(codec, JetCodec) and codec.name == "aeq10"
    assert codec.model_bytes == (job / "model.pt").stat().st_size
    x = np.stack([c for v, c in _bundled(1000).items() if v in VARS], axis=1).astype(np.float64)
    enc = codec.encode(x)
    assert enc.payload_bytes == 3 * math.ceil(1000 * 10 / 8)
    y = codec.decode(enc)
    assert y.shape == (1000, 4)
    assert np.median(np.abs(y[:, 0] / x[:, 0] - 1)) < 0.5


def test_a_chunk_of_events_without_jets(job: Path, tmp_path: Path) -> None:
    import awkward as ak

    cols = _bundled(900)
    counts = np.r_[np.zeros(50, int), np.tile([1, 2, 3], 150)]  # the first chunk: no jets
    jet = ak.zip({v: ak.unflatten(cols[v], counts) for v in VARS})
    src = tmp_path / "ev.root"
    with uproot.recreate(src) as f:
        f.mktree("events", {"event": np.int64, "jet": jet.type.content})
        f["events"].extend({"event": np.arange(len(counts), dtype=np.int64), "jet": jet})
    for entropy in ("none", "ans"):
        out = tmp_path / f"{entropy}.h5"
        s = compress(job, src, out, tree="events", container="jet_", chunk_size=50,
                     entropy=entropy, keep=["event"])  # fmt: skip
        assert s["n_jets"] == 900 and s["n_events"] == 500
        decompress(out, tmp_path / f"{entropy}.root")
        with uproot.open(tmp_path / f"{entropy}.root") as f:
            assert f["events"]["njet"].array(library="np").tolist() == counts.tolist()
            assert f["events"]["event"].array(library="np").tolist() == list(range(500))


def test_an_absolute_energy_bound_holds_in_the_files_units(tmp_path: Path) -> None:
    """NegativeE (absolute residual, an energy) in a MeV file: 0.5 means 0.5 MeV, 0.5GeV
    means 500 MeV; version 1 read 0.5 as GeV and allowed 500 MeV."""
    from hepae_core.data.readers.synthetic import (
        ATLAS_CONTAINER,
        ATLAS_TREE,
        atlas_columns,
        events_of,
        write_atlas_root,
    )

    rng = np.random.default_rng(5)
    cols = {k: v for k, v in atlas_columns(3000, rng).items()
            if k in ("pt", "eta", "phi", "NegativeE")}  # fmt: skip
    cols["NegativeE"] = cols["NegativeE"] - 0.5  # all negative: no exact zeros
    src = write_atlas_root(tmp_path / "a.root", cols, events_of(3000, rng))
    cfg = copy.deepcopy(TINY_JOB)
    cfg["data"] = {"source": str(src), "tree": ATLAS_TREE, "container": ATLAS_CONTAINER,
                   "units": "MeV", "variables": ["pt", "eta", "phi", "NegativeE"]}  # fmt: skip
    cfg["normalisation"] = {"kind": "standard"}
    d = write_job(tmp_path / "job", cfg)
    assert run_job(d) == 0
    with uproot.open(src) as f:
        x = ak_flat(f[ATLAS_TREE][ATLAS_CONTAINER + "NegativeE"].array())
    for bound, mev in (("0.5", 0.5), ("0.5GeV", 500.0)):
        out, reco = tmp_path / "c.h5", tmp_path / "r.root"
        for p in (out, reco):
            p.unlink(missing_ok=True)
        s = compress(d, src, out, tree=ATLAS_TREE, container=ATLAS_CONTAINER, units="MeV",
                     bits=6, max_error=f"NegativeE={bound}")  # fmt: skip
        decompress(out, reco)
        with uproot.open(reco) as f:
            y = ak_flat(f[ATLAS_TREE][ATLAS_CONTAINER + "NegativeE"].array())
        err = np.abs(y - x)
        assert err.max() <= mev * (1 + 1e-6)
        assert json.loads(s["max_error"]) == {"NegativeE": mev}
        if mev == 500.0:  # a 6-bit code of a weak model misses 0.5 MeV, not 500 MeV
            assert err.max() > 0.5


def ak_flat(a) -> np.ndarray:
    import awkward as ak

    return ak.to_numpy(ak.flatten(a)).astype(np.float64)
