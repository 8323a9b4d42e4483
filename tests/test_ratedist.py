"""The rate-distortion plane in the summary: curves, interpolation, verdict, plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import results
from results.ratedist import compare, curve, verdict_lines, width_at
from results.synthetic import make_campaign

VARS = ("pt", "eta", "phi", "E")


def _row(latent: int = 3, ae: float = 6e-4) -> dict:
    """An ideal quantiser: 4 variables at k bits = 4k bits a jet, width 2^-k."""
    row = {"latent": latent, "ae_f16latent.bits_per_jet": 16 * latent}
    for k in range(6, 17):
        row[f"sq{k}.bits_per_jet"] = 4 * k
        row[f"aeq{k}.bits_per_jet"] = latent * k
        for v in VARS:
            row[f"sq{k}.{v}.width"] = 2.0**-k
            # a latent with a floor: only at low k (few bits) can it beat the quantiser
            row[f"aeq{k}.{v}.width"] = math.hypot(ae, 2.0 ** (-k + 2))
    for v in VARS:
        row[f"ae_f16latent.{v}.width"] = ae
    return row


def test_curve_and_log_interpolation_by_hand() -> None:
    row = _row()
    x, y = curve(row, "sq", "pt")
    assert x.tolist() == [4 * k for k in range(6, 17)]
    # 46 bits lies halfway between 44 (k = 11: 2^-11) and 48 (2^-12): 2^-11.5 on a log
    # scale (a linear interpolation would give 6 % more)
    assert width_at(x, y, 46.0) == pytest.approx(2.0**-11.5)
    assert width_at(x, y, 48.0) == pytest.approx(2.0**-12)
    assert math.isnan(width_at(x, y, 10.0)) and math.isnan(width_at(x, y, 100.0))


def test_verdict_in_words() -> None:
    # latent 3, float16 latent: 48 bits a jet = 12 bits a value: quantiser width 2^-12 =
    # 2.44e-4 against the autoencoder's 6e-4: the quantiser is 2.5x narrower.
    comps = compare(_row(), list(VARS))
    assert comps[0].bits == 48 and comps[0].sq == pytest.approx(2.0**-12)
    assert comps[0].beats is False
    # quantised latent at k bits: 3k bits a jet, quantiser width 2^-(3k/4); latent width
    # hypot(6e-4, 2^(2-k)): below it only for k = 6, 7 (2^-4.5 = 0.044 > 0.0625? no: see)
    wins = comps[0].aeq_wins
    for k in range(6, 17):
        beats = math.hypot(6e-4, 2.0 ** (2 - k)) < 2.0 ** (-3 * k / 4)
        assert (k in wins) == beats
    text = "\n".join(verdict_lines(_row(), list(VARS)))
    assert "48 bits per jet" in text and "ratio 2.67" in text
    assert "scalar quantiser is 2.5x narrower: the autoencoder does not beat it" in text
    good = "\n".join(verdict_lines(_row(ae=1e-4), list(VARS)))
    assert "the autoencoder beats it (2.4x narrower)" in good


def test_many_variables_show_the_worst() -> None:
    row = _row(latent=6)  # 96 bits a jet: within the 10-variable quantiser's 60-160
    names = [f"v{i}" for i in range(10)]
    for k in range(6, 17):
        row[f"sq{k}.bits_per_jet"] = 10 * k
        for v in names:
            row[f"sq{k}.{v}.width"] = 2.0**-k
    for i, v in enumerate(names):
        row[f"ae_f16latent.{v}.width"] = 1e-4 * (i + 1)  # v9 worst
    lines = verdict_lines(row, names, worst=2)
    text = "\n".join(lines)
    assert "beats the scalar quantiser on" in text
    assert "v9:" in text and "v8:" in text and "v0:" not in text


def _add_curves(root: Path) -> None:
    """Give every synthetic job the baseline curves a real job writes."""
    for m in root.glob("jobs/*/metrics.json"):
        try:
            d = json.loads(m.read_text())
        except json.JSONDecodeError:
            continue
        if "latent" not in d:
            continue
        z = d["latent"]
        d["ae_f16latent.bits_per_jet"] = 16 * z
        d["ae.bits_per_jet"] = 32 * z
        d["pca.z"] = z
        d["lossless.bits_per_jet"] = 110.0
        d["rate.jets"], d["rate.file_jets"] = 10_000, 1_000_000
        for k in range(6, 17):
            d[f"sq{k}.bits_per_jet"] = 4 * k
            d[f"pca{k}.bits_per_jet"] = z * k
            d[f"aeq{k}.bits_per_jet"] = z * k
            # the bytes a real job keeps: 10,000 test jets, a 50 kB model
            d[f"sq{k}.payload_bytes"] = 10_000 * 4 * k / 8
            d[f"sq{k}.side_bytes"] = 32
            d[f"aeq{k}.payload_bytes"] = 10_000 * z * k / 8
            d[f"aeq{k}.side_bytes"] = 8 * z
            d[f"aeq{k}.model_bytes"] = 50_000
            for v in VARS:
                w = d[f"ae.{v}.width"]
                d[f"sq{k}.{v}.width"] = 0.34 * 3.2 / 2**k
                d[f"pca{k}.{v}.width"] = 0.2
                d[f"aeq{k}.{v}.width"] = math.hypot(w, 2.0**-k)
        m.write_text(json.dumps(d))


def test_summary_draws_the_rate_distortion_plot_and_says_who_wins(tmp_path: Path) -> None:
    root = make_campaign(tmp_path / "rd", 16, eval_fraction=0.0)
    _add_curves(root)
    report = results.summarize(root, only=["pareto"], formats=["png"])
    assert report.exit_code == 0, report.text()
    assert [f.stem for f in report.figures] == ["rate_distortion"]
    assert (root / "summary" / "figures" / "rate_distortion.png").stat().st_size > 10_000
    text = (root / "summary" / "report.txt").read_text()
    assert "Rate-distortion: best run of each group" in text
    assert text.count("bits per jet (float16 latent") == len(report.groups)
    assert "does not beat it" in text
    # latent 5 with a float16 latent is 80 bits a jet, beyond the finest quantiser (64)
    assert "at only 64 bits per jet (its finest)" in text
    # and the verdict from the bytes, model counted, for each group's best run
    assert text.count("from the bytes written, at a file of 1,000,000 jets") == len(report.groups)
    # the synthetic campaign has no curves: the old Pareto plot, no verdict
    plain = make_campaign(tmp_path / "plain", 8, eval_fraction=0.0)
    report = results.summarize(plain, only=["pareto"], formats=["png"])
    assert [f.stem for f in report.figures] == ["pareto"]
    assert "Rate-distortion" not in report.text()


def test_rate_distortion_of_a_single_variable(tmp_path: Path) -> None:
    root = make_campaign(tmp_path / "rd1", 8, eval_fraction=0.0)
    _add_curves(root)
    report = results.summarize(root, only=["pareto"], formats=["png"], variable="eta")
    assert [f.stem for f in report.figures] == ["rate_distortion"]
    assert np.isfinite(report.figures[0].files[0].stat().st_size)


def test_mplhep_style_and_unknown_style(tmp_path: Path) -> None:
    pytest.importorskip("mplhep")
    root = make_campaign(tmp_path / "sty", 8, eval_fraction=0.0)
    _add_curves(root)
    report = results.summarize(root, only=["pareto", "widths"], formats=["png"], style="atlas")
    assert report.exit_code == 0, report.text()
    assert {f.stem for f in report.figures} == {"rate_distortion", "widths_vs_latent"}
    with pytest.raises(results.SummaryError, match="unknown style 'fancy'"):
        results.summarize(root, style="fancy")


def test_pca_at_equal_bits_and_rates_below_the_quantiser() -> None:
    row = _row()
    for k in range(6, 17):
        row[f"pca{k}.bits_per_jet"] = 3 * k
        for v in VARS:
            row[f"pca{k}.{v}.width"] = 1e-3  # PCA's floor: worse than the AE's 6e-4
    # 48 bits = PCA at k = 16: 1e-3 against the autoencoder's 6e-4
    c = compare(row, list(VARS))[0]
    assert c.pca == pytest.approx(1e-3)
    text = "\n".join(verdict_lines(row, list(VARS)))
    assert "PCA at the same bits 0.001: the autoencoder beats it" in text
    # latent 1 with a float16 latent: 16 bits a jet, below the quantiser's lowest (24)
    row.update({"latent": 1, "ae_f16latent.bits_per_jet": 16})
    comps = compare(row, list(VARS))
    assert comps[0].beats is None and comps[0].sq_min_bits == 24
    text = "\n".join(verdict_lines(row, list(VARS)))
    assert "below the scalar quantiser's lowest rate (24)" in text


def _byte_row(model_bytes: int = 100_000) -> dict:
    """Ideal codecs on 4 variables with their bytes, over 10,000 test jets.

    The quantiser: k bits a value, width 2^-k, 32 bytes of ranges. SZ3: 10 % fewer bytes
    than the quantiser at the same width. The autoencoder: 3 latents at k bits, width
    hypot(1e-3, 2^(2-k)), 24 bytes of ranges and ``model_bytes`` of model.
    """
    n = 10_000
    row: dict = {"rate.jets": n, "rate.file_jets": 1_000_000, "n_inputs": 4,
                 "variables": ",".join(VARS), "latent": 3,
                 "ae_f16latent.bits_per_jet": 48}  # fmt: skip
    for k in range(6, 17):
        row.update({f"sq{k}.bits_per_jet": 4 * k, f"sq{k}.payload_bytes": n * 4 * k / 8,
                    f"sq{k}.side_bytes": 32, f"sq{k}.model_bytes": 0,
                    f"sz3_{k}.bits_per_jet": 0.9 * 4 * k,
                    f"sz3_{k}.payload_bytes": 0.9 * n * 4 * k / 8, f"sz3_{k}.side_bytes": 0,
                    f"aeq{k}.bits_per_jet": 3 * k, f"aeq{k}.payload_bytes": n * 3 * k / 8,
                    f"aeq{k}.side_bytes": 24, f"aeq{k}.model_bytes": model_bytes})  # fmt: skip
        for v in VARS:
            row[f"sq{k}.{v}.width"] = 2.0**-k
            row[f"sz3_{k}.{v}.width"] = 2.0**-k
            row[f"aeq{k}.{v}.width"] = math.hypot(1e-3, 2.0 ** (2 - k))
            row[f"ae_f16latent.{v}.width"] = 1e-3
    row["lossless.payload_bytes"] = n * 16 / 1.2
    row["lossless.side_bytes"] = 0
    row["residual.pt"] = "relative"
    row["residual.phi"] = "angle"
    return row


def test_ratio_from_bytes_counts_side_and_model_at_the_file_size() -> None:
    from results.ratedist import file_ratio

    row = _byte_row()
    # sq12 on 1 M jets: 16 MB in, 6 MB of codes + 32 bytes of ranges out
    assert file_ratio(row, "sq12") == pytest.approx(16e6 / (6e6 + 32))
    # aeq12: 4.5 MB of codes + 24 bytes + the 100 kB model
    assert file_ratio(row, "aeq12") == pytest.approx(16e6 / (4.5e6 + 24 + 100_000))
    # on 10,000 jets the model weighs: 160 kB in, 45 kB + 100 kB out
    assert file_ratio(row, "aeq12", 10_000) == pytest.approx(160_000 / (45_000 + 24 + 100_000))
    # without byte counts: the payload-only ratio from bits per jet
    assert file_ratio({"n_inputs": 4, "sq12.bits_per_jet": 48}, "sq12") == pytest.approx(32 / 12)


def test_crossover_and_byte_verdict_by_hand() -> None:
    """The latent beats the quantiser in a middle window of ratios and loses on both sides.

    At equal payload the latent's k bits on 3 latents match the quantiser's k' = 3k/4 on
    4 variables; 2^(2-k) < 2^(-3k/4) for k > 8, while the latent's floor (1e-3) loses
    again once the quantiser is finer than that (k' above ~10). The model shifts the
    latent's points slightly to lower ratios at 1 M jets.
    """
    from results.ratedist import crossovers, rate_curve, stretches

    row = _byte_row()
    ae, sq = rate_curve(row, "aeq", "pt"), rate_curve(row, "sq", "pt")
    parts = stretches(ae, sq)
    assert [p.wins for p in parts] == [False, True, False]  # by rising ratio
    low, high = crossovers(ae, sq)
    for x in (low, high):  # at each crossover both widths agree
        w_ae = np.exp(np.interp(np.log(x), np.log(ae[0]), np.log(ae[1])))
        w_sq = np.exp(np.interp(np.log(x), np.log(sq[0]), np.log(sq[1])))
        assert w_ae == pytest.approx(w_sq, rel=0.02)
    # the floor 1e-3 = 2^-10: the quantiser at ~10 bits (ratio ~3.2); k = 8 for the
    # latent: 16 / (3 + 0.1) = 5.2 at 1 M jets, against the quantiser's 32 / 6 = 5.3
    assert 3.0 < low < 3.6 and 4.5 < high < 5.3
    text = "\n".join(verdict_lines(row, list(VARS)))
    assert "at a file of 1,000,000 jets (model.pt 100,000 bytes counted" in text
    assert f"crossover at ratio {low:.2f}, {high:.2f}" in text
    assert "pt: the autoencoder against the scalar quantiser loses to it at ratio" in text
    # SZ3 takes 10 % fewer bytes at the same widths: 11 % more ratio, ~0.6 bit a value
    # finer at equal ratio, more than the latent's margin over the quantiser: it loses everywhere
    assert "loses to SZ3 at every common ratio" in text
    # break-even against the 12-bit quantiser: 100 kB of model / 1.5 bytes a jet saved
    row["aeq12.break_even_jets"] = 66_676
    row["aeq12.ratio"] = 16 * 10_000 / (45_000 + 24 + 100_000)
    text = "\n".join(verdict_lines(row, list(VARS)))
    assert "the 12-bit latent: ratio 1.10 on the 10,000 test jets" in text
    assert "from 66,676 jets on" in text
    # inf is written as null in metrics.json: never
    row["aeq12.break_even_jets"] = None
    text = "\n".join(verdict_lines(row, list(VARS)))
    assert "it never stores less than the 12-bit scalar quantiser" in text


def test_a_huge_model_loses_everywhere_in_the_verdict() -> None:
    row = _byte_row(model_bytes=50_000_000)  # 50 MB: never paid for at 1 M jets
    text = "\n".join(verdict_lines(row, list(VARS)))
    # 16 MB in, 50 MB of model out: ratio 0.3 at every k, below the quantiser's 2.0-5.3
    assert (
        "pt: the autoencoder loses to the scalar quantiser at every ratio: it stores more "
        "at every bit depth (ratio 0.29-0.31, the scalar quantiser 2.00-5.33)"
    ) in text


def test_draw_plane_marks_crossover_lossless_and_units() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from results.ratedist import draw_plane

    row = _byte_row()
    fig, ax = plt.subplots()
    draw_plane(ax, row, "pt")
    labels = [line.get_label() for line in ax.get_lines()]
    assert "scalar quantiser" in labels and "SZ3, same bound" in labels
    assert any(lab.startswith("lossless (width 0), ratio 1.20") for lab in labels)
    stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    assert len(stars) == 2  # the two crossovers
    assert ax.get_ylabel() == "pt residual width [relative]"
    assert "1M jets, model counted" in ax.get_xlabel()
    # the limits hug the curves: no empty quarter
    lo, hi = ax.get_xlim()
    assert lo > 1.0 and hi < 16 * 1.1
    plt.close(fig)
