"""hepae-data compress / decompress / evaluate on real ROOT and HDF5 files."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import uproot
from conftest import TINY_JOB, write_job

from hepae_core.cli.data import main
from hepae_core.codecs.codec import FORMAT, dequantise, load_codec, quantise, sparse_read
from hepae_core.codecs.quantise import unpack_bits
from hepae_core.data.jets import bundled_path
from hepae_core.run.job import run_job

VARS = ["pt", "eta", "phi", "E"]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = copy.deepcopy(TINY_JOB)
    cfg["evaluate"]["bits"] = [8, 12]
    d = write_job(tmp_path_factory.mktemp("codec") / "job", cfg)
    assert run_job(d) == 0
    return d


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5000 real jets with an event number, and one jet no log can take (pt = -1)."""
    with uproot.open(bundled_path("dijet_4d")) as f:
        cols = {v: f["jets"][v].array(library="np")[:5000] for v in VARS}
    cols["pt"][17] = -1.0
    cols["event"] = np.arange(5000, dtype=np.int64) // 2
    path = tmp_path_factory.mktemp("data") / "jets.root"
    with uproot.recreate(path) as f:
        f.mktree("jets", {k: v.dtype for k, v in cols.items()})
        f["jets"].extend(cols)
    return path


def test_compress_decompress_round_trip(job: Path, sample: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "c.h5"
    assert main(["compress", "--model", str(job), str(sample), "-o", str(out), "--bits", "12",
                 "--keep", "event", "--quiet", "--chunk-size", "1500"]) == 0  # fmt: skip
    cap = capsys.readouterr()
    text = cap.out + cap.err
    with h5py.File(out) as f:
        a = dict(f.attrs)
        assert a["format"] == FORMAT and a["format_version"] == 2
        # 3 latent values x 12 bits = 36 bits a jet, packed: 4.5 bytes, not 3 uint16
        assert f["codes"].dtype == np.uint8 and f["codes"].shape == (5000 * 36 // 8,)
        assert a["input_sha256"] == hashlib.sha256(sample.read_bytes()).hexdigest()
        assert a["model_job_id"] == job.name and a["n_exceptions"] == 1
        assert f["model"][()].tobytes() == (job / "model.pt").read_bytes()
        table = f["chunks"][()]
        cols = json.loads(a["chunk_columns"])
        ranges = f["ranges"][()]
        packed = f["codes"][()]
        exc = f["exceptions"][()].tobytes()
    assert table[:, cols.index("jets")].tolist() == [1500, 1500, 1500, 500]
    rows, _ = sparse_read(exc[: table[0, cols.index("exceptions_bytes")]], 1, 4)
    assert rows.tolist() == [17]
    assert a["payload_bytes"] == 5000 * 36 // 8 and a["raw_float32_bytes"] == 5000 * 16
    assert "ratio 3.56" in text  # 16 bytes in, 4.5 out

    reco = tmp_path / "reco.root"
    assert main(["decompress", str(out), "-o", str(reco), "--quiet"]) == 0
    with uproot.open(sample) as f:
        x = {k: f["jets"][k].array(library="np") for k in [*VARS, "event"]}
    with uproot.open(reco) as f:
        t = f["jets"]
        assert sorted(t.keys()) == sorted([*VARS, "event"])
        y = {k: t[k].array(library="np") for k in [*VARS, "event"]}
    assert np.array_equal(y["event"], x["event"]) and y["event"].dtype == np.int64
    assert y["pt"][17] == -1.0  # stored raw, restored exactly

    # the decoded jets are the model's decoder on the codes over each chunk's own ranges,
    # and the codes are the quantised latent of the input jets
    codec = load_codec(job)
    xs = np.stack([x[v] for v in VARS], axis=1).astype(np.float64)
    got = np.stack([y[v] for v in VARS], axis=1)
    starts = np.r_[0, np.cumsum(table[:, cols.index("jets")])]
    codes = unpack_bits(packed, [12, 12, 12], 5000)
    for i in range(len(table)):
        lo, hi = starts[i], starts[i + 1]
        ok = np.ones(hi - lo, bool)
        if lo <= 17 < hi:
            ok[17 - lo] = False
        r = ranges[i]
        z = codec.latents(xs[lo:hi][ok])
        assert np.array_equal(quantise(z, r[:, 0], r[:, 1], [12] * 3), codes[lo:hi][ok])
        assert (r[:, 0] == z.min(axis=0)).all() and (r[:, 1] == z.max(axis=0)).all()
        expect = codec.jets(dequantise(codes[lo:hi], r[:, 0], r[:, 1], [12] * 3), hi - lo)
        np.testing.assert_allclose(got[lo:hi][ok], expect[ok], rtol=1e-6)

    h5 = tmp_path / "reco.h5"
    assert main(["decompress", str(out), "-o", str(h5), "--quiet"]) == 0
    with h5py.File(h5) as f:
        np.testing.assert_array_equal(f["pt"][()], y["pt"])


def test_bad_inputs_one_line_and_nothing_written(
    job: Path, sample: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "c.h5"
    # a file without the model's branches
    nobranch = tmp_path / "noe.root"
    with uproot.recreate(nobranch) as f:
        f.mktree("jets", {"pt": np.float32, "eta": np.float32})
        f["jets"].extend({"pt": np.ones(3, np.float32), "eta": np.zeros(3, np.float32)})
    assert main(["compress", "--model", str(job), str(nobranch), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "phi" in err and "noe.root" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [nobranch]
    # a directory that is not a finished job
    assert main(["compress", "--model", str(tmp_path), str(sample), "-o", str(out)]) == 2
    assert "model.pt" in capsys.readouterr().err
    # an HDF5 file that is not ours
    alien = tmp_path / "alien.h5"
    with h5py.File(alien, "w") as f:
        f["x"] = np.arange(3)
    assert main(["decompress", str(alien), "-o", str(tmp_path / "r.root")]) == 2
    assert "not a file written by `hepae-data compress`" in capsys.readouterr().err
    assert not (tmp_path / "r.root").exists()
    # an existing output is never overwritten without --force
    assert main(["compress", "--model", str(job), str(sample), "-o", str(alien), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err


def test_evaluate_on_another_sample(job: Path, sample: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.json"
    assert main(["evaluate", "--model", str(job), str(sample), "-o", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["sample_jets"] == 5000 and m["norm_domain_errors"] == 1
    assert m["sq12.bits_per_jet"] == 48 and "aeq8.pt.width" in m
    text = capsys.readouterr().out
    assert "1 outside the normalisation's domain" in text and "pt" in text


def test_error_bounded_mode(job: Path, sample: Path, tmp_path: Path, capsys) -> None:
    out, reco = tmp_path / "b.h5", tmp_path / "b.root"
    assert main(["compress", "--model", str(job), str(sample), "-o", str(out), "--quiet",
                 "--bits", "8", "--max-error", "pt=0.01,eta=0.02"]) == 0  # fmt: skip
    cap = capsys.readouterr()
    err = cap.out + cap.err
    assert main(["decompress", str(out), "-o", str(reco), "--quiet"]) == 0
    with uproot.open(sample) as f:
        x = {v: f["jets"][v].array(library="np") for v in VARS}
    with uproot.open(reco) as f:
        y = {v: f["jets"][v].array(library="np") for v in VARS}
    ok = x["pt"] > 0
    rel = np.abs(y["pt"][ok] / x["pt"][ok] - 1)
    assert rel.max() <= 0.01 * (1 + 1e-6)
    assert np.abs(y["eta"] - x["eta"]).max() <= 0.02 + 1e-6
    with h5py.File(out) as f:
        cols = json.loads(f.attrs["chunk_columns"])
        n_pt = int(f["chunks"][()][:, cols.index("corrections.pt")].sum())
        assert json.loads(f.attrs["corrections"])["pt"] == n_pt
        jets = f.attrs["jets_corrected"]
        # stored sparse and compressed: fewer bytes than 8 per correction (row + value)
        assert 0 < f["corrections/pt"].shape[0] < 8 * n_pt
    # a two-epoch model misses 1 % on many jets: they are corrected, and said so
    assert 0 < n_pt <= jets < 5000
    assert f"{jets} jets (" in err and "corrected" in err
    # without the bound, the same codes miss it somewhere
    assert main(["compress", "--model", str(job), str(sample), "-o", str(tmp_path / "n.h5"),
                 "--quiet", "--bits", "8"]) == 0  # fmt: skip
    assert main(["decompress", str(tmp_path / "n.h5"), "-o", str(tmp_path / "n.root"),
                 "--quiet"]) == 0  # fmt: skip
    with uproot.open(tmp_path / "n.root") as f:
        pt = f["jets"]["pt"].array(library="np")
    assert np.abs(pt[ok] / x["pt"][ok] - 1).max() > 0.01
    assert main(["compress", "--model", str(job), str(sample), "-o", str(tmp_path / "z.h5"),
                 "--max-error", "m=0.1"]) == 2  # fmt: skip
    assert "no variable 'm'" in capsys.readouterr().err


def test_summarize_evaluate_on_runs_the_best_jobs(job: Path, sample: Path) -> None:
    import pandas as pd

    from results.evaluate_on import evaluate_best
    from results.report import rank

    m = json.loads((job / "metrics.json").read_text())
    used = pd.DataFrame([{**m, "job_id": "j1", "name": "tiny", "job_dir": job.name,
                          "state": "done"}])  # fmt: skip
    groups = rank(used, "best_val_loss", None)
    out = job.parent / "summary"
    lines, problems, path = evaluate_best(job.parent, out, used, groups, None, sample)
    assert problems == []
    text = "\n".join(lines)
    assert "5000 jets, 1 outside the normalisation's domain" in text
    assert "pt: width" in text and "on the job's test jets" in text
    row = path.read_text().splitlines()
    assert row[0].startswith("group,job_id,name,on.") and len(row) == 2
    cached = out / "evaluate_on" / "jets" / "j1.json"
    t = cached.stat().st_mtime_ns
    evaluate_best(job.parent, out, used, groups, None, sample)  # reused, not recomputed
    assert cached.stat().st_mtime_ns == t
    _, problems, _ = evaluate_best(job.parent, out, used, groups, None, job / "nope.root")
    assert "no such file" in problems[0]


def test_jagged_events_come_back_as_events(job: Path, tmp_path: Path) -> None:
    import awkward as ak

    with uproot.open(bundled_path("dijet_4d")) as f:
        cols = {v: f["jets"][v].array(library="np")[:3000] for v in [*VARS, "m"]}
    counts = np.tile([1, 2, 3, 0, 4], 300)  # 1500 events, 3000 jets, some without jets
    jet = ak.zip({v: ak.unflatten(cols[v], counts) for v in [*VARS, "m"]})
    src = tmp_path / "events.root"
    with uproot.recreate(src) as f:
        f.mktree("events", {"event": np.int64, "jet": jet.type.content})
        f["events"].extend({"event": np.arange(1500, dtype=np.int64) + 7, "jet": jet})
    out, reco = tmp_path / "ev.h5", tmp_path / "ev.root"
    args = ["--tree", "events", "--container", "jet_", "--keep", "event,jet_m,njet",
            "--chunk-size", "700"]  # fmt: skip
    assert main(["compress", "--model", str(job), str(src), "-o", str(out), "--quiet", *args]) == 0
    with h5py.File(out) as f:
        assert f.attrs["n_jets"] == 3000 and f.attrs["n_events"] == 1500
        assert f.attrs["counter"] == "njet"
    assert main(["decompress", str(out), "-o", str(reco), "--quiet"]) == 0
    with uproot.open(reco) as f:
        t = f["events"]
        assert sorted(t.keys()) == sorted(["event", "njet", *(f"jet_{v}" for v in [*VARS, "m"])])
        # a kept jet branch comes back exactly, in its events
        assert ak.to_numpy(ak.flatten(t["jet_m"].array())).tolist() == cols["m"].tolist()
        assert t["njet"].array(library="np").tolist() == counts.tolist()
        assert t["event"].array(library="np").tolist() == list(range(7, 1507))
        pt = t["jet_pt"].array()
    assert ak.num(pt).tolist() == counts.tolist()
    assert main(["decompress", str(out), "-o", str(tmp_path / "evreco.h5"), "--quiet"]) == 0
    with h5py.File(tmp_path / "evreco.h5") as f:
        assert f["events/njet"][()].tolist() == counts.tolist()
        np.testing.assert_array_equal(f["events/jet_pt"][()], ak.to_numpy(ak.flatten(pt)))
    # the same jets as a flat file give the same decoded values, up to the quantisation
    # (the latent ranges are those of each chunk: 700 events here, all 3000 jets there)
    flat = tmp_path / "flat.root"
    with uproot.recreate(flat) as f:
        f.mktree("jets", dict.fromkeys(VARS, np.float32))
        f["jets"].extend({v: cols[v] for v in VARS})
    assert main(["compress", "--model", str(job), str(flat), "-o", str(tmp_path / "f.h5"),
                 "--quiet"]) == 0  # fmt: skip
    assert main(["decompress", str(tmp_path / "f.h5"), "-o", str(tmp_path / "f.root"),
                 "--quiet"]) == 0  # fmt: skip
    with uproot.open(tmp_path / "f.root") as f:
        np.testing.assert_allclose(
            f["jets"]["pt"].array(library="np"), ak.to_numpy(ak.flatten(pt)), rtol=2e-3
        )


def test_phenoml_csv_in_mev(job: Path, tmp_path: Path) -> None:
    """CSV objects (jets only, MeV) come back as a flat tree of jets in MeV."""
    src = tmp_path / "events.csv"
    src.write_text(
        "1;ttbar;1;52000;0.3;j,120000,100000,0.5,1.0;b,80000,60000,-1.2,2.0;"
        "j,40000,30000,1.9,0.1;\n2;ttbar;1;9000;2.0;j,300000,250000,-0.3,-1.5;\n"
    )
    out, reco = tmp_path / "c.h5", tmp_path / "r.root"
    assert main(["compress", "--model", str(job), str(src), "-o", str(out), "--units", "MeV",
                 "--quiet"]) == 0  # fmt: skip
    assert main(["decompress", str(out), "-o", str(reco), "--quiet"]) == 0
    with uproot.open(reco) as f:
        pt = f["jets"]["pt"].array(library="np")
    # three jets, back in MeV: the model saw them in GeV, as it was trained
    codec = load_codec(job)
    x = np.array([[100, 0.5, 1.0, 120], [30, 1.9, 0.1, 40], [250, -0.3, -1.5, 300]], float)
    z = codec.latents(x)
    r = np.stack([z.min(axis=0), z.max(axis=0)], axis=1)
    y = codec.jets(dequantise(quantise(z, r[:, 0], r[:, 1], [12] * 3), r[:, 0], r[:, 1],
                              [12] * 3), 3)  # fmt: skip
    np.testing.assert_allclose(pt, 1000 * y[:, 0], rtol=1e-6)
