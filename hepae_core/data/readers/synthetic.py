"""Synthetic ATLAS-style jet files, for tests, benchmarks and trying the 27-variable setup.

The generator sample has no calorimeter variables (LAr quality, timing, HEC fractions...),
so :func:`atlas_columns` draws plausible values for them around real jet kinematics, with
a few per cent of outliers that the ``thesis_27d`` cuts remove. :func:`write_atlas_root`
writes them as an ATLAS derivation would: tree ``CollectionTree``, one jagged branch per
variable named ``<container><variable>``, energies in MeV. These are not physics: use them
to exercise readers, cuts and normalisations, never to draw conclusions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hepae_core.variables import ENERGY_VARIABLES, VARIABLES_27D

ATLAS_CONTAINER = "HLT_xAOD__JetContainer_TrigHLTJetDSSelectorCollectionAuxDyn."
ATLAS_TREE = "CollectionTree"


def kinematics(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """pt, eta, phi, m (GeV) of ``n`` jets drawn from the bundled Pythia sample."""
    import uproot

    from hepae_core.data.jets import bundled_path

    with uproot.open(bundled_path("dijet_4d")) as f:
        jets = f["jets"].arrays(["pt", "eta", "phi", "m"], library="np")
    idx = rng.integers(0, len(jets["pt"]), n)
    return {k: np.asarray(v[idx], dtype=np.float64) for k, v in jets.items()}


def atlas_columns(
    n: int, rng: np.random.Generator, outlier_fraction: float = 0.03
) -> dict[str, np.ndarray]:
    """The 27 thesis variables for ``n`` jets, in GeV (float64)."""
    k = kinematics(n, rng)
    pt, eta, phi, m = k["pt"], k["eta"], k["phi"], k["m"]
    out = {"pt": pt, "eta": eta, "phi": phi, "m": m}
    u = rng.uniform
    out["ActiveArea"] = np.clip(rng.normal(0.5, 0.05, n), 0.05, None)
    out["ActiveArea4vec_eta"] = eta + rng.normal(0, 0.02, n)
    out["ActiveArea4vec_phi"] = (phi + rng.normal(0, 0.02, n) + np.pi) % (2 * np.pi) - np.pi
    out["ActiveArea4vec_m"] = np.abs(rng.normal(0.05, 0.02, n))
    out["ActiveArea4vec_pt"] = np.clip(rng.normal(0.5, 0.05, n), 0.05, None)
    out["AverageLArQF"] = rng.exponential(0.2, n)
    out["NegativeE"] = -rng.exponential(1.0, n) * (rng.uniform(0, 1, n) < 0.3)
    out["HECQuality"] = rng.normal(0, 0.05, n)
    out["LArQuality"] = rng.exponential(0.05, n)
    out["Width"] = rng.exponential(0.08, n)
    out["WidthPhi"] = rng.exponential(0.08, n)
    out["CentroidR"] = u(1500, 4000, n)
    out["DetectorEta"] = eta + rng.normal(0, 0.01, n)
    out["LeadingClusterCenterLambda"] = rng.exponential(200, n)
    out["LeadingClusterPt"] = pt * u(0.2, 0.8, n)
    out["LeadingClusterSecondLambda"] = rng.exponential(3000, n)
    out["LeadingClusterSecondR"] = rng.exponential(800, n)
    out["N90Constituents"] = np.round(np.clip(rng.normal(3 + 2 * np.log(pt), 2), 1, None))
    out["EMFrac"] = np.clip(rng.beta(4, 3, n) + rng.normal(0, 0.02, n), -0.1, 1.1)
    out["HECFrac"] = np.where(np.abs(eta) > 1.5, rng.beta(2, 5, n), rng.exponential(0.01, n))
    out["Timing"] = rng.normal(0, 3, n)
    out["OotFracClusters10"] = rng.exponential(0.02, n)
    out["OotFracClusters5"] = out["OotFracClusters10"] + rng.exponential(0.02, n)
    # Outliers the thesis cuts are there for: bad timing, noise bursts, failed widths.
    bad = np.flatnonzero(rng.uniform(0, 1, n) < outlier_fraction)
    kinds = rng.integers(0, 8, len(bad))
    out["Timing"][bad[kinds == 0]] = 200.0
    out["LArQuality"][bad[kinds == 1]] = 5.0
    out["Width"][bad[kinds == 2]] = -1.0
    out["HECQuality"][bad[kinds == 3]] = 3.0
    out["NegativeE"][bad[kinds == 4]] = -500.0
    out["EMFrac"][bad[kinds == 5]] = 0.01
    out["eta"][bad[kinds == 5]] = 2.5 * np.sign(out["eta"][bad[kinds == 5]] + 1e-9)
    noisy = bad[kinds == 6]  # a LAr noise burst: bad quality in an EM-dominated jet
    out["AverageLArQF"][noisy], out["LArQuality"][noisy] = 0.9, 0.9
    out["EMFrac"][noisy], out["eta"][noisy] = 0.97, 0.5
    hec = bad[kinds == 7]  # a HEC spike
    out["AverageLArQF"][hec], out["HECQuality"][hec], out["HECFrac"][hec] = 0.9, 0.6, 0.6
    return {v: out[v] for v in VARIABLES_27D}


def events_of(n_jets: int, rng: np.random.Generator, mean_jets: float = 2.5) -> np.ndarray:
    """Jets per event (>= 1) adding up to ``n_jets``."""
    counts = 1 + rng.poisson(mean_jets - 1, n_jets)
    cum = np.cumsum(counts)
    last = int(np.searchsorted(cum, n_jets))
    counts = counts[: last + 1]
    counts[-1] -= int(cum[last] - n_jets)
    return counts[counts > 0]


def to_file_units(columns: dict[str, np.ndarray], units: str) -> dict[str, np.ndarray]:
    """GeV columns as float32 in ``units`` (MeV multiplies the energy variables by 1000)."""
    f = 1000.0 if units == "MeV" else 1.0
    return {
        v: np.asarray(c * (f if v in ENERGY_VARIABLES else 1.0), dtype=np.float32)
        for v, c in columns.items()
    }


def write_atlas_root(
    path: str | Path,
    columns: dict[str, np.ndarray],
    counts: np.ndarray,
    container: str = ATLAS_CONTAINER,
    tree: str = ATLAS_TREE,
    units: str = "MeV",
    chunk_events: int = 100_000,
    compression: object | None = "default",
) -> Path:
    """Write GeV ``columns`` (one value per jet) as jagged per-event branches.

    ``counts`` gives the jets per event (summing to the number of jets). Each variable
    gets its own branch ``<container><variable>`` with its own counter, as in xAOD
    derivations.
    """
    import awkward as ak
    import uproot

    path = Path(path)
    data = to_file_units(columns, units)
    kwargs = {} if compression == "default" else {"compression": compression}
    offsets = np.r_[0, np.cumsum(counts)]
    with uproot.recreate(path, **kwargs) as f:
        t = f.mktree(
            tree,
            {container + v: "var * float32" for v in data},
            counter_name=lambda name: "n_" + name.replace(".", "_"),
        )
        for lo in range(0, len(counts), chunk_events):
            hi = min(len(counts), lo + chunk_events)
            a, b = offsets[lo], offsets[hi]
            t.extend({container + v: ak.unflatten(c[a:b], counts[lo:hi]) for v, c in data.items()})
    return path
