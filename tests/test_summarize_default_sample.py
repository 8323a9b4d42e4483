"""The space file's `evaluate_on:` sample: every summary evaluates on it by default."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_bound_summary import _pred
from test_ratedist import _byte_row

from results.cli import main
from results.evaluate_on import _slug
from results.summary import summarize
from results.synthetic import make_campaign


def _space(root: Path, original_dir: Path, value: str) -> None:
    """The campaign's copy of its space file (with ``evaluate_on``) and where it came from."""
    (root / "space.yaml").write_text(f"name: c\n# the second sample\nevaluate_on: {value}\n")
    info = json.loads((root / "campaign.json").read_text())
    info["space"] = {"path": str(original_dir / "space.yaml"), "sha256": "x"}
    (root / "campaign.json").write_text(json.dumps(info))


@pytest.fixture
def camp(tmp_path: Path) -> Path:
    root = make_campaign(tmp_path / "camp", 8, eval_fraction=0.0)
    codecs = {k: v for k, v in _byte_row().items() if k.startswith(("sq", "sz3_", "rate."))}
    for path in (root / "jobs").glob("*/metrics.json"):  # the quantiser and SZ3, from bytes
        m = json.loads(path.read_text())
        path.write_text(json.dumps({**m, **codecs}))
    return root


def test_the_sample_named_by_the_space_file_is_evaluated_by_default(
    camp: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    spaces = tmp_path / "spaces"
    (spaces / "data").mkdir(parents=True)
    sample = spaces / "data" / "biased.root"
    sample.write_bytes(b"jets")
    # what `hepae-data evaluate` would have written for each group's best run, cached
    report = summarize(camp, plots=False)
    cache = camp / "summary" / "evaluate_on" / _slug(sample)
    cache.mkdir(parents=True)
    later = sample.stat().st_mtime + 10
    for g in report.groups:
        best = next(p for p in g.picks if p.label == "best")
        m = _byte_row()
        m.update(_pred(m, {k: 0.7 for k in range(6, 17)}))
        m.update(_pred(m, {k: 0.8 for k in range(6, 17)}, prefix="own."))
        m.update({"own.rate.jets": 10_000, "sample": str(sample), "sample_jets": 10_000,
                  "norm_domain_errors": 0})  # fmt: skip
        path = cache / f"{best.job_id}.json"
        path.write_text(json.dumps(m))
        os.utime(path, (later, later))
    _space(camp, spaces, "data/biased.root")  # relative to the planned space file
    assert main([str(camp), "--no-plots"]) in (0, 1)
    out = capsys.readouterr().out
    assert f"On another sample: {sample.resolve()}" in out
    assert "other: best" in out  # the best codec per bound on both samples
    flat = " ".join(out.split())
    assert "on biased.root the predictive codec (fitted predictor) wins at k = 6-16" in flat
    assert (camp / "summary" / "evaluate_on_biased.csv").is_file()
    # --evaluate-on none: not this time
    assert main([str(camp), "--no-plots", "--evaluate-on", "none"]) in (0, 1)
    out = capsys.readouterr().out
    assert "On another sample" not in out and "other: best" not in out


def test_a_missing_sample_is_refused_in_one_line_naming_the_file_and_key(
    camp: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _space(camp, tmp_path, "gone/biased.root")
    assert main([str(camp), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{camp / 'space.yaml'}:3: 'evaluate_on': gone/biased.root: no such file" in err
    assert "--evaluate-on none" in err
    _space(camp, tmp_path, "[1, 2]")
    assert main([str(camp), "--no-plots"]) == 2
    assert "must be the path of a sample file" in capsys.readouterr().err
    # the way out it names works
    assert main([str(camp), "--no-plots", "--evaluate-on", "none"]) in (0, 1)


SPACE = """\
name: s
base:
  data: {source: bundled:dijet_4d, variables: 4d}
grid:
  model.latent: [2, 3]
"""


def test_plan_checks_the_key_in_one_line(tmp_path: Path) -> None:
    from gridsearch.errors import GridsearchError
    from gridsearch.spacefile import load_space

    space = tmp_path / "space.yaml"
    for value in ("data/other.root", "bundled:dijet_4d"):  # a missing file: the summary says
        space.write_text(SPACE + f"evaluate_on: {value}\n")
        load_space(space)
    for value, words in (("[a, b]", "must be the path of a sample file"),
                         ("bundled:nope", "no bundled sample of that name")):  # fmt: skip
        space.write_text(SPACE + f"evaluate_on: {value}\n")
        with pytest.raises(GridsearchError) as exc:
            load_space(space)
        assert str(exc.value).startswith(f"{space}:6: 'evaluate_on': {words}"), str(exc.value)
    space.write_text(SPACE + "evaluate_onn: x.root\n")
    with pytest.raises(GridsearchError, match="did you mean 'evaluate_on'"):
        load_space(space)
