"""Jet variable sets, their default residual kinds and the thesis normalisation formulas.

Kept free of numpy so configs can be checked without importing the numerical stack; the
formulas are declared here as data and evaluated in :mod:`hepae_core.data.normalise`.
"""

from __future__ import annotations

from typing import Any

VARIABLES_4D = ("pt", "eta", "phi", "E")

# The 27 ATLAS jet variables of the thesis, in the thesis order.
VARIABLES_27D = (
    "pt", "eta", "phi", "m", "ActiveArea", "ActiveArea4vec_eta", "ActiveArea4vec_m",
    "ActiveArea4vec_phi", "ActiveArea4vec_pt", "AverageLArQF", "NegativeE", "HECQuality",
    "LArQuality", "Width", "WidthPhi", "CentroidR", "DetectorEta",
    "LeadingClusterCenterLambda", "LeadingClusterPt", "LeadingClusterSecondLambda",
    "LeadingClusterSecondR", "N90Constituents", "EMFrac", "HECFrac", "Timing",
    "OotFracClusters10", "OotFracClusters5",
)  # fmt: skip
VARIABLES_25D = tuple(v for v in VARIABLES_27D if v not in ("Width", "WidthPhi"))

VARIABLE_SETS: dict[str, tuple[str, ...]] = {
    "4d": VARIABLES_4D,
    "4d_m": ("pt", "eta", "phi", "m"),
    "25d": VARIABLES_25D,
    "27d": VARIABLES_27D,
}

# Per-jet branches of the generator sample (hepae_core.data.generate, ../shared/data): usable in
# data.variables lists and in cuts.
GENERATOR_VARIABLES = (
    "event", "rank", "pt", "eta", "phi", "E", "m", "n_constituents", "n90", "width",
    "width_eta", "width_phi", "em_frac", "charged_frac", "neutral_hadron_frac", "n_trk500",
    "n_trk1000", "sum_pt_trk500", "lead_pt", "ptD", "tau21", "tau32", "weight",
)  # fmt: skip

# Per-object columns of the PhenoML / DarkMachines CSV reader (event-level ones repeated
# for each object of the event).
CSV_VARIABLES = ("E", "pt", "eta", "phi", "m", "event_weight", "MET", "MET_Phi")

# Every variable name the package knows (cuts may name these without a data.branches entry).
KNOWN_VARIABLES = frozenset(
    {v for names in VARIABLE_SETS.values() for v in names}
    | set(GENERATOR_VARIABLES)
    | set(CSV_VARIABLES)
)

# Variables quoted in MeV in ATLAS files; converted to GeV on reading when units: MeV.
ENERGY_VARIABLES = frozenset(
    {"pt", "E", "m", "LeadingClusterPt", "NegativeE", "MET", "lead_pt", "sum_pt_trk500"}
)

RELATIVE_RESIDUAL = frozenset({"pt", "E", "m", "LeadingClusterPt", "ActiveArea4vec_m"})
ANGLE_RESIDUAL = frozenset({"phi", "ActiveArea4vec_phi"})


def default_residual_kind(name: str) -> str:
    """``relative`` ((out-in)/in), ``angle`` (out-in wrapped to [-pi, pi]) or ``absolute``."""
    if name in RELATIVE_RESIDUAL:
        return "relative"
    if name in ANGLE_RESIDUAL:
        return "angle"
    return "absolute"


# Per-variable thesis formulas. Each is (kind, *params):
#   ("scale", a)                 x / a
#   ("affine", a, b)             x / a - b
#   ("log10", shift, offset, s)  (log10(x + shift) - offset) / s
#   ("neglog10", shift, s)       log10(-x + shift) / s
#   ("identity",)                x
CUSTOM_FORMULAS: dict[str, tuple[Any, ...]] = {
    "pt": ("log10", 0.0, 1.3, 1.2),
    "eta": ("scale", 5.0),
    "phi": ("scale", 3.0),
    "E": ("log10", 1.0, 0.0, 1.8),
    "m": ("log10", 1.0, 0.0, 1.8),
    "DetectorEta": ("scale", 5.0),
    "ActiveArea4vec_eta": ("scale", 5.0),
    "ActiveArea4vec_phi": ("scale", 3.0),
    "EMFrac": ("scale", 1.6),
    "NegativeE": ("neglog10", 1.0, 1.6),
    "Width": ("scale", 0.6),
    "WidthPhi": ("scale", 0.6),
    "N90Constituents": ("scale", 20.0),
    "Timing": ("scale", 40.0),
    "HECQuality": ("scale", 1.0),
    "ActiveArea": ("scale", 0.8),
    "ActiveArea4vec_m": ("affine", 0.18, 0.15),
    "ActiveArea4vec_pt": ("scale", 0.7),
    "LArQuality": ("scale", 0.6),
    "LeadingClusterCenterLambda": ("log10", 100.0, 2.0, 2.0),
    "LeadingClusterSecondLambda": ("log10", 100.0, 2.0, 1.0),
    "LeadingClusterSecondR": ("log10", 100.0, 2.0, 0.6),
    "AverageLArQF": ("log10", 100.0, 2.0, 2.5),
    "LeadingClusterPt": ("log10", 0.0, 0.0, 1.2),
    "CentroidR": ("log10", 0.0, 3.0, 0.8),
    "OotFracClusters5": ("log10", 1.0, 0.0, 0.3),
    "OotFracClusters10": ("log10", 1.0, 0.0, 0.3),
    "HECFrac": ("identity",),
}
