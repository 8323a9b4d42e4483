"""hepae-data: inspect, convert (atomic), generate without the gen extra; generator parts."""

from __future__ import annotations

import math
import subprocess
import sys

import h5py
import numpy as np
import pytest
import uproot

from hepae_core.cli.data import main
from hepae_core.config import resolve
from hepae_core.data import generate as gen
from hepae_core.data.jets import load_jets
from hepae_core.data.readers.synthetic import (
    ATLAS_CONTAINER,
    ATLAS_TREE,
    atlas_columns,
    events_of,
    write_atlas_root,
)


@pytest.fixture(scope="module")
def atlas_file(tmp_path_factory):
    rng = np.random.default_rng(8)
    cols = atlas_columns(800, rng)
    path = tmp_path_factory.mktemp("cli") / "atlas.root"
    write_atlas_root(path, cols, events_of(800, rng))
    return path, cols


def test_inspect_root(atlas_file, capsys):
    path, _ = atlas_file
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"tree '{ATLAS_TREE}'" in out and f"{ATLAS_CONTAINER}LeadingClusterPt" in out
    line = next(x for x in out.splitlines() if x.strip().startswith(f"{ATLAS_CONTAINER}pt "))
    assert "float[]" in line and "800 values" in line and "likely MeV" in line


def test_inspect_hdf5_and_csv(tmp_path, capsys):
    h5 = tmp_path / "a.h5"
    with h5py.File(h5, "w") as f:
        f["jets/pt"] = np.array([30.0, 45.0])
    assert main(["inspect", str(h5)]) == 0
    out = capsys.readouterr().out
    assert "dataset 'jets/pt': shape (2,)" in out and "min 30, max 45" in out
    csv = tmp_path / "e.csv"
    csv.write_text("1;ttbar;1;52000;0.3;j,120000,100000,0.5,1.0;b,8e4,6e4,-1.2,2.0;\n")
    assert main(["inspect", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "1 events" in out and "b: 1, j: 1" in out


def test_inspect_bad_input(tmp_path, capsys):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\xff" * 40)
    assert main(["inspect", str(junk)]) == 2
    assert "neither a ROOT file" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing.root")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_convert_jagged_root_to_hdf5_and_back(atlas_file, tmp_path, capsys):
    path, cols = atlas_file
    h5 = tmp_path / "jets.h5"
    rc = main(["convert", str(path), str(h5), "--tree", ATLAS_TREE, "--container", ATLAS_CONTAINER])
    assert rc == 0, capsys.readouterr().err
    with h5py.File(h5) as f:
        assert len(f) == 27
        np.testing.assert_allclose(f["pt"][:], cols["pt"] * 1000, rtol=1e-6)
    back = tmp_path / "back.root"
    assert main(["convert", str(h5), str(back), "--chunk-size", "100"]) == 0
    with uproot.open(back) as f:
        eta = f["jets"]["eta"].array(library="np")
    np.testing.assert_allclose(eta, cols["eta"], rtol=1e-6)
    cfg = resolve({"data": {"source": str(back), "variables": "27d", "units": "MeV"}})
    jets = load_jets(cfg, None)
    np.testing.assert_allclose(jets.values[:, 0], cols["pt"], rtol=1e-6)


def test_convert_leaves_nothing_on_failure(atlas_file, tmp_path, capsys):
    path, _ = atlas_file
    out = tmp_path / "x.h5"
    args = ["--tree", ATLAS_TREE, "--container", ATLAS_CONTAINER, "--branches", "pt,nope"]
    assert main(["convert", str(path), str(out), *args]) == 2
    err = capsys.readouterr().err
    assert f"no branch '{ATLAS_CONTAINER}nope'" in err
    assert list(tmp_path.iterdir()) == []
    assert main(["convert", str(path), str(tmp_path / "x.txt")]) == 2
    assert "must end in .root" in capsys.readouterr().err
    # a per-event tree needs --container
    assert main(["convert", str(path), str(out), "--tree", ATLAS_TREE]) == 2
    assert "--container" in capsys.readouterr().err


def test_generate_without_the_gen_extra(tmp_path):
    pytest.importorskip("numpy")
    try:
        import pythia8mc  # noqa: F401

        pytest.skip("pythia8mc is installed here")
    except ImportError:
        pass
    out = tmp_path / "gen.root"
    proc = subprocess.run(
        [sys.executable, "-m", "hepae_core.cli.data", "generate", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "pip install hepae-gridsearch[gen]" in proc.stderr
    assert not out.exists()


# ------------------------------------------------------------------------- generator


def _constituents(pt, eta, phi):
    pt, eta, phi = (np.asarray(a, dtype=float) for a in (pt, eta, phi))
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)


def test_jet_variables_on_a_known_jet():
    pt = [60.0, 30.0, 10.0]
    eta = [0.0, 0.1, -0.2]
    phi = [0.0, 0.0, 0.1]
    px, py, pz, e = _constituents(pt, eta, phi)
    pid = [211, 22, 130]  # charged pion, photon, K0L
    charge = [1.0, 0.0, 0.0]
    v = gen.jet_variables(px, py, pz, e, pid, charge)
    assert v["n_constituents"] == 3
    assert v["n90"] == 2  # 60 + 30 = 90 % of 100
    assert v["lead_pt"] == pytest.approx(60.0)
    assert v["ptD"] == pytest.approx(math.sqrt(60**2 + 30**2 + 10**2) / 100)
    assert v["charged_frac"] == pytest.approx(0.6)
    assert v["em_frac"] == pytest.approx(e[1] / e.sum())
    assert v["neutral_hadron_frac"] == pytest.approx(e[2] / e.sum())
    assert v["n_trk500"] == 1 and v["sum_pt_trk500"] == pytest.approx(60.0)
    assert v["E"] == pytest.approx(e.sum())
    assert v["m"] ** 2 == pytest.approx(
        e.sum() ** 2 - px.sum() ** 2 - py.sum() ** 2 - pz.sum() ** 2
    )
    assert 0 < v["width"] < 0.2 and 0 <= v["tau21"] <= 1.5


def test_two_prong_jet_has_small_tau21():
    # two hard, well separated clusters of particles: tau2 << tau1
    rng = np.random.default_rng(0)
    eta = np.r_[rng.normal(0.15, 0.01, 10), rng.normal(-0.15, 0.01, 10)]
    phi = np.r_[rng.normal(0.1, 0.01, 10), rng.normal(-0.1, 0.01, 10)]
    pt = np.full(20, 10.0)
    px, py, pz, e = _constituents(pt, eta, phi)
    v = gen.jet_variables(px, py, pz, e, np.full(20, 211), np.ones(20))
    assert v["tau21"] < 0.2


def test_event_jets_write_and_read_back(tmp_path):
    rng = np.random.default_rng(1)
    settings = gen.GenSettings(n_events=2, seed=7)
    rows = []
    for event in range(2):
        n = 30
        pt = rng.exponential(5, n) + 1
        eta = np.r_[rng.normal(0.5, 0.1, 15), rng.normal(-1.5, 0.1, 15)]
        phi = np.r_[rng.normal(1, 0.1, 15), rng.normal(-2, 0.1, 15)]
        px, py, pz, e = _constituents(pt, eta, phi)
        particles = {"px": px, "py": py, "pz": pz, "E": e}
        particles["pid"] = rng.choice([211, -211, 22, 130], n)
        particles["charge"] = np.where(np.abs(particles["pid"]) == 211, 1.0, 0.0)
        rows += gen.event_jets(particles, [np.arange(15), np.arange(15, 30)], event, 1.0, settings)
    assert [r["rank"] for r in rows if r["event"] == 0] == list(range(len(rows) // 2))
    cols = {k: np.array([r[k] for r in rows]) for k in gen.JET_BRANCHES}
    meta = {"settings": settings.__dict__, "pythia_strings": settings.pythia_strings()}
    out = tmp_path / "sample.root"
    gen.write_jets_root(out, cols, meta)
    assert gen.read_metadata(out)["pythia_strings"][4] == "Random:seed = 7"
    with uproot.open(out) as f:
        assert f["jets"].num_entries == len(rows)
        assert f["events"].num_entries == 2
        assert sorted(f["events"].keys()) == sorted(
            ["event", "njet", "jet_pt", "jet_eta", "jet_phi", "jet_E", "jet_m"]
        )
    cfg = resolve(
        {
            "data": {"source": str(out), "variables": ["pt", "eta", "width", "tau21"]},
            "normalisation": {"kind": "standard"},
            "model": {"latent": 2},
        }
    )
    from hepae_core.data.jets import read_source

    got = read_source(cfg)
    np.testing.assert_allclose(got["tau21"], cols["tau21"], rtol=1e-6)
    assert list(tmp_path.iterdir()) == [out]  # no temporary files left


def test_pythia_settings_are_seeded_and_biasable():
    s = gen.GenSettings(process="dijet", seed=3, bias_power=4, pthat_min=25)
    lines = s.pythia_strings()
    assert "Random:seed = 3" in lines and "HardQCD:all = on" in lines
    assert "PhaseSpace:bias2SelectionPow = 4" in lines
    assert "Top:gg2ttbar = on" in gen.GenSettings(process="ttbar").pythia_strings()
