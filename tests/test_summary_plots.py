"""The best-run figures are made once and redrawn for each best run: a redrawn figure is
the figure drawn on its own; figures are png unless pdf is asked for."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

import results
from results.plots import PlotContext, best_runs
from results.synthetic import make_campaign


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plots") / "c"
    # the 3rd and 4th variables swapped in some jobs would change the figures' shapes;
    # one shape here, drawn for each of the five latent sizes
    return make_campaign(root, 30, eval_fraction=0.0, eval_jets=400)


def test_a_redrawn_figure_equals_the_figure_drawn_alone(campaign: Path, tmp_path: Path) -> None:
    report = results.summarize(campaign, only=["best_runs"])
    assert report.exit_code == 0, report.text()
    stems = [f.stem for f in report.figures]
    assert len(stems) == 3 * len(report.groups) >= 9
    figures = campaign / "summary" / "figures"
    assert sorted(p.suffix for p in figures.iterdir()) == [".png"] * len(stems)  # no pdf

    # The last group drawn alone, on figures made for it: the same pixels as its figures
    # drawn after four other groups on the reused figures.
    df = results.load(campaign)
    used = df[df["state"] == "done"]
    last = report.groups[-1]
    ctx = PlotContext(
        root=campaign, df=df, used=used, metric=report.metric, group_by=report.group_by,
        groups=[last], out=tmp_path / "alone", formats=["png"],
        label=f"{campaign.resolve().name}, {report.n_used} runs",
    )  # fmt: skip
    alone = [stem for stem, _ in best_runs(ctx)]
    assert len(alone) == 3
    for stem in alone:
        a = mpimg.imread(tmp_path / "alone" / f"{stem}.png")
        b = mpimg.imread(figures / f"{stem}.png")
        assert a.shape == b.shape, stem
        assert np.array_equal(a, b), stem


def test_pdf_on_request(campaign: Path) -> None:
    report = results.summarize(campaign, only=["pareto"], formats=["png", "pdf"])
    assert [p.name for p in report.figures[0].files] == ["pareto.png", "pareto.pdf"]
    assert all(p.stat().st_size > 1000 for p in report.figures[0].files)
