"""The summary's best codec per error bound, on both samples, and its verdict in words."""

from __future__ import annotations

import pandas as pd
import pytest
from test_ratedist import VARS, _byte_row

from results.ratedist import bound_points, bound_table_lines
from results.report import bottom_line, bound_sentence

N = 10_000


def _pred(row: dict, factor: dict[int, float], prefix: str = "") -> dict:
    """``pred<k>`` keys storing ``factor[k]`` x the quantiser's payload, 1 kB of model."""
    out = {}
    for k, f in factor.items():
        out.update({f"{prefix}pred{k}.payload_bytes": f * N * 4 * k / 8,
                    f"{prefix}pred{k}.side_bytes": 500, f"{prefix}pred{k}.model_bytes": 1000,
                    f"{prefix}pred{k}.bits_per_jet": f * 4 * k})  # fmt: skip
    return out


def test_best_codec_per_bound_is_the_highest_ratio_from_bytes() -> None:
    row = _byte_row()
    points = bound_points(row)
    assert [p.k for p in points] == list(range(6, 17))
    p12 = next(p for p in points if p.k == 12)
    # SZ3 stores 10 % fewer payload bytes than the quantiser at the same bound
    assert p12.best == "sz3_"
    assert p12.first["sz3_"] == pytest.approx(16e6 / (0.9 * 6e6))
    assert p12.first["sq"] == pytest.approx(16e6 / (6e6 + 32))
    assert p12.second == {}
    words = bound_sentence(points)
    assert "SZ3 at k = 6-16" in words
    assert "no learned error-bounded codec was measured" in words


def test_the_learned_codec_on_both_samples_wins_and_loses_in_words() -> None:
    row = _byte_row()
    # own test jets: the predictive codec stores 0.7x the quantiser's bytes at every bound;
    # the other sample: 0.7x up to k = 11, 1.2x from 12 (it loses there to SZ3)
    factors = {k: 0.7 for k in range(6, 17)}
    on = _byte_row()
    on.update(_pred(on, {k: (0.7 if k < 12 else 1.2) for k in range(6, 17)}))
    on.update(_pred(row, factors, prefix="own."))
    on["own.rate.jets"] = N
    on["sample"] = "/data/biased.root"
    points = bound_points(row, on)
    p8, p14 = (next(p for p in points if p.k == k) for k in (8, 14))
    assert p8.best == "pred" and p8.best_second == "pred"
    assert p14.best == "pred" and p14.best_second == "sz3_"
    # 1,000,000 jets: 0.7 x 7 MB of payload, 500 B of tables and 1 kB of model
    assert p14.first["pred"] == pytest.approx(16e6 / (0.7 * 7e6 + 1500))
    words = bound_sentence(points, "biased.root")
    assert "predictive codec (fitted predictor) at k = 6-16" in words
    assert "on its own test jets the predictive codec (fitted predictor) wins at k = 6-16" in words
    assert "on biased.root the predictive codec (fitted predictor) wins at k = 6-11" in words
    assert "loses at k = 12-16 to SZ3 (down to 0.75x)" in words
    table = "\n".join(bound_table_lines(points, "biased.root"))
    flat = " ".join(table.split())
    assert "other: best" in table and "pred = predictive codec (fitted predictor)" in flat
    line14 = next(t for t in table.splitlines() if t.strip().startswith("14 "))
    # SZ3 at 14 bits: 16 MB / 0.9 x 7 MB on both samples; pred 16 MB / 1.2 x 7 MB there
    assert line14.split()[:6] == ["14", "pred", "3.26", "SZ3", "2.54", "3.26/1.90"]
    assert line14.rstrip().endswith("2.54/2.54")


def test_the_bottom_line_names_the_best_codec_per_bound_and_the_compress_command(
    tmp_path,
) -> None:
    row = _byte_row()
    row.update({"job_id": "j1", "name": "run-1", "job_dir": "jobs/j1", "best_val_loss": 0.1,
                "state": "done", **{f"ae.{v}.width": 1e-3 for v in VARS}})  # fmt: skip
    on = _byte_row()
    on.update(_pred(on, {k: 0.7 for k in range(6, 17)}))
    on.update(_pred(row, {k: 0.7 for k in range(6, 17)}, prefix="own."))
    on.update({"own.rate.jets": N, "sample": "/x/biased.root", "sample_jets": N})
    csv = tmp_path / "evaluate_on_biased.csv"
    pd.DataFrame([{"group": 3, "job_id": "j1", **{f"on.{k}": v for k, v in on.items()}}]).to_csv(
        csv, index=False
    )
    lines = bottom_line(pd.DataFrame([row]), "best_val_loss", csv)
    text = " ".join(" ".join(lines).split())  # the sentences are wrapped
    assert "[jobs/j1: the model of `hepae-data compress --model best --campaign DIR`]" in text
    assert "Best error-bounded codec per bound" in text
    assert "on biased.root the predictive codec (fitted predictor) wins at k = 6-16" in text
    assert "Best codec per error bound" in text  # the table
    assert any(t.split()[:1] == ["12"] and "pred" in t for t in lines)


def test_a_quantiser_that_clipped_values_missed_the_bound_and_is_not_ranked() -> None:
    """On another sample the quantiser clips values beyond its training ranges: the bound
    is missed there, so it cannot be the best error-bounded codec, whatever its ratio."""
    row = _byte_row()
    on = _byte_row()
    for k in range(6, 17):
        on[f"sz3_{k}.payload_bytes"] = 1.5 * N * 4 * k / 8  # SZ3 now stores more than sq
        on[f"sq{k}.clipped"] = 3
    on["sq12.clipped"] = 0
    points = bound_points(row, on)
    p8, p12 = (next(p for p in points if p.k == k) for k in (8, 12))
    assert p8.missed_second == {"sq": 3} and p8.best_second == "sz3_"
    assert p12.missed_second == {} and p12.best_second == "sq"
    table = "\n".join(bound_table_lines(points, "b.root"))
    assert "4.00/4.00*" in table and "clipped: the bound was missed there" in table
    assert "bounds at k" not in table  # no pred<k>.bound.* keys: no bound values to give


def test_the_bound_values_are_given_when_the_evaluation_has_them() -> None:
    row = _byte_row()
    on = _byte_row()
    on.update(_pred(row, {k: 0.7 for k in range(6, 17)}, prefix="own."))
    on.update({"own.rate.jets": N, "own.pred12.bound.eta": 1.1e-3, "own.pred12.bound.pt": 3.8e-4})
    table = "\n".join(bound_table_lines(bound_points(row, on), "b.root"))
    assert "bounds at k = 12: pt 0.00038, eta 0.0011 (relative for" in table
