"""The floor of benchmarks/error_bounded.py: entropies of the quantised jets at the bounds.

Hand-worked cases: the quantiser's cells, plug-in and Miller-Madow entropies, the total
correlation and its bias, the held-out code length of a predictive codec's symbols (never
below the entropy it estimates), and the printed ceiling and verdict.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import entropy_floor as ef


def test_bound_cells_are_the_quantiser_of_step_twice_the_bound() -> None:
    # relative: log space, step 2 log1p(b); absolute: step 2 b; a zero has its own symbol
    b = 1e-3
    step = 2 * math.log1p(b)
    x = np.array([1.0, math.exp(step), math.exp(2.4 * step), 0.0])
    assert ef.bound_cells(x, "relative", b).tolist() == [0, 1, 2, ef.NO_VALUE]
    y = np.array([0.0, 0.0019, 0.0021, -0.0031])
    assert ef.bound_cells(y, "absolute", b).tolist() == [0, 1, 1, -2]


def test_plugin_and_miller_madow_entropies() -> None:
    assert ef.plugin_entropy(np.array([0, 0, 1, 1])) == (pytest.approx(1.0), 2)
    assert ef.plugin_entropy(np.array([0, 1, 2, 3])) == (pytest.approx(2.0), 4)
    # rows: (0, 0) twice, (0, 1) once, (1, 1) once -> 1.5 bits, 3 distinct
    rows = np.array([[0, 0], [0, 0], [0, 1], [1, 1]])
    assert ef.plugin_entropy(rows) == (pytest.approx(1.5), 3)
    # the first-order bias: (used - 1) / (2 n ln 2) = 1 / (8 ln 2) = 0.1803
    assert ef.miller_madow(1.0, 2, 4) == pytest.approx(1.0 + 1 / (8 * math.log(2)))


def test_total_correlation_and_its_bias() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(20_000)
    # two copies: 4 equal-frequency bins each, the same bin: TC = log2 4 = 2 bits exactly
    tc, bias = ef.total_correlation(np.stack([a, a], axis=1), 4, rng)
    assert tc == pytest.approx(2.0)
    assert bias < 0.01
    # independent: the plug-in estimate is its bias, the difference near 0
    tc, bias = ef.total_correlation(np.stack([a, rng.random(20_000)], axis=1), 16, rng)
    assert 0.0 < tc < 0.03 and abs(tc - bias) < 0.01


def _jets(n: int, rng: np.random.Generator) -> np.ndarray:
    pt = 20.0 * np.exp(rng.exponential(0.5, n))
    eta = rng.uniform(-2.0, 2.0, n)
    phi = rng.uniform(-math.pi, math.pi, n)
    e = pt * np.cosh(eta)
    return np.stack([pt, eta, phi, e], axis=1)


def test_floor_of_independent_pt_eta_phi_and_the_verdicts() -> None:
    rng = np.random.default_rng(1)
    x = _jets(100_000, rng)
    variables = ["pt", "eta", "phi", "E"]
    kinds = ["relative", "absolute", "angle", "relative"]
    bounds = dict.fromkeys(variables, 1e-3)
    fl = ef.measure_floor(x, variables, kinds, bounds, {"pt": 9.0, "eta": 11.0, "phi": 11.7,
                                                       "E": 0.5})  # fmt: skip
    # phi uniform over 2 pi in cells of 2e-3: log2(pi / 1e-3) = 11.617 bits
    assert fl.marginal["phi"][2] == pytest.approx(math.log2(math.pi / 1e-3), abs=0.02)
    # eta uniform over 4 in cells of 2e-3: log2 2000 = 10.966
    assert fl.marginal["eta"][2] == pytest.approx(math.log2(2000), abs=0.02)
    # independent: the joint is the sum of the marginals within the estimator's noise
    assert fl.three_tc < 0.01
    assert fl.three_joint == pytest.approx(fl.three_marginal, abs=0.01)
    # every jet its own fine (pt, eta, phi) cell: the plug-in joint is log2 N
    assert fl.three_plugin[0] == pytest.approx(math.log2(len(x)), abs=0.01)
    ceiling = 128 / fl.three_joint
    lines = ef.floor_lines(fl, sz3_ratio=ceiling / 2.5, best_ratio=3.0, goal=2.0)
    text = "\n".join(lines)
    assert f"= {ceiling:.2f}, 2.50x SZ3" in text
    # 2x SZ3 allows 128 / (2 sz3) bits; the rest is what pt, eta, phi leave
    budget = 128 / (2 * ceiling / 2.5)
    assert f"allows {budget:.1f} bits/jet" in text
    assert "the best codec spends 0.5 on them" in text
    assert lines[-1].startswith("floor verdict, ratio >= 2x SZ3: NOT met")
    assert "not ruled out by the floor (ceiling 2.50x)" in lines[-1]
    # the goal above the ceiling: out of reach, said so
    lines = ef.floor_lines(fl, sz3_ratio=ceiling / 1.5, best_ratio=3.0, goal=2.0)
    assert "out of reach: even with the other 1 variable free the ceiling is 1.50x" in lines[-1]
    lines = ef.floor_lines(fl, sz3_ratio=1.0, best_ratio=2.5, goal=2.0)
    assert lines[-1] == "floor verdict, ratio >= 2x SZ3: met"


def test_held_out_code_length_is_not_below_the_entropy_with_sparse_tables() -> None:
    """The test jets' symbols under tables of other jets, 8 contexts of ~600 jets a table
    over ~2,000 symbols: a held-out code cannot beat the entropy (log2 2000 = 10.97 bits for
    eta uniform over 4 at 1e-3), where the file's own plug-in tables look 2 bits cheaper."""
    from error_bounded import fit_table_bits_by_position

    from hepae_core.codecs.predictive import PredictiveCodec

    rng = np.random.default_rng(2)
    x = _jets(10_000, rng)[:, :2]
    codec = PredictiveCodec(["pt", "eta"], ["relative", "absolute"],
                            bounds={"pt": 1e-3, "eta": 1e-3}, contexts=8, value_bins=1)  # fmt: skip
    codec.fit(x[:5000])
    held = fit_table_bits_by_position(codec, x[:5000], x[5000:])
    own = codec.encode(x[5000:]).attrs["ideal_bits"]
    h_eta = math.log2(2000)
    assert own[1] < h_eta - 1.0  # the plug-in on its own tables: biased low
    assert h_eta - 0.02 < held[1] < h_eta + 0.6
    # pt's true entropy at these cells: its held-out length is above the plug-in one
    assert held[0] > own[0]


def _result(d: int, best: float, sz3: float, goal: float, second: float | None) -> dict:
    row = {"label": "MLP", "ratio": best, "fit_bits": 32.0 * d / best * 1.01, "side": 0,
           "model": 0, "enc_cpu": 2e5, "dec_cpu": 9e4}  # fmt: skip
    s = None if second is None else {"jets": 10, "sz3": sz3, "best": second, "miss": 0}
    return {"variables": [f"v{i}" for i in range(d)], "best": row, "sz3": sz3, "goal": goal,
            "second": s}  # fmt: skip


def test_goal_table_says_met_and_not_met() -> None:
    from error_bounded import goal_lines

    lines = goal_lines(
        [_result(4, 3.71, 2.77, 1.15, 3.45), _result(14, 4.72, 3.42, 2.0, 3.0)], 1_000_000
    )
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    # 4D: 3.71 / 2.77 = 1.34x >= 1.15x; second sample 3.45 / 3.71 = 0.93x, within 1.3x
    assert rows[0][4:9] == ["3.71", "2.77", "1.34", ">= 1.15x SZ3", "met"]
    # payload 1 % longer under held-out tables: the ratio 1 % lower
    assert rows[0][9] == "3.67 (1.33x SZ3)"
    assert rows[1][8] == "met" and "(0.93x)" in rows[1][7]
    # 14: 4.72 / 3.42 = 1.38x < 2x; second 3.0 / 4.72 = 0.64x: outside 1.3x
    assert rows[2][6:9] == ["1.38", ">= 2x SZ3", "NOT met"]
    assert rows[3][8] == "NOT met" and "(0.64x)" in rows[3][7]
    # speed: decode 90,000 jets/s < 1e5
    assert rows[4][0] == "speed, one core (CPU time)" and rows[4][8] == "NOT met"
