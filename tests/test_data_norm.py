"""The thesis custom_27d normalisation: formulas as published, exact inverses, domain errors."""

from __future__ import annotations

import numpy as np

from hepae_core.data.normalise import Normaliser
from hepae_core.data.readers.synthetic import atlas_columns
from hepae_core.variables import VARIABLES_25D, VARIABLES_27D

L = np.log10
# The formulas as the issue / thesis states them, written out independently.
THESIS = {
    "eta": lambda x: x / 5,
    "DetectorEta": lambda x: x / 5,
    "ActiveArea4vec_eta": lambda x: x / 5,
    "phi": lambda x: x / 3,
    "ActiveArea4vec_phi": lambda x: x / 3,
    "EMFrac": lambda x: x / 1.6,
    "NegativeE": lambda x: L(-x + 1) / 1.6,
    "Width": lambda x: x / 0.6,
    "WidthPhi": lambda x: x / 0.6,
    "N90Constituents": lambda x: x / 20,
    "Timing": lambda x: x / 40,
    "HECQuality": lambda x: x / 1,
    "ActiveArea": lambda x: x / 0.8,
    "ActiveArea4vec_m": lambda x: x / 0.18 - 0.15,
    "ActiveArea4vec_pt": lambda x: x / 0.7,
    "LArQuality": lambda x: x / 0.6,
    "m": lambda x: L(x + 1) / 1.8,
    "LeadingClusterCenterLambda": lambda x: (L(x + 100) - 2) / 2,
    "LeadingClusterSecondLambda": lambda x: (L(x + 100) - 2) / 1,
    "LeadingClusterSecondR": lambda x: (L(x + 100) - 2) / 0.6,
    "AverageLArQF": lambda x: (L(x + 100) - 2) / 2.5,
    "pt": lambda x: (L(x) - 1.3) / 1.2,
    "LeadingClusterPt": lambda x: L(x) / 1.2,
    "CentroidR": lambda x: (L(x) - 3) / 0.8,
    "OotFracClusters5": lambda x: L(x + 1) / 0.3,
    "OotFracClusters10": lambda x: L(x + 1) / 0.3,
    "HECFrac": lambda x: x,
}


def in_domain(n: int = 5000) -> np.ndarray:
    cols = atlas_columns(n, np.random.default_rng(4), outlier_fraction=0.0)
    return np.stack([cols[v] for v in VARIABLES_27D], axis=1).astype(np.float32)


def test_sets_of_variables():
    assert len(VARIABLES_27D) == 27 and len(VARIABLES_25D) == 25
    assert set(VARIABLES_27D) - set(VARIABLES_25D) == {"Width", "WidthPhi"}
    assert set(THESIS) == set(VARIABLES_27D)


def test_forward_is_the_thesis_formula():
    x = in_domain()
    norm = Normaliser.fit("custom_27d", list(VARIABLES_27D), x)
    y = norm.forward(x)
    assert norm.domain_errors == {}
    for j, v in enumerate(VARIABLES_27D):
        expected = THESIS[v](x[:, j].astype(np.float64))
        np.testing.assert_allclose(y[:, j], expected, rtol=1e-6, atol=1e-7, err_msg=v)


def test_round_trip_exact_to_float32_precision():
    """inverse(forward(x)) == x up to the float32 rounding of x and of the normalised value."""
    x = in_domain()
    norm = Normaliser.fit("custom_27d", list(VARIABLES_27D), x)
    y = norm.forward(x)
    back = norm.inverse(y)
    # What one float32 ulp of the normalised value moves the physical value by:
    y_next = np.nextafter(y, np.float32(np.inf))
    step = np.abs(norm.inverse(y_next).astype(np.float64) - back.astype(np.float64))
    eps32 = np.finfo(np.float32).eps
    tol = 2 * step + 2 * eps32 * np.abs(x.astype(np.float64)) + 1e-30
    err = np.abs(back.astype(np.float64) - x.astype(np.float64))
    for j, v in enumerate(VARIABLES_27D):
        assert np.all(err[:, j] <= tol[:, j]), (v, float((err[:, j] / tol[:, j]).max()))
    # and relative to the spread of each variable, far below any residual we care about
    spread = x.std(axis=0).astype(np.float64)
    assert np.all(err.max(axis=0) / spread < 1e-5)


def test_round_trip_exact_in_float64():
    from hepae_core.data.normalise import _custom_forward, custom_inverse
    from hepae_core.variables import CUSTOM_FORMULAS

    x = in_domain().astype(np.float64)
    for j, v in enumerate(VARIABLES_27D):
        y, bad = _custom_forward(CUSTOM_FORMULAS[v], x[:, j])
        assert bad == 0
        np.testing.assert_allclose(
            custom_inverse(CUSTOM_FORMULAS[v], y), x[:, j], rtol=1e-11, atol=1e-9, err_msg=v
        )


def test_domain_errors_are_counted_not_hidden():
    x = in_domain(100)
    cols = list(VARIABLES_27D)
    x[:3, cols.index("pt")] = 0.0  # log10(0)
    x[:5, cols.index("NegativeE")] = 2.0  # log10(-2 + 1)
    x[:2, cols.index("OotFracClusters5")] = -1.0  # log10(0)
    x[:4, cols.index("LeadingClusterCenterLambda")] = -150.0  # log10(-50)
    norm = Normaliser.fit("custom_27d", cols, x)
    y = norm.forward(x)
    assert norm.domain_errors == {
        "pt": 3,
        "NegativeE": 5,
        "OotFracClusters5": 2,
        "LeadingClusterCenterLambda": 4,
    }
    assert np.isnan(y[:5]).any() and np.isfinite(y[5:]).all()
