"""The rate-aware frontier on the summary's rate-distortion plane (issue 17, item 2).

A campaign over ``train.rate_lambda`` gives each job the codec point ``aer`` (predicted
bits per jet of the rounded latent, the physical residual widths); the summary draws the
frontier of those jobs against the quantiser, SZ3, ZFP and PCA, each ratio from bytes with
the model counted. The frontier here is worked by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from test_ratedist import _add_curves

import results
from results.ratedist import FRONTIER_LABEL, aer_file_ratio, frontier_lines, rate_frontier
from results.synthetic import make_campaign

# (bits per jet, pt width, eta width, lambda) of five rate-aware jobs, 4 variables, a
# 50,000-byte model.pt, 1,000,000-jet files: ratio = 16e6 / (125,000 bits + 50,000)
JOBS = {
    "A": (16.0, 4e-2, 4e-2, 1e-1),  # ratio 7.80
    "E": (20.0, 5e-2, 5e-2, 3e-2),  # 6.27: A has more ratio and less width: off
    "B": (24.0, 1e-2, 1e-2, 1e-2),  # 5.25
    "C": (32.0, 1.2e-2, 5e-3, 3e-3),  # 3.95: off for pt (B beats it), on for eta
    "D": (40.0, 3e-3, 3e-3, 1e-3),  # 3.17
}


def _ratio(bits: float) -> float:
    return 16e6 / (bits / 8 * 1e6 + 50_000)


def _aer(row: dict[str, Any], job: str) -> dict[str, Any]:
    bits, pt, eta, lam = JOBS[job]
    row.update({"aer.bits_per_jet": bits, "aer.pt.width": pt, "aer.eta.width": eta,
                "aer.phi.width": 1e-2, "aer.E.width": 1e-2,
                "param.train.rate_lambda": lam, "rate.latent_bits_per_jet": bits,
                "rate.test_mse": 1e-3})  # fmt: skip
    return row


def _rows() -> list[dict[str, Any]]:
    base = {"n_inputs": 4, "rate.file_jets": 1_000_000, "aeq8.model_bytes": 50_000}
    rows = [_aer({**base, "job_id": j}, j) for j in JOBS]
    rows.append({**base, "job_id": "plain"})  # no aer point: not a rate-aware job
    return rows


def test_frontier_picked_by_hand() -> None:
    front, n = rate_frontier(_rows(), "pt")
    assert n == 5
    assert [p.job_id for p in front] == ["D", "B", "A"]
    assert [p.ratio for p in front] == pytest.approx([_ratio(40), _ratio(24), _ratio(16)])
    assert [p.rate_lambda for p in front] == [1e-3, 1e-2, 1e-1]
    front, _ = rate_frontier(_rows(), "eta")
    assert [p.job_id for p in front] == ["D", "C", "B", "A"]


def test_the_model_is_counted_as_the_other_points_count_it() -> None:
    row = _rows()[0]
    # 16 bits a jet: 2,000,000 bytes at 1M jets, plus 50,000 of model: 7.80, not 8.00
    assert aer_file_ratio(row) == pytest.approx(16e6 / 2_050_000)
    assert aer_file_ratio(row, file_jets=10_000) == pytest.approx(160_000 / (20_000 + 50_000))
    assert math.isnan(aer_file_ratio(_rows()[-1]))


def test_frontier_in_words() -> None:
    lines = frontier_lines(_rows(), ["pt", "eta", "phi", "E"])
    assert lines[0] == ("  rate-aware frontier (predicted bits per jet, model counted, at "
                        "1,000,000 jets):")  # fmt: skip
    text = " ".join(line.strip() for line in lines[1:])
    assert ("pt: 3 of 5 rate-aware jobs on the frontier, ratio 3.17-7.80 (lambda 0.001, 0.01, "
            "0.1, by rising ratio); width 0.003-0.04.") in text  # fmt: skip
    assert "eta: 4 of 5 rate-aware jobs on the frontier" in text
    # phi and E: every job at width 0.01, so the one of most ratio alone; one sentence
    assert ("phi, E: 1 of 5 rate-aware jobs on the frontier, ratio 7.80 (lambda 0.1, by "
            "rising ratio); width phi 0.01, E 0.01.") in text  # fmt: skip
    assert frontier_lines([r for r in _rows() if r["job_id"] == "plain"], ["pt"]) == []


def test_summary_draws_the_frontier(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    root = make_campaign(tmp_path / "rate", 8, eval_fraction=0.0)
    _add_curves(root)
    files = sorted(root.glob("jobs/*/metrics.json"))
    done = [f for f in files if "latent" in json.loads(f.read_text())]
    for f, job in zip(done, JOBS):
        d = json.loads(f.read_text())
        f.write_text(json.dumps(_aer(d, job)))
    report = results.summarize(root, only=["pareto"], formats=["png"])
    assert report.exit_code == 0, report.text()
    text = (root / "summary" / "report.txt").read_text()
    assert "pt: 3 of 5 rate-aware jobs on the frontier, ratio 3.17-7.80" in " ".join(
        line.strip() for line in text.splitlines()
    )
    png = root / "summary" / "figures" / "rate_distortion.png"
    with_frontier = png.read_bytes()
    # the same campaign without the rate-aware points: the summary's figure changes
    for f in done:
        d = json.loads(f.read_text())
        f.write_text(json.dumps({k: v for k, v in d.items() if not k.startswith("aer.")}))
    report = results.summarize(root, only=["pareto"], formats=["png"])
    assert "rate-aware frontier" not in (root / "summary" / "report.txt").read_text()
    assert png.read_bytes() != with_frontier
    for f, job in zip(done, JOBS):
        f.write_text(json.dumps(_aer(json.loads(f.read_text()), job)))

    # the figure: the frontier's line on the pt panel, with the points picked by hand
    import matplotlib.pyplot as plt

    from results.ratedist import draw_plane

    records = []
    for f in done:
        records.append({**json.loads(f.read_text()), "job_id": f.parent.name})
    row = records[-1]
    fig, ax = plt.subplots()
    draw_plane(ax, row, "pt", frontier_rows=records)
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == FRONTIER_LABEL]
    assert list(line.get_xdata()) == pytest.approx([_ratio(40), _ratio(24), _ratio(16)])
    assert list(line.get_ydata()) == pytest.approx([3e-3, 1e-2, 4e-2])
    # the limits take the frontier in
    assert ax.get_xlim()[1] > _ratio(16)
    plt.close(fig)
