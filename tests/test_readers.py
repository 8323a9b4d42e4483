"""Readers: ATLAS-style jagged trees, ntuples, flat trees, HDF5, PhenoML CSV, bad input."""

from __future__ import annotations

import itertools
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot

from hepae_core.config import resolve
from hepae_core.data.jets import load_jets, read_source
from hepae_core.data.readers.synthetic import (
    ATLAS_CONTAINER,
    ATLAS_TREE,
    atlas_columns,
    events_of,
    write_atlas_root,
)
from hepae_core.errors import DataError
from hepae_core.variables import VARIABLES_27D

N_JETS = 3000


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray], np.ndarray]:
    """An ATLAS-style file (MeV, jagged, one branch per variable) and its GeV truth."""
    rng = np.random.default_rng(11)
    cols = atlas_columns(N_JETS, rng)
    counts = events_of(N_JETS, rng)
    path = tmp_path_factory.mktemp("atlas") / "atlas.root"
    write_atlas_root(path, cols, counts)
    return path, cols, counts


def atlas_cfg(path: Path, latent: int = 2, **data) -> dict:
    base = {
        "source": str(path),
        "tree": ATLAS_TREE,
        "container": ATLAS_CONTAINER,
        "units": "MeV",
        "variables": "27d",
    }
    base.update(data)
    return resolve({"data": base, "model": {"latent": latent}})


def test_atlas_file_has_atlas_branch_names(atlas):
    path, _, counts = atlas
    with uproot.open(path) as f:
        t = f[ATLAS_TREE]
        assert t.num_entries == len(counts)
        assert f"{ATLAS_CONTAINER}pt" in list(t.keys())
        assert str(t[f"{ATLAS_CONTAINER}pt"].typename) == "float[]"


def test_atlas_27d_in_gev(atlas):
    path, cols, _ = atlas
    jets = load_jets(atlas_cfg(path), None)
    assert jets.variables == list(VARIABLES_27D)
    assert jets.values.shape == (N_JETS, 27)
    for j, v in enumerate(VARIABLES_27D):
        np.testing.assert_allclose(jets.values[:, j], cols[v], rtol=2e-6, atol=1e-6, err_msg=v)
    assert jets.counts["events_read"] == len(atlas[2])


def test_atlas_thesis_cuts_counted(atlas):
    path, _, _ = atlas
    jets = load_jets(atlas_cfg(path, cuts="thesis_27d"), None)
    c = jets.counts
    removed = [c[f"cut.{i}.removed"] for i in range(12)]
    assert sum(removed) == N_JETS - c["jets_after_cuts"] == N_JETS - len(jets.values)
    assert c["cut.9.expr"] == "abs(Timing) < 125" and c["cut.9.removed"] > 0
    assert all(n > 0 for n in (removed[1], removed[2], removed[3], removed[4], removed[7]))
    t = jets.variables.index("Timing")
    assert np.abs(jets.values[:, t]).max() < 125


def test_25d_reads_width_only_for_the_cut(atlas):
    path, _, _ = atlas
    jets = load_jets(atlas_cfg(path, variables="25d", cuts="thesis_27d"), None)
    assert "Width" not in jets.variables and len(jets.variables) == 25
    assert jets.counts["cut.7.removed"] > 0


def test_leading_n_per_event(atlas):
    path, cols, counts = atlas
    jets = load_jets(atlas_cfg(path, leading=1, variables="4d_m"), None)
    offsets = np.r_[0, np.cumsum(counts)]
    lead = np.array([cols["pt"][a:b].max() for a, b in itertools.pairwise(offsets)])
    np.testing.assert_allclose(jets.values[:, 0], lead, rtol=2e-6)
    assert jets.counts["jets_beyond_leading"] == N_JETS - len(counts)


def test_chunk_size_does_not_change_the_result(atlas):
    path, _, _ = atlas
    big = load_jets(atlas_cfg(path, cuts="thesis_27d", leading=2), None)
    small = load_jets(atlas_cfg(path, cuts="thesis_27d", leading=2, chunk_size=97), None)
    np.testing.assert_array_equal(big.values, small.values)
    assert big.counts == small.counts


def test_max_jets_stops_reading(atlas):
    path, _, _ = atlas
    jets = load_jets(atlas_cfg(path, max_jets=500, chunk_size=100), None)
    assert jets.counts["jets_read"] == 500 and len(jets.values) == 500


def test_ntuple_events_tree_with_prefix(tmp_path):
    """Flat ntuple style: jet_pt, jet_eta... per event, counter njet (as the shared files)."""
    pt = ak.Array([[50.0, 30.0, 20.0], [], [40.0], [25.0, 60.0]])
    eta = ak.Array([[0.1, 0.2, 0.3], [], [0.4], [0.5, 0.6]])
    path = tmp_path / "nt.root"
    with uproot.recreate(path) as f:
        f.mktree("events", {"event": np.int64, "jet": ak.zip({"pt": pt, "eta": eta}).type.content})
        f["events"].extend({"event": np.arange(4), "jet": ak.zip({"pt": pt, "eta": eta})})
    cfg = resolve(
        {
            "data": {
                "source": str(path),
                "tree": "events",
                "container": "jet_",
                "variables": ["pt", "eta"],
                "leading": 2,
            },
            "model": {"latent": 1},
        }
    )
    cols = read_source(cfg)
    np.testing.assert_array_equal(cols["pt"], [50, 30, 40, 60, 25])
    np.testing.assert_allclose(cols["eta"], [0.1, 0.2, 0.4, 0.6, 0.5], rtol=1e-6)


def test_hdf5_group_and_table_in_chunks(tmp_path):
    rng = np.random.default_rng(2)
    pt, eta = rng.uniform(20, 100, 1000), rng.normal(0, 1, 1000)
    path = tmp_path / "j.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("jets")
        g["pt"], g["eta"], g["phi"], g["E"] = pt, eta, eta * 0, pt * 2
        table = np.zeros(1000, dtype=[("pt", "f4"), ("eta", "f4"), ("phi", "f4"), ("E", "f4")])
        table["pt"], table["eta"], table["E"] = pt, eta, pt * 2
        f["table"] = table
    for key in ("jets", "table"):
        cfg = resolve(
            {
                "data": {"source": str(path), "key": key, "chunk_size": 64, "cuts": ["pt > 50"]},
            }
        )
        jets = load_jets(cfg, None)
        assert jets.counts["cut.0.removed"] == int((pt.astype("f4") <= 50).sum())
        np.testing.assert_allclose(jets.values[:, 0], pt[pt.astype("f4") > 50], rtol=1e-6)


CSV_TEXT = """\
1;ttbar;1;52000;0.3;j,120000,100000,0.5,1.0;b,80000,60000,-1.2,2.0;e-,30000,29000,0.1,-0.5;j,40000,30000,1.9,0.1;
2;ttbar;0.5;11000;-1.1;m+,50000,45000,0.2,0.2;g,26000,25000,0.3,-2.8
3;ttbar;1;9000;2.0;j,300000,250000,-0.3,-1.5;
"""


def test_phenoml_csv(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(CSV_TEXT)
    cfg = resolve(
        {
            "data": {
                "source": str(path),
                "units": "MeV",
                "variables": ["pt", "eta", "phi", "E", "m", "MET"],
                "csv_objects": ["j", "b"],
                "chunk_size": 2,
            },
            "normalisation": {"kind": "standard"},
            "model": {"latent": 2},
        }
    )
    jets = load_jets_allow_few(cfg)
    np.testing.assert_allclose(jets.values[:, 0], [100, 60, 30, 250])
    np.testing.assert_allclose(jets.values[:, 5], [52, 52, 52, 9])
    e, p = 120.0, 100.0 * np.cosh(0.5)
    np.testing.assert_allclose(jets.values[0, 4], np.sqrt(e**2 - p**2), rtol=1e-5)
    assert jets.counts["events_read"] == 3
    cfg["data"].update(leading=1, csv_objects=["j"])
    cols = read_source(cfg)
    np.testing.assert_allclose(cols["pt"], [100000, 250000])


def load_jets_allow_few(cfg):
    """load_jets refuses fewer than 10 jets; tile a tiny file's rows for the check."""
    from hepae_core.data import jets as data

    chunks, req = data.iter_source(cfg, None, data.needed_variables(cfg))
    parts = list(chunks)
    cols = {v: np.concatenate([p[v] for p in parts]) for v in parts[0]}
    values = data.to_array(cols, data.variables_of(cfg), cfg["data"]["units"])
    return data.JetData(values, data.variables_of(cfg), dict(req.stats))


# ------------------------------------------------------------------------ bad input


def _expect(cfg, *fragments):
    with pytest.raises(DataError) as info:
        load_jets(cfg, None)
    msg = str(info.value)
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_not_a_data_file(tmp_path):
    path = tmp_path / "jets.root"
    path.write_bytes(b"\x00\x01garbage" * 100)
    _expect(resolve({"data": {"source": str(path)}}), str(path), "neither a ROOT file")
    png = tmp_path / "x.dat"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    _expect(resolve({"data": {"source": str(png)}}), "neither a ROOT file")
    h5 = tmp_path / "y.h5"
    h5.write_text("1;2;3;4;5;j,1,2,3,4\n")
    _expect(resolve({"data": {"source": str(h5), "format": "hdf5"}}), "is not an HDF5 file")


def test_empty_files(tmp_path):
    empty = tmp_path / "empty.root"
    empty.write_bytes(b"")
    _expect(resolve({"data": {"source": str(empty)}}), "is empty (0 bytes)")
    notree = tmp_path / "notree.root"
    with uproot.recreate(notree) as f:
        f["note"] = "nothing here"
    _expect(resolve({"data": {"source": str(notree)}}), "holds no TTree")
    zero = tmp_path / "zero.root"
    with uproot.recreate(zero) as f:
        f.mktree("jets", {v: np.float32 for v in ("pt", "eta", "phi", "E")})
    _expect(resolve({"data": {"source": str(zero)}}), "holds no jets")
    csv = tmp_path / "e.csv"
    csv.write_text("\n\n")
    _expect(resolve({"data": {"source": str(csv)}}), "holds no jets")


def test_missing_tree_suggests_closest(atlas):
    path, _, _ = atlas
    cfg = atlas_cfg(path)
    cfg["data"]["tree"] = "CollectionTre"
    _expect(cfg, "has no tree 'CollectionTre'", "did you mean 'CollectionTree'", "data.tree")


def test_missing_branch_lists_and_suggests(atlas):
    path, _, _ = atlas
    cfg = atlas_cfg(path, variables=["pt", "eta", "Timing"])
    cfg["data"]["variables"] = ["pt", "eta", "Timming"]  # past resolve, as a stale config
    msg = _expect(cfg, f"no branch '{ATLAS_CONTAINER}Timming'", f"'{ATLAS_CONTAINER}Timing'")
    assert "it has:" in msg and "data.branches" in msg


def test_jagged_branches_of_different_lengths(tmp_path):
    path = tmp_path / "bad.root"
    with uproot.recreate(path) as f:
        f.mktree("t", {"j.pt": "var * float32", "j.eta": "var * float32"}, counter_name=_counter)
        f["t"].extend(
            {"j.pt": ak.Array([[1.0, 2.0], [3.0]]), "j.eta": ak.Array([[1.0, 2.0], [3.0, 4.0]])}
        )
    cfg = resolve(
        {
            "data": {
                "source": str(path),
                "tree": "t",
                "container": "j.",
                "variables": ["pt", "eta"],
            },
            "model": {"latent": 1},
        }
    )
    _expect(cfg, "'j.pt' and 'j.eta' have different numbers of jets", "entry 1")


def _counter(name: str) -> str:
    return "n_" + name.replace(".", "_")


def test_mixed_flat_and_jagged_branches(tmp_path):
    path = tmp_path / "mix.root"
    with uproot.recreate(path) as f:
        f.mktree("t", {"pt": "var * float32", "eta": np.float32})
        f["t"].extend({"pt": ak.Array([[1.0], [2.0]]), "eta": np.array([0.1, 0.2], "f4")})
    cfg = resolve(
        {
            "data": {"source": str(path), "tree": "t", "variables": ["pt", "eta"]},
            "model": {"latent": 1},
        }
    )
    _expect(cfg, "mixes per-jet branches")


def test_leading_on_flat_tree_is_refused():
    cfg = resolve({"data": {"leading": 2}})
    _expect(cfg, "data.leading needs per-event")


def test_malformed_csv_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(CSV_TEXT + "4;ttbar;1;100;0.1;j,1,2,3\n")
    cfg = resolve({"data": {"source": str(path)}})
    _expect(cfg, "line 4", "type,E,pt,eta,phi")


def test_bundled_sample_still_reads():
    jets = load_jets(resolve({"data": {"max_jets": 1000}}), None)
    assert jets.values.shape == (1000, 4)
    assert jets.counts["jets_read"] == 1000


def test_binary_file_declared_csv(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(bytes(range(256)) * 4)
    _expect(resolve({"data": {"source": str(path), "format": "csv"}}), "not a text file")


def test_rntuple_flat_and_jagged(tmp_path):
    """uproot 5.7 writes an RNTuple when a dict is assigned: read those too."""
    path = tmp_path / "rn.root"
    n = 40
    with uproot.recreate(path) as f:
        f["jets"] = {v: np.arange(n, dtype="f4") + 20 for v in ("pt", "eta", "phi", "E")}
        f["ev"] = {
            "jet_pt": ak.Array([[1.0, 2.0], [3.0]] * 10),
            "jet_eta": ak.Array([[0.1, 0.2], [0.3]] * 10),
        }
    jets = load_jets(resolve({"data": {"source": str(path), "chunk_size": 7}}), None)
    np.testing.assert_array_equal(jets.values[:, 0], np.arange(n) + 20)
    cfg = resolve(
        {
            "data": {
                "source": str(path),
                "tree": "ev",
                "container": "jet_",
                "variables": ["pt", "eta"],
                "leading": 1,
            },
            "model": {"latent": 1},
        }
    )
    np.testing.assert_array_equal(read_source(cfg)["pt"], [2.0, 3.0] * 10)
