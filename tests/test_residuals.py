"""Residual statistics, casts, quantisers and baselines against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hepae_core.codecs.baselines import PCACoder, cast_roundtrip, lossless_bytes, ratio
from hepae_core.codecs.quantise import (
    LatentQuantiser,
    ScalarQuantiser,
    code_dtype,
    natural_space,
    uniform_decode,
    uniform_encode,
)
from hepae_core.evaluation.residuals import residual_stats, residuals, stats_table

# --------------------------------------------------------------------------- statistics


def test_width_is_half_the_16_84_interval() -> None:
    # 0, 1, ..., 100: numpy's linear percentiles are exactly 16 and 84, so the width is 34.
    r = np.arange(101, dtype=float)
    s = residual_stats(r)
    assert s["width"] == pytest.approx(34.0)
    assert s["mean"] == pytest.approx(50.0)


def test_mean_std_rms_by_hand() -> None:
    r = np.array([1.0, -1.0, 3.0, 1.0])  # mean 1, deviations 0,-2,2,0 -> var 2; rms sqrt(3)
    s = residual_stats(r)
    assert s["mean"] == pytest.approx(1.0)
    assert s["std"] == pytest.approx(math.sqrt(2.0))
    assert s["rms"] == pytest.approx(math.sqrt(3.0))


def test_tail_fractions_count_the_right_thresholds() -> None:
    # |r| above 0.01: 0.02, 0.06, -0.3, 0.011, -0.05 (5 of 10); above 0.05: 0.06, -0.3
    # (2 of 10: 0.05 itself is not above).
    r = np.array([0.0, 0.005, -0.009, 0.02, 0.06, -0.3, 0.011, 0.01, -0.05, 0.001])
    s = residual_stats(r)
    assert s["frac_1pct"] == pytest.approx(0.5)
    assert s["frac_5pct"] == pytest.approx(0.2)


def test_nonfinite_residuals_are_left_out_and_empty_is_nan() -> None:
    s = residual_stats(np.array([np.nan, 2.0, np.inf, 4.0]))
    assert s["mean"] == pytest.approx(3.0)
    assert all(math.isnan(v) for v in residual_stats(np.array([np.nan])).values())


def test_residual_kinds_by_hand() -> None:
    x = np.array([[100.0, 1.0, 3.1, 0.0]])
    y = np.array([[101.0, 1.5, -3.1, 2.0]])
    r = residuals(x, y, ["relative", "absolute", "angle", "relative"])
    assert r[0, 0] == pytest.approx(0.01)
    assert r[0, 1] == pytest.approx(0.5)
    assert r[0, 2] == pytest.approx(2 * math.pi - 6.2)  # -6.2 wrapped: the short way round
    assert math.isnan(r[0, 3])  # relative residual of an input of zero


def test_stats_table_keys_and_selection() -> None:
    res = np.array([[0.0, 1.0], [2.0, 1.0]])
    t = stats_table("sq8", res, ["pt", "eta"], ("mean", "width"))
    assert set(t) == {"sq8.pt.mean", "sq8.pt.width", "sq8.eta.mean", "sq8.eta.width"}
    assert t["sq8.pt.mean"] == 1.0 and t["sq8.eta.width"] == 0.0


# --------------------------------------------------------------------------- casts


def test_float16_keeps_11_and_bfloat16_8_significant_bits() -> None:
    # 1 + 2^-10 is exact in float16 (11 significant bits) but rounds to 1 in bfloat16
    # (8 bits: ties to even); 1 + 2^-7 is exact in both; 1 + 2^-11 is a tie in float16.
    x = np.array([1 + 2**-10, 1 + 2**-7, 1 + 2**-11, 1 + 3 * 2**-9], dtype=np.float32)
    f16 = cast_roundtrip(x, "float16")
    bf16 = cast_roundtrip(x, "bfloat16")
    assert f16.tolist() == [1 + 2**-10, 1 + 2**-7, 1.0, 1 + 3 * 2**-9]
    assert bf16.tolist() == [1.0, 1 + 2**-7, 1.0, 1 + 2**-7]  # 1.5 * 2^-7 rounds to even (1)


def test_bfloat16_keeps_float32_range_and_float16_does_not() -> None:
    x = np.array([1e30, 1e-30, 70000.0], dtype=np.float32)
    bf16 = cast_roundtrip(x, "bfloat16")
    assert np.allclose(bf16, x, rtol=2**-8)
    f16 = cast_roundtrip(x, "float16")
    assert np.isinf(f16[0]) and f16[1] == 0.0 and np.isinf(f16[2])


def test_cast_relative_error_bounds_on_smooth_data() -> None:
    # Round to nearest with p significant bits: relative error at most 2^-p.
    x = np.exp(np.random.default_rng(1).uniform(0, 5, 100_000)).astype(np.float32)
    e16 = np.abs(cast_roundtrip(x, "float16") / x - 1)
    eb16 = np.abs(cast_roundtrip(x, "bfloat16") / x - 1)
    assert e16.max() <= 2**-11 * 1.0001 and e16.max() > 2**-12
    assert eb16.max() <= 2**-8 * 1.0001 and eb16.max() > 2**-9


def test_bfloat16_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).normal(0, 100, 10_000).astype(np.float32)
    ref = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    assert np.array_equal(cast_roundtrip(x, "bfloat16"), ref)


# --------------------------------------------------------------------------- quantisers


def test_uniform_quantiser_cells_by_hand() -> None:
    # [0, 8] with 2 bits: cells of width 2, centres 1, 3, 5, 7.
    codes, clipped = uniform_encode(np.array([0.0, 1.9, 2.0, 7.99, 8.0, 9.0, -1.0]), 0, 8, 2)
    assert codes.tolist() == [0, 0, 1, 3, 3, 3, 0]
    assert clipped == 2
    assert uniform_decode(codes, 0, 8, 2).tolist() == [1, 1, 3, 7, 7, 7, 1]
    codes, clipped = uniform_encode(np.array([9.0, -1.0]), 0, 8, 2, periodic=True)
    assert codes.tolist() == [0, 3] and clipped == 0


def test_uniform_quantiser_error_is_step_over_sqrt12() -> None:
    t = np.random.default_rng(3).uniform(-2, 2, 400_000)
    for bits in (4, 8, 12):
        step = 4 / 2**bits
        err = uniform_decode(uniform_encode(t, -2, 2, bits)[0], -2, 2, bits) - t
        assert err.std() == pytest.approx(step / math.sqrt(12), rel=0.01)
        assert np.abs(err).max() <= step / 2
        s = residual_stats(err)
        assert s["width"] == pytest.approx(0.34 * step, rel=0.02)  # uniform: 0.68 / 2


def test_code_dtype_is_the_narrowest() -> None:
    assert [code_dtype(b).itemsize for b in (1, 8, 9, 16, 17)] == [1, 1, 2, 2, 4]


def test_natural_spaces() -> None:
    pos = np.array([20.0, 35.5, 1000.0])
    assert natural_space("pt", pos) == "log"
    assert natural_space("E", pos, "relative") == "log"
    assert natural_space("eta", np.array([-1.2, 0.3])) == "linear"
    assert natural_space("phi", np.array([0.1, -2.0])) == "periodic"
    assert natural_space("n90", np.array([1.0, 4.0, 12.0])) == "integer"
    assert natural_space("m", np.array([0.0, 3.2])) == "linear"  # a log needs m > 0


def _jets(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pt = 20 * np.exp(rng.exponential(0.5, n))
    eta = rng.uniform(-4, 4, n)
    phi = rng.uniform(-math.pi, math.pi, n)
    e = pt * np.cosh(eta)
    n90 = rng.integers(1, 30, n).astype(float)
    return np.stack([pt, eta, phi, e, n90], axis=1)


VARS = ["pt", "eta", "phi", "E", "n90"]
KINDS = ["relative", "absolute", "angle", "relative", "absolute"]


def test_scalar_quantiser_widths_by_hand() -> None:
    train, test = _jets(200_000, 0), _jets(100_000, 1)
    sq = ScalarQuantiser.fit(VARS, train, KINDS)
    assert sq.spaces == ["log", "linear", "periodic", "log", "integer"]
    # Test jets beyond the training range are clipped (their error is not a cell's): keep
    # those inside for the by-hand widths.
    inside = np.all(
        (np.log(test[:, [0, 3]]) >= sq.lo[0::3][:2]) & (np.log(test[:, [0, 3]]) <= sq.hi[0::3][:2]),
        axis=1,
    )
    test = test[inside]
    k = 10
    res = residuals(test, sq.roundtrip(test, k), KINDS)
    # pt: log step s = (ln max - ln min) / 2^k; relative error ~ uniform in [-s/2, s/2].
    s_pt = (sq.hi[0] - sq.lo[0]) / 2**k
    assert residual_stats(res[:, 0])["width"] == pytest.approx(0.34 * s_pt, rel=0.05)
    assert residual_stats(res[:, 0])["std"] == pytest.approx(s_pt / math.sqrt(12), rel=0.05)
    s_eta = (sq.hi[1] - sq.lo[1]) / 2**k
    assert residual_stats(res[:, 1])["std"] == pytest.approx(s_eta / math.sqrt(12), rel=0.03)
    s_phi = 2 * math.pi / 2**k
    assert residual_stats(res[:, 2])["width"] == pytest.approx(0.34 * s_phi, rel=0.03)
    assert np.all(res[:, 4] == 0)  # integers exactly
    # integer column: 1..29 needs 5 bits; the other four k each.
    assert sq.bits(k) == [10, 10, 10, 10, 5]
    assert sq.bits_per_jet(k) == 45
    assert sq.side_bytes == 5 * 8


def test_scalar_quantiser_clips_and_counts_out_of_range() -> None:
    train = np.array([[20.0, -1.0], [200.0, 1.0]])
    sq = ScalarQuantiser.fit(["pt", "eta"], train, ["relative", "absolute"])
    x = np.array([[10.0, 0.0], [300.0, 2.0], [50.0, 0.5]])
    y = sq.roundtrip(x, 8)
    assert sq.clipped == {"pt": 2, "eta": 1}
    assert 20 <= y[0, 0] < 20.2 and 198 < y[1, 0] <= 200 and 0.99 < y[1, 1] <= 1.0


def test_latent_quantiser_ranges_and_clip() -> None:
    q = LatentQuantiser.fit(np.array([[0.0, -1.0], [4.0, 1.0]]))
    assert q.lo == [0.0, -1.0] and q.hi == [4.0, 1.0] and q.side_bytes == 16
    codes = q.encode(np.array([[0.1, 0.0], [5.0, -2.0]]), 2)
    assert codes.dtype == np.uint8 and codes.tolist() == [[0, 2], [3, 0]]
    assert q.clipped == 2
    assert q.decode(codes, 2).tolist() == [[0.5, 0.25], [3.5, -0.75]]


def test_pca_on_a_plane_is_exact_with_two_components() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(2, 5000))
    x = np.stack([a, b, a + b, a - 2 * b], axis=1)  # rank 2
    pca = PCACoder.fit(["u", "v", "w", "s"], x, 2, ["absolute"] * 4)
    assert pca.explained == pytest.approx(1.0)
    assert np.allclose(pca.roundtrip(x, None), x, atol=1e-9)
    one = PCACoder.fit(["u", "v", "w", "s"], x, 1, ["absolute"] * 4)
    assert one.explained < 0.9
    assert pca.side_bytes == 4 * (2 * 4 + 2 * 4) + 8 * 2
    err16 = np.abs(pca.roundtrip(x, 16) - x).max()
    err8 = np.abs(pca.roundtrip(x, 8) - x).max()
    assert err16 < err8 / 100


def test_lossless_bytes_are_real_and_ratio_by_hand() -> None:
    const = np.ones((10_000, 4))
    assert lossless_bytes(const) < 10_000 * 4 * 4 / 50  # constant columns compress away
    noise = np.random.default_rng(5).normal(size=(10_000, 4))
    nbytes = lossless_bytes(noise)
    assert 0.7 * 160_000 < nbytes < 1.05 * 160_000  # random mantissas barely compress
    # 1000 jets x 4 float32 = 16000 bytes; 40 bits a jet = 5000 bytes + 32 side bytes.
    assert ratio(1000, 4, 40, 32) == pytest.approx(16000 / 5032)
