import numpy as np
import pytest

from hepae_core.config import resolve
from hepae_core.data.jets import load_jets
from hepae_core.data.normalise import Normaliser


@pytest.fixture(scope="module")
def jets():
    cfg = resolve(
        {
            "data": {"max_jets": 20000, "variables": ["pt", "eta", "phi", "E", "m"]},
            "model": {"latent": 3},
        }
    )
    return load_jets(cfg)


@pytest.mark.parametrize("kind", ["standard", "minmax", "custom_4d", "none"])
def test_round_trip_is_exact_to_float32(jets, kind):
    norm = Normaliser.fit(kind, jets.variables, jets.values)
    y = norm.forward(jets.values)
    assert y.dtype == np.float32
    back = norm.inverse(y)
    np.testing.assert_allclose(back, jets.values, rtol=2e-6, atol=1e-6)


def test_custom_4d_formulas(jets):
    norm = Normaliser.fit("custom_4d", jets.variables, jets.values)
    y = norm.forward(jets.values)
    pt, eta, phi, e, m = (jets.values[:, i].astype(np.float64) for i in range(5))
    np.testing.assert_allclose(y[:, 0], (np.log10(pt) - 1.3) / 1.2, rtol=1e-6)
    np.testing.assert_allclose(y[:, 1], eta / 5, rtol=1e-6)
    np.testing.assert_allclose(y[:, 2], phi / 3, rtol=1e-6)
    np.testing.assert_allclose(y[:, 3], np.log10(e + 1) / 1.8, rtol=1e-6)
    np.testing.assert_allclose(y[:, 4], np.log10(m + 1) / 1.8, rtol=1e-6)


def test_fitted_on_given_rows_only(jets):
    half = jets.values[: len(jets.values) // 2]
    norm = Normaliser.fit("standard", jets.variables, half)
    np.testing.assert_allclose(norm.shift, half.astype(np.float64).mean(axis=0))


def test_saved_parameters_restore_the_same_map(jets):
    norm = Normaliser.fit("minmax", jets.variables, jets.values)
    again = Normaliser.from_dict(norm.to_dict())
    np.testing.assert_array_equal(again.forward(jets.values), norm.forward(jets.values))


def test_domain_errors_are_counted():
    x = np.array([[10.0, 0.0, 0.0, 5.0], [-1.0, 0.0, 0.0, 5.0], [0.0, 0.1, 0.1, 5.0]])
    norm = Normaliser.fit("custom_4d", ["pt", "eta", "phi", "E"], x)
    y = norm.forward(x)
    assert norm.domain_errors == {"pt": 2}
    assert np.isnan(y[1:, 0]).all() and np.isfinite(y[0]).all()
