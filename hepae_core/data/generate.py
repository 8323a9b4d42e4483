"""A real physics sample, reproducibly: Pythia 8 events, FastJet anti-kt jets, a ROOT file.

QCD dijet (``HardQCD:all``) or ttbar events at 13 TeV; jets clustered anti-kt R = 0.4 from
the visible final-state particles above a pt threshold; one flat per-jet TTree ``jets``
(branches :data:`JET_BRANCHES`, GeV) plus the same jets per event in ``events``
(``jet_pt``...), and the settings as JSON in the TObjString ``hepae_metadata``.

The generator needs the optional extra ``gen`` (``pip install hepae-gridsearch[gen]``:
the ``pythia8mc`` and ``fastjet`` bindings; pythia8mc compiles from source where no wheel
fits, which takes tens of minutes). They are imported only by :func:`generate`; the jet
variables (:func:`jet_variables`) and the writer (:func:`write_jets_root`) need only numpy
and uproot.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepae_core.errors import HepaeError

METADATA_KEY = "hepae_metadata"
JET_BRANCHES = (
    "event", "rank", "pt", "eta", "phi", "E", "m", "n_constituents", "n90", "width",
    "width_eta", "width_phi", "em_frac", "charged_frac", "neutral_hadron_frac", "n_trk500",
    "n_trk1000", "sum_pt_trk500", "lead_pt", "ptD", "tau21", "tau32", "weight",
)  # fmt: skip
INT_BRANCHES = ("event", "rank", "n_constituents", "n90", "n_trk500", "n_trk1000")
INVISIBLE = frozenset({12, 14, 16, 1000022, 1000039})  # neutrinos, neutralino, gravitino
PROCESSES = ("dijet", "ttbar")
INSTALL_HINT = "pip install hepae-gridsearch[gen]"


class GeneratorUnavailable(HepaeError):
    """The optional generator packages are not installed."""

    def __init__(self, missing: str) -> None:
        super().__init__(
            message=f"the event generator needs the '{missing}' package, which is not installed; "
            f"install the optional extra with: {INSTALL_HINT} (pythia8mc may compile from "
            "source for tens of minutes)",
        )


@dataclass
class GenSettings:
    """Everything that determines a sample; stored in the file's metadata."""

    process: str = "dijet"
    n_events: int = 10_000
    seed: int = 1
    sqrt_s_gev: float = 13_000.0
    pthat_min: float = 25.0
    bias_power: float = 0.0  # > 0: sample pT-hat biased by (pT-hat/pthat_min)^power
    jet_r: float = 0.4
    jet_ptmin: float = 20.0
    jet_etamax: float = 4.5
    extra: list[str] = field(default_factory=list)  # more Pythia settings strings

    def pythia_strings(self) -> list[str]:
        """The Pythia settings (readString lines) these settings stand for."""
        if self.process not in PROCESSES:
            raise HepaeError(
                source=None, key="process", message=f"must be one of {', '.join(PROCESSES)}"
            )
        out = [
            "Beams:idA = 2212",
            "Beams:idB = 2212",
            f"Beams:eCM = {self.sqrt_s_gev:g}",
            "Random:setSeed = on",
            f"Random:seed = {self.seed}",
            "Next:numberCount = 0",
        ]
        if self.process == "dijet":
            out += ["HardQCD:all = on", f"PhaseSpace:pTHatMin = {self.pthat_min:g}"]
        else:
            out += ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on"]
        if self.bias_power > 0:
            out += [
                "PhaseSpace:bias2Selection = on",
                f"PhaseSpace:bias2SelectionPow = {self.bias_power:g}",
                f"PhaseSpace:bias2SelectionRef = {self.pthat_min:g}",
            ]
        return out + list(self.extra)


def _wrap(dphi: np.ndarray) -> np.ndarray:
    return (dphi + np.pi) % (2 * np.pi) - np.pi


def four_vector(px, py, pz, e) -> tuple[float, float, float, float, float]:
    """(pt, eta, phi, E, m) of a summed four-vector."""
    pt = float(np.hypot(px, py))
    p = float(np.sqrt(px * px + py * py + pz * pz))
    eta = float(np.arcsinh(pz / pt)) if pt > 0 else float(np.sign(pz) * 1e9)
    phi = float(np.arctan2(py, px))
    m2 = e * e - p * p
    return pt, eta, phi, float(e), float(np.sqrt(m2)) if m2 > 0 else 0.0


def exclusive_kt_axes(
    pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Axes of ``n`` exclusive kt subjets (pt-weighted recombination), for N-subjettiness."""
    pt, eta, phi = (np.array(a, dtype=np.float64) for a in (pt, eta, phi))
    while len(pt) > n:
        deta = eta[:, None] - eta[None, :]
        dphi = _wrap(phi[:, None] - phi[None, :])
        d = np.minimum(pt[:, None] ** 2, pt[None, :] ** 2) * (deta**2 + dphi**2)
        np.fill_diagonal(d, np.inf)
        i, j = np.unravel_index(np.argmin(d), d.shape)
        w = pt[i] + pt[j]
        eta_ij = (pt[i] * eta[i] + pt[j] * eta[j]) / w
        phi_ij = phi[i] + pt[j] * _wrap(phi[j] - phi[i]) / w
        keep = np.ones(len(pt), dtype=bool)
        keep[j] = False
        pt[i], eta[i], phi[i] = w, eta_ij, _wrap(np.array(phi_ij))
        pt, eta, phi = pt[keep], eta[keep], phi[keep]
    return eta, phi


def nsubjettiness(pt, eta, phi, n: int, r: float) -> float:
    """tau_N = sum_k pt_k min_j dR(k, axis_j) / (sum_k pt_k R); 0 with N or fewer particles."""
    if len(pt) <= n:
        return 0.0
    ax_eta, ax_phi = exclusive_kt_axes(pt, eta, phi, n)
    dr = np.sqrt((eta[:, None] - ax_eta[None, :]) ** 2 + _wrap(phi[:, None] - ax_phi[None, :]) ** 2)
    return float(np.sum(pt * dr.min(axis=1)) / (np.sum(pt) * r))


def jet_variables(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    e: np.ndarray,
    pid: np.ndarray,
    charge: np.ndarray,
    r: float = 0.4,
) -> dict[str, float]:
    """Jet-level variables of one jet from its constituents (GeV; pid: PDG ids).

    The jet four-vector is the E-scheme sum of the constituents. Returns the keys of
    :data:`JET_BRANCHES` except ``event``, ``rank`` and ``weight``.
    """
    px, py, pz, e = (np.asarray(a, dtype=np.float64) for a in (px, py, pz, e))
    pid = np.abs(np.asarray(pid))
    charge = np.asarray(charge, dtype=np.float64)
    jpt, jeta, jphi, je, jm = four_vector(px.sum(), py.sum(), pz.sum(), e.sum())
    cpt = np.hypot(px, py)
    ceta = np.arcsinh(np.divide(pz, cpt, out=np.zeros_like(pz), where=cpt > 0))
    cphi = np.arctan2(py, px)
    deta = ceta - jeta
    dphi = _wrap(cphi - jphi)
    dr = np.sqrt(deta**2 + dphi**2)
    sum_pt = cpt.sum()
    frac = np.cumsum(np.sort(cpt)[::-1]) / sum_pt
    charged = charge != 0
    em = (pid == 22) | (pid == 11)
    neutral_had = ~charged & ~em & (pid > 100)
    trk500 = charged & (cpt > 0.5)
    trk1000 = charged & (cpt > 1.0)
    tau1 = nsubjettiness(cpt, ceta, cphi, 1, r)
    tau2 = nsubjettiness(cpt, ceta, cphi, 2, r)
    tau3 = nsubjettiness(cpt, ceta, cphi, 3, r)
    return {
        "pt": jpt,
        "eta": jeta,
        "phi": jphi,
        "E": je,
        "m": jm,
        "n_constituents": len(cpt),
        "n90": int(np.searchsorted(frac, 0.9 - 1e-12) + 1),
        "width": float(np.sum(cpt * dr) / sum_pt),
        "width_eta": float(np.sqrt(np.sum(cpt * deta**2) / sum_pt)),
        "width_phi": float(np.sqrt(np.sum(cpt * dphi**2) / sum_pt)),
        "em_frac": float(e[em].sum() / e.sum()),
        "charged_frac": float(cpt[charged].sum() / sum_pt),
        "neutral_hadron_frac": float(e[neutral_had].sum() / e.sum()),
        "n_trk500": int(trk500.sum()),
        "n_trk1000": int(trk1000.sum()),
        "sum_pt_trk500": float(cpt[trk500].sum()),
        "lead_pt": float(cpt.max()),
        "ptD": float(np.sqrt(np.sum(cpt**2)) / sum_pt),
        "tau21": tau2 / tau1 if tau1 > 0 else 0.0,
        "tau32": tau3 / tau2 if tau2 > 0 else 0.0,
    }


def event_jets(
    particles: dict[str, np.ndarray],
    constituents: Sequence[np.ndarray],
    event: int,
    weight: float,
    settings: GenSettings,
) -> list[dict[str, float]]:
    """Rows of one event's jets (pt-ordered, ``rank`` 0 = leading) within the cuts.

    ``particles`` has arrays px, py, pz, E, pid, charge; ``constituents`` one index array
    per clustered jet.
    """
    rows = []
    for idx in constituents:
        idx = np.asarray(idx, dtype=np.int64)
        if len(idx) == 0:
            continue
        row = jet_variables(
            particles["px"][idx],
            particles["py"][idx],
            particles["pz"][idx],
            particles["E"][idx],
            particles["pid"][idx],
            particles["charge"][idx],
            settings.jet_r,
        )
        if row["pt"] >= settings.jet_ptmin and abs(row["eta"]) <= settings.jet_etamax:
            rows.append(row)
    rows.sort(key=lambda r: -r["pt"])
    for rank, row in enumerate(rows):
        row.update(event=event, rank=rank, weight=weight)
    return rows


def write_jets_root(
    path: str | Path, rows: dict[str, np.ndarray], metadata: dict[str, Any]
) -> Path:
    """Write per-jet columns as TTree ``jets``, the per-event view as ``events``, metadata.

    Written to a temporary file beside ``path`` and renamed, so a failed run leaves nothing.
    ``rows`` needs at least ``event`` (jets of one event adjacent) and ``pt``, ``eta``,
    ``phi``, ``E``, ``m``.
    """
    import awkward as ak
    import uproot

    path = Path(path)
    cols = {}
    for name, arr in rows.items():
        dtype = np.int64 if name == "event" else np.int32 if name in INT_BRANCHES else np.float32
        cols[name] = np.asarray(arr, dtype=dtype)
    n = len(cols["event"])
    ev = cols["event"]
    starts = np.flatnonzero(np.r_[True, ev[1:] != ev[:-1]]) if n else np.array([], int)
    counts = np.diff(np.r_[starts, n]).astype(np.int64)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with uproot.recreate(tmp) as f:
            f.mktree("jets", {k: v.dtype for k, v in cols.items()}, title="jets, one per row")
            if n:
                f["jets"].extend(cols)
            jet = ak.zip(
                {
                    k: ak.unflatten(cols[k], counts)
                    for k in ("pt", "eta", "phi", "E", "m")
                    if k in cols
                }
            )
            events = {"event": ev[starts], "jet": jet}
            f.mktree("events", {"event": np.int64, "jet": jet.type.content}, title="jets per event")
            if len(starts):
                f["events"].extend(events)
            f[METADATA_KEY] = json.dumps(metadata, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The generator metadata of a ROOT file, or None when it has none."""
    import uproot

    with uproot.open(path) as f:
        if METADATA_KEY not in [k.split(";")[0] for k in f.classnames()]:
            return None
        return json.loads(str(f[METADATA_KEY]))


def _import_generators():
    try:
        import pythia8mc
    except ImportError:
        raise GeneratorUnavailable("pythia8mc") from None
    try:
        import fastjet
    except ImportError:
        raise GeneratorUnavailable("fastjet") from None
    return pythia8mc, fastjet


def generate(
    out: str | Path,
    settings: GenSettings,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Generate ``settings.n_events`` events and write their jets to ``out``; returns metadata.

    Raises
    ------
    GeneratorUnavailable
        When pythia8mc or fastjet is missing (the ``gen`` extra).
    """
    pythia8, fastjet = _import_generators()
    import awkward as ak

    pythia = pythia8.Pythia("", False)
    for line in settings.pythia_strings():
        if not pythia.readString(line):
            raise HepaeError(
                source=None, key="settings", message=f"Pythia refused the setting '{line}'"
            )
    if not pythia.init():
        raise HepaeError(
            source=None, key="settings", message="Pythia failed to initialise; check the settings"
        )
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, settings.jet_r)
    rows: list[dict[str, float]] = []
    n_done = n_failed = 0
    while n_done < settings.n_events:
        if not pythia.next():
            n_failed += 1
            if n_failed > 100 + settings.n_events // 10:
                raise HepaeError(source=None, key=None, message="Pythia failed on too many events")
            continue
        parts = [
            (p.px(), p.py(), p.pz(), p.e(), p.id(), p.charge())
            for p in pythia.event
            if p.isFinal() and abs(p.id()) not in INVISIBLE and abs(p.eta()) < 5.0
        ]
        weight = float(pythia.infoPython().weight()) if settings.bias_power > 0 else 1.0
        if parts:
            arr = np.asarray(parts, dtype=np.float64)
            particles = {
                "px": arr[:, 0],
                "py": arr[:, 1],
                "pz": arr[:, 2],
                "E": arr[:, 3],
                "pid": arr[:, 4].astype(np.int64),
                "charge": arr[:, 5],
            }
            vectors = ak.Array({"px": arr[:, 0], "py": arr[:, 1], "pz": arr[:, 2], "E": arr[:, 3]})
            cs = fastjet.ClusterSequence(vectors, jetdef)
            index = cs.constituent_index(min_pt=settings.jet_ptmin * 0.8).to_list()
            rows.extend(event_jets(particles, index, n_done, weight, settings))
        n_done += 1
        if progress:
            progress(n_done, settings.n_events)
    columns = {k: np.array([r[k] for r in rows]) for k in JET_BRANCHES}
    if settings.bias_power > 0 and len(columns["weight"]):
        columns["weight"] = columns["weight"] / columns["weight"].mean()
    metadata = {
        "generator": "Pythia 8 via pythia8mc",
        "pythia_version": getattr(pythia8, "__version__", "unknown"),
        "fastjet_version": getattr(fastjet, "__version__", "unknown"),
        "settings": asdict(settings),
        "pythia_strings": settings.pythia_strings(),
        "jets": f"anti-kt R={settings.jet_r}, pt > {settings.jet_ptmin} GeV, "
        f"|eta| < {settings.jet_etamax}, visible final-state particles",
        "units": "GeV",
        "n_events": n_done,
        "n_jets": len(rows),
        "cross_section_mb": float(pythia.infoPython().sigmaGen()),
    }
    write_jets_root(out, columns, metadata)
    print(f"wrote {len(rows)} jets from {n_done} events to {out}", file=sys.stderr)
    return metadata
