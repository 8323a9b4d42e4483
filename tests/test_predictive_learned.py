"""The predictive codec's contexts (value bins, the exact-1 symbol) and its learned
predictors (hepae_core.codecs.pred_learned): hand-worked cases, every value within its bound,
model bytes that read back into the same decoder."""

from __future__ import annotations

import numpy as np
import pytest

from hepae_core.codecs import predictive
from hepae_core.codecs.pred_learned import (
    GRID,
    AutoencoderPredictiveCodec,
    MLPPredictiveCodec,
    forward,
    snap,
)
from hepae_core.codecs.predictive import PredictiveCodec


def _off_bound(y: np.ndarray, x: np.ndarray, kinds: list[str], bound: float) -> int:
    """Values of ``y`` that miss the bound on ``x`` (written out here, not the codec's)."""
    miss = 0
    for j, kind in enumerate(kinds):
        err = np.abs(y[:, j] - x[:, j])
        limit = bound * np.abs(x[:, j]) if kind == "relative" else bound
        miss += int(np.sum(~(err <= limit)))
    return miss


def _fractions(n: int, seed: int = 0) -> np.ndarray:
    """u in [0, 1]; a fraction f near u, exactly 0 / 1 for most jets with u near 0 / 1."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.0, 1.0, n)
    f = np.clip(u + rng.normal(0, 0.05, n), 0, 1)
    f[(u < 0.2) & (rng.random(n) < 0.7)] = 0.0  # exact edges, likely where u is near them
    f[(u > 0.9) & (rng.random(n) < 0.7)] = 1.0
    return np.stack([u, f], axis=1)


def test_exactly_one_has_its_own_symbol() -> None:
    """An absolute variable's exact 1 decodes to exactly 1 through the ONE symbol (nothing
    raw); a relative variable's 1 is an ordinary code (log 1 = 0, on the grid)."""
    x = np.array([[1.0, 1.0], [0.5, 2.0], [1.0, 3.0], [0.0, 1.0]])
    c = PredictiveCodec(["f", "pt"], ["absolute", "relative"], bounds=1e-3, predictor="none")
    enc = c.encode(x)
    y = c.decode(enc)
    assert y[0, 0] == 1.0 and y[2, 0] == 1.0 and y[3, 0] == 0.0
    assert y[0, 1] == 1.0 and y[3, 1] == 1.0  # exp(0 * step)
    assert enc.clipped == 0
    counts, _, _ = c.last_counts
    f_counts, pt_counts = counts
    assert f_counts[predictive.ONE] == 2 and f_counts[predictive.ZERO] == 1
    assert pt_counts[predictive.ONE] == 0  # relative: no special 1


def test_value_bins_by_hand() -> None:
    """The bin is where the predicted value falls among the training quantiles; the table
    is (size bin) x value_bins + (value bin)."""
    c = PredictiveCodec(["u", "f"], ["absolute", "absolute"], bounds=1e-3, contexts=8,
                        value_bins=4)  # fmt: skip
    assert (c.n_scale, c.n_value) == (2, 4)
    c.order = [0, 1]
    c.edges = [np.empty(0), np.array([0.1, 0.5, 0.9])]
    p = np.array([0.0, 0.1, 0.3, 0.5, 0.95, 0.7])
    assert c._value_bin(1, p).tolist() == [0, 0, 1, 1, 3, 2]  # left edges: the lower bin
    assert c._value_bin(0, p).tolist() == [0] * 6  # no thresholds: one bin
    # value_bins that do not divide contexts: no value bins
    assert PredictiveCodec(["u"], ["absolute"], contexts=6, value_bins=4).n_value == 1


def test_value_bins_store_less_on_fractions_at_their_edges() -> None:
    """f near u, with point masses at 0 and 1 where u (the prediction) is near them: the
    value bins know where the exact 0 / 1 are likely, one table does not."""
    x = _fractions(60_000)
    train, test = x[:30_000], x[30_000:]
    one = PredictiveCodec(["u", "f"], ["absolute", "absolute"], contexts=1)
    values = PredictiveCodec(["u", "f"], ["absolute", "absolute"], contexts=4, value_bins=4)
    assert values.n_scale == 1
    out = {}
    for name, c in (("one", one), ("values", values)):
        c.fit(train)
        enc = c.encode(test)
        assert _off_bound(c.decode(enc), test, ["absolute"] * 2, 1e-3) == 0
        out[name] = enc.attrs["ideal_bits"][1]
    assert out["values"] < out["one"] - 0.3, out


def test_mlp_where_the_polynomial_cannot_follow() -> None:
    """v = |u| - 0.5 (a kink: the quadratic misses it by ~0.06, a ReLU network fits it):
    the network is kept for v, stores less than the polynomial, every value meets its
    bound, and a reader built from the model bytes decodes the same jets."""
    rng = np.random.default_rng(1)
    u = rng.uniform(-1, 1, 40_000)
    x = np.stack([u, np.abs(u) - 0.5 + rng.normal(0, 0.002, len(u))], axis=1)
    kinds = ["absolute", "absolute"]
    lin = PredictiveCodec(["u", "v"], kinds, contexts=1)
    mlp = MLPPredictiveCodec(["u", "v"], kinds, contexts=1, hidden=16, epochs=10,
                             train_rows=20_000)  # fmt: skip
    lin.fit(x[:20_000])
    mlp.fit(x[:20_000])
    assert mlp.gains["v"] > 1.0 and mlp.mlp[1] is not None and mlp.mlp[0] is None
    test = x[20_000:]
    e_lin, e_mlp = lin.encode(test), mlp.encode(test)
    assert e_mlp.attrs["ideal_bits"][1] < e_lin.attrs["ideal_bits"][1] - 1.0, (
        e_mlp.attrs["ideal_bits"],
        e_lin.attrs["ideal_bits"],
    )
    y = mlp.decode(e_mlp)
    assert _off_bound(y, test, kinds, 1e-3) == 0
    reader = MLPPredictiveCodec(["u", "v"], kinds, contexts=1, hidden=16)
    reader.load_model_blob(mlp.model_blob() or b"")
    assert np.array_equal(reader.decode(e_mlp), y)
    with pytest.raises(ValueError, match="do not fit"):
        MLPPredictiveCodec(["u", "v"], kinds, contexts=1, hidden=8).load_model_blob(
            mlp.model_blob() or b""
        )


def test_a_network_by_hand_and_the_snap() -> None:
    """forward(): ReLU hidden layers, a linear (or tanh) last; snap() to the grid."""
    w1, b1 = np.array([[1.0, -1.0]]), np.array([0.0, 0.0])
    w2, b2 = np.array([[1.0], [1.0]]), np.array([-0.5])
    z = np.array([[-2.0], [0.25], [3.0]])
    assert forward(z, [(w1, b1), (w2, b2)])[:, 0].tolist() == [1.5, -0.25, 2.5]  # |z| - 0.5
    assert np.allclose(forward(z, [(w1, b1), (w2, b2)], last="tanh")[:, 0],
                       np.tanh([1.5, -0.25, 2.5]))  # fmt: skip
    v = np.array([0.3, -1.7]) * GRID
    assert snap(v, GRID).tolist() == [0.0, -2 * GRID]


def test_autoencoder_as_predictor_round_trips_within_bounds() -> None:
    """The latent is coded first (its bits reported apart), each variable's residual
    against the decoder's output after it; the bound holds on every value, and a reader
    from the model bytes decodes the same jets."""
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1, 30_000)
    x = np.stack([a, 2 * a + rng.normal(0, 0.01, len(a)), np.exp(0.3 * a + 3)], axis=1)
    names, kinds = ["a", "b", "pt"], ["absolute", "absolute", "relative"]
    for use_decoded in (False, True):
        c = AutoencoderPredictiveCodec(names, kinds, latent=1, latent_bits=6, hidden=16,
                                       epochs=2, contexts=1, use_decoded=use_decoded)  # fmt: skip
        c.fit(x[:15_000])
        test = x[15_000:]
        enc = c.encode(test)
        y = c.decode(enc)
        assert _off_bound(y, test, kinds, 1e-3) == 0
        assert len(enc.attrs["latent_bits"]) == 1 and 0 < enc.attrs["latent_bits"][0] <= 6
        assert len(enc.side["cmin"]) == 1 + 3  # the latent's alphabet, then the variables'
        # the payload is the latent plus the residuals (the stream's overhead aside)
        bits = enc.attrs["latent_bits"][0] + sum(enc.attrs["ideal_bits"])
        assert 8 * enc.payload_bytes <= len(test) * bits * 1.02 + 256
        reader = AutoencoderPredictiveCodec(names, kinds, latent=1, latent_bits=6, hidden=16,
                                            contexts=1, use_decoded=use_decoded)  # fmt: skip
        reader.load_model_blob(c.model_blob() or b"")
        assert np.array_equal(reader.decode(enc), y)


def test_learned_predictors_keep_the_bound_with_a_broken_quantiser(monkeypatch) -> None:
    """A residual quantiser one cell off: the bound check stores the values raw, the
    learned codecs like the plain one."""
    x = _fractions(8000, seed=4)
    monkeypatch.setattr(predictive, "quantise_residual", lambda r, step: np.rint(r / step) + 1)
    kinds = ["absolute", "absolute"]
    mlp = MLPPredictiveCodec(["u", "f"], kinds, hidden=8, epochs=1, min_gain=-1e9)
    ae = AutoencoderPredictiveCodec(["u", "f"], kinds, latent=1, hidden=8, epochs=1)
    for c in (mlp, ae):
        c.fit(x[:4000])
        enc = c.encode(x[4000:])
        assert _off_bound(c.decode(enc), x[4000:], kinds, 1e-3) == 0
        assert enc.clipped > 0.3 * x[4000:].size


def test_sixteen_tables_code_at_the_entropy_of_their_codes() -> None:
    """With 4 size x 4 value contexts, the ANS payload is within 2 % of the sum over the
    tables of the empirical entropy of their symbols, computed here from the symbols."""
    x = _fractions(40_000, seed=5)
    c = PredictiveCodec(["u", "f"], ["absolute", "absolute"], contexts=16, value_bins=4)
    c.fit(x[:20_000])
    enc = c.encode(x[20_000:])
    counts, _, _ = c.last_counts
    assert len(counts) == 2 * 16
    total = 0.0
    for n in counts:
        n = n[n > 0]
        total += float(-(n * np.log2(n / n.sum())).sum())
    assert total > 0
    assert abs(8 * enc.payload_bytes - total) <= 0.02 * total + 64, (8 * enc.payload_bytes, total)
