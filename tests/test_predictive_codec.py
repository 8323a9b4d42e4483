"""Error-bounded predictive coding: hand-worked cases, every value within its bound, and the
entropy coder at the entropy of the codes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hepae_core.codecs import predictive
from hepae_core.codecs import registry as codecs
from hepae_core.codecs.predictive import PredictiveCodec
from hepae_core.data.jets import bundled_path

VARS = ["pt", "eta", "phi", "E"]
KINDS = ["relative", "absolute", "angle", "relative"]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "dijet_13TeV_pthat25.root"
VARS_14D = ["pt", "eta", "phi", "E", "m", "width", "width_eta", "width_phi", "em_frac",
            "charged_frac", "neutral_hadron_frac", "sum_pt_trk500", "lead_pt", "ptD"]  # fmt: skip
RELATIVE = {"pt", "E", "m", "sum_pt_trk500", "lead_pt"}


@pytest.fixture(scope="module")
def jets() -> tuple[np.ndarray, np.ndarray]:
    import uproot

    with uproot.open(bundled_path("dijet_4d")) as f:
        t = f["jets"]
        x = np.stack([t[v].array(library="np") for v in VARS], axis=1).astype(np.float64)
    idx = np.random.default_rng(3).permutation(len(x))
    return x[idx[:50_000]], x[idx[50_000:]]


def _off_bound(y: np.ndarray, x: np.ndarray, kinds: list[str], bound: float) -> int:
    """Values of ``y`` that miss the bound on ``x`` (written out here, not the codec's)."""
    miss = 0
    for j, kind in enumerate(kinds):
        err = np.abs(y[:, j] - x[:, j])
        limit = bound * np.abs(x[:, j]) if kind == "relative" else bound
        miss += int(np.sum(~(err <= limit)))
    return miss


def test_the_quantiser_by_hand() -> None:
    """No predictor: the nearest multiple of 2 b (absolute) or of 2 log1p(b) in log."""
    x = np.array([[0.0034, 100.0], [-0.0011, 0.0], [0.0, 1.0]])
    c = PredictiveCodec(["w", "pt"], ["absolute", "relative"], bounds=1e-3, predictor="none")
    enc = c.encode(x)
    y = c.decode(enc)
    # 0.0034 / 0.002 = 1.7 -> 2 -> 0.004; -0.0011 / 0.002 = -0.55 -> -1 -> -0.002; 0 -> 0
    assert y[:, 0] == pytest.approx([0.004, -0.002, 0.0], abs=1e-15)
    step = 2 * math.log1p(1e-3)
    k = round(math.log(100.0) / step)  # 4.60517 / 0.0019990 = 2303.7 -> 2304
    assert k == 2304
    assert y[0, 1] == pytest.approx(math.exp(k * step), rel=1e-12)
    assert abs(y[0, 1] - 100.0) <= 0.1
    # a scale value of exactly 0 has its own symbol: 0 back, nothing stored raw
    assert y[1, 1] == 0.0 and y[2, 1] == 1.0
    assert enc.clipped == 0 and len(enc.side["raw"]) == 0


def test_a_predictor_with_known_residuals_codes_all_zeros() -> None:
    """v = 2 u exactly, u on the quantiser's grid: v's residual codes are all 0 (one symbol,
    entropy 0), and u's codes are the grid indices."""
    step = 2e-3
    rng = np.random.default_rng(0)
    # no 0 (its own symbol), and v = 2 u below 1 (an absolute variable's exact 1: its own)
    k = rng.integers(1, 200, 20_000) * rng.choice([-1, 1], 20_000)
    u = k * step
    x = np.stack([u, 2 * u], axis=1)
    c = PredictiveCodec(["u", "v"], ["absolute", "absolute"], bounds=1e-3, predictor="linear",
                        contexts=1)  # fmt: skip
    c.fit(x)
    assert c.coef[1] is not None
    enc = c.encode(x)
    y = c.decode(enc)
    assert np.allclose(y[:, 0], u, rtol=0, atol=1e-12)  # on the grid: exact
    # v decodes to its prediction (code 0): the fitted 2 u' (float32 coefficients)
    assert np.abs(y[:, 1] - x[:, 1]).max() < 1e-4
    u_bits, v_bits = enc.attrs["ideal_bits"]
    assert v_bits == 0.0  # every residual code of v is 0
    _, counts = np.unique(k, return_counts=True)
    p = counts / counts.sum()
    assert u_bits == pytest.approx(float(-(p * np.log2(p)).sum()), abs=1e-3)
    # v's one-symbol stream costs (almost) nothing: the payload is u's codes
    assert 8 * enc.payload_bytes <= len(x) * u_bits * 1.02 + 64


def test_every_value_within_its_bound_on_the_bundled_jets(jets) -> None:
    train, test = jets
    for pred in predictive.PREDICTORS:
        c = codecs.build("pred", VARS, KINDS, bounds=1e-3, predictor=pred)
        c.fit(train)
        enc = c.encode(test)
        y = c.decode(enc)
        assert _off_bound(y, test, KINDS, 1e-3) == 0, pred
        assert enc.clipped <= 1e-4 * test.size, pred  # raw only at cell edges / escapes


@pytest.mark.skipif(not SHARED.exists(), reason="no shared dijet sample")
def test_every_value_within_its_bound_on_14_variables() -> None:
    import uproot

    with uproot.open(SHARED) as f:
        a = f["jets"].arrays(VARS_14D, library="np", entry_stop=60_000)
    x = np.stack([a[v] for v in VARS_14D], axis=1).astype(np.float64)
    kinds = ["relative" if v in RELATIVE else predictive.default_kind(v) for v in VARS_14D]
    c = PredictiveCodec(VARS_14D, kinds, bounds=1e-3, predictor="linear", contexts=4)
    c.fit(x[:30_000])
    enc = c.encode(x[30_000:])
    y = c.decode(enc)
    assert _off_bound(y, x[30_000:], kinds, 1e-3) == 0
    none = PredictiveCodec(VARS_14D, kinds, bounds=1e-3, predictor="none").encode(x[30_000:])
    assert enc.payload_bytes < 0.9 * none.payload_bytes  # prediction pays


def test_entropy_coded_size_is_the_entropy_of_the_codes(jets) -> None:
    """The ANS payload within 2 % of the empirical entropy of the quantiser's codes,
    computed here from the codes alone; the tables are counted apart as side bytes."""
    _, test = jets
    c = PredictiveCodec(VARS, KINDS, bounds=1e-3, predictor="none")
    enc = c.encode(test)
    assert enc.clipped <= 5  # a value at a cell edge that float rounding puts off bound
    total = 0.0
    for j, kind in enumerate(KINDS):
        t = np.log(test[:, j]) if kind == "relative" else test[:, j]
        step = 2 * math.log1p(1e-3) if kind == "relative" else 2e-3
        _, counts = np.unique(np.rint(t / step), return_counts=True)
        p = counts / counts.sum()
        total += float(-(counts * np.log2(p)).sum())
    bits = 8 * enc.payload_bytes
    assert abs(bits - total) <= 0.02 * total, (bits, total)
    assert enc.side_bytes > 0 and "tables" in enc.side


def test_the_bound_check_catches_a_broken_quantiser(jets, monkeypatch) -> None:
    """A residual quantiser one cell off meets no bound; the check stores those values raw,
    so the bound holds all the same (and the raw count says what happened)."""
    _, test = jets
    x = test[:5000]
    monkeypatch.setattr(predictive, "quantise_residual", lambda r, step: np.rint(r / step) + 1)
    c = PredictiveCodec(VARS, KINDS, bounds=1e-3, predictor="physics")
    enc = c.encode(x)
    y = c.decode(enc)
    assert _off_bound(y, x, KINDS, 1e-3) == 0
    assert enc.clipped > 0.5 * x.size


def test_a_code_outside_the_alphabet_goes_raw() -> None:
    x = np.zeros((1000, 1))
    x[:, 0] = np.linspace(0, 1, 1000)
    x[7, 0] = 1e9  # 5e11 cells away
    c = PredictiveCodec(["w"], ["absolute"], bounds=1e-3, predictor="none")
    enc = c.encode(x)
    y = c.decode(enc)
    assert y[7, 0] == 1e9 and enc.clipped == 1
    assert _off_bound(y, x, ["absolute"], 1e-3) == 0


def test_the_model_bytes_are_the_model_and_read_back(jets, tmp_path) -> None:
    train, test = jets
    c = PredictiveCodec(VARS, KINDS, bounds=1e-3, predictor="linear")
    c.fit(train)
    enc = c.encode(test)
    blob = c.model_blob()
    assert blob is not None and c.model_bytes == len(blob) > 0
    path = tmp_path / "pred.h5"
    stored = codecs.write_file(path, c, enc, blob)
    assert stored == codecs.stored_bytes(enc, c.model_bytes)
    back, model = codecs.read_file(path)
    reader = PredictiveCodec(VARS, KINDS, bounds=1e-3, predictor="linear")
    reader.load_model_blob(model)
    assert np.array_equal(reader.decode(back), c.decode(enc))
    # and the predictor pays on these jets: E from pt, eta
    plain = PredictiveCodec(VARS, KINDS, bounds=1e-3, predictor="none").encode(test)
    assert enc.payload_bytes < 0.85 * plain.payload_bytes


def test_few_jets_empty_contexts_and_zeros_round_trip(jets) -> None:
    """20 jets over 8 contexts (some empty), a zero fraction-like value, a negative E."""
    train, test = jets
    c = PredictiveCodec(VARS, KINDS, bounds=1e-3, predictor="linear", contexts=8)
    c.fit(train)
    x = test[:20].copy()
    x[3, 1] = 0.0  # eta exactly 0: its own symbol
    x[5, 3] = -1.0  # no log: stored raw
    enc = c.encode(x)
    y = c.decode(enc)
    assert y[3, 1] == 0.0 and y[5, 3] == -1.0
    assert enc.clipped == 1
    assert _off_bound(y, x, KINDS, 1e-3) == 0


def test_greedy_order_and_a_foreign_model_blob(jets) -> None:
    """Greedy: every variable once, and the codec round-trips in that order; a model blob
    of another codec is refused, not decoded into wrong jets."""
    train, test = jets
    c = PredictiveCodec(VARS, KINDS, bounds=1e-3, order="greedy", order_rows=5000)
    c.fit(train[:20_000])
    assert sorted(c.order) == [0, 1, 2, 3] and c.order[0] == 0  # pt: the cheapest first
    x = test[:5000]
    assert _off_bound(c.decode(c.encode(x)), x, KINDS, 1e-3) == 0
    blob = c.model_blob()
    one_table = PredictiveCodec(VARS, KINDS, bounds=1e-3, contexts=1)
    with pytest.raises(ValueError, match="do not fit"):
        one_table.load_model_blob(blob)
    with pytest.raises(ValueError, match="order"):
        PredictiveCodec(VARS, KINDS, order=["pt", "eta"])
