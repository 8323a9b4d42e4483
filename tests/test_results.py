"""The summarizer: table, cache, ranking, report, plots and bad input."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

import results
from results.errors import SummaryError
from results.plots import pareto_front, residuals
from results.synthetic import make_campaign
from results.table import collect


def _bump(path: Path, text: str | None = None) -> None:
    """Rewrite a file so its signature changes even on coarse-mtime file systems."""
    data = path.read_text() if text is None else text
    path.write_text(data)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    return make_campaign(tmp_path / "camp", 24, eval_fraction=0.0)


@pytest.fixture
def bad_campaign(tmp_path: Path) -> Path:
    return make_campaign(
        tmp_path / "bad",
        30,
        eval_fraction=0.0,
        n_failed=2,
        n_running=1,
        n_planned=1,
        n_truncated=1,
        n_old_schema=1,
        n_bad_params=1,
    )


def test_table_has_one_typed_row_per_job(campaign: Path) -> None:
    table = collect(campaign)
    df = results.load(campaign)
    assert len(df) == table.n_jobs == 24
    assert df["job_id"].is_unique
    assert df["param.model.latent"].dtype == np.int64
    assert df["param.train.lr"].dtype == np.float64
    assert df["best_val_loss"].dtype == np.float64
    assert df["has_metrics"].dtype == bool
    assert df["param.model.encoder"].str.contains("-").all()
    assert (df["state"] == "done").all()
    assert df["problems"].isna().all()
    assert {"ae.pt.width", "float16.E.width", "compression_ratio"} <= set(df.columns)
    csv = pd.read_csv(campaign / "summary" / "summary.csv")
    assert list(csv.columns) == list(df.columns)
    np.testing.assert_allclose(csv["best_val_loss"], df["best_val_loss"], rtol=1e-15)


def test_documented_one_line_load(campaign: Path) -> None:
    collect(campaign)
    path = campaign / "summary" / "summary.h5"
    # The one line of docs/results.md:
    df = pd.DataFrame({k: (d.asstr()[()] if d.dtype.kind == "O" else d[()]) for k, d in h5py.File(path)["jobs"].items()})  # noqa: E501  # fmt: skip
    ref = results.load(campaign)
    assert list(df.columns) == list(ref.columns)
    np.testing.assert_array_equal(df["best_val_loss"], ref["best_val_loss"])
    assert list(df["job_id"]) == list(ref["job_id"])


def test_incremental_reads_only_changed_jobs(campaign: Path) -> None:
    first = collect(campaign)
    assert (first.n_read, first.n_cached, first.written) == (24, 0, True)
    again = collect(campaign)
    assert (again.n_read, again.n_cached, again.written) == (0, 24, False)
    job = sorted((campaign / "jobs").iterdir())[3]
    m = json.loads((job / "metrics.json").read_text())
    m["best_val_loss"] = 1.5e-9
    _bump(job / "metrics.json", json.dumps(m))
    third = collect(campaign)
    assert (third.n_read, third.n_cached, third.written) == (1, 23, True)
    df = results.load(campaign)
    assert df.loc[df["job_id"] == job.name, "best_val_loss"].item() == 1.5e-9
    # The incremental table equals one built from scratch.
    fresh = collect(campaign, use_cache=False, write=False).frame()
    pd.testing.assert_frame_equal(fresh, df)


def test_incremental_new_removed_and_state_change(campaign: Path) -> None:
    collect(campaign)
    jobs = sorted((campaign / "jobs").iterdir())
    extra = campaign / "jobs" / "0123456789ab"
    extra.mkdir()
    (extra / "state.json").write_text('{"state": "running", "attempt": 1}')
    state = json.loads((jobs[0] / "state.json").read_text())
    state.update(state="interrupted", signal="SIGTERM")
    _bump(jobs[0] / "state.json", json.dumps(state))
    t = collect(campaign)
    assert (t.n_read, t.n_cached) == (2, 23)
    df = results.load(campaign)
    assert len(df) == 25
    assert df.set_index("job_id").loc["0123456789ab", "state"] == "running"
    assert df.set_index("job_id").loc[jobs[0].name, "state"] == "interrupted"
    assert not df.set_index("job_id").loc["0123456789ab", "in_space"]


def test_cache_dropped_when_table_replaced(campaign: Path) -> None:
    collect(campaign)
    (campaign / "summary" / "summary.h5").unlink()
    t = collect(campaign)
    assert (t.n_read, t.written) == (24, True)
    (campaign / "summary" / "cache.json").write_text("{not json")
    assert collect(campaign).n_read == 24


def test_writes_are_atomic_and_leave_no_temporaries(campaign: Path) -> None:
    results.summarize(campaign, plots=False)
    leftovers = [p.name for p in (campaign / "summary").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    # A reader during a rewrite sees the old complete file: the writer replaces by rename.
    before = (campaign / "summary" / "summary.h5").stat().st_ino
    job = sorted((campaign / "jobs").iterdir())[0]
    _bump(job / "metrics.json")
    collect(campaign)
    assert (campaign / "summary" / "summary.h5").stat().st_ino != before


def test_bad_inputs_are_listed_not_fatal(bad_campaign: Path) -> None:
    report = results.summarize(bad_campaign, plots=False)
    assert report.exit_code == 1
    df = results.load(bad_campaign)
    assert len(df) == 30
    why = dict(report.skipped)
    texts = " | ".join(why.values())
    assert "CUDA out of memory" in texts
    assert "running" in texts and "never started" in texts
    assert "not valid JSON (truncated?)" in texts
    assert "schema_version None" in texts
    assert "param.train.lr = 'fast' is not a number" in texts
    states = df["state"].value_counts().to_dict()
    assert states["failed"] == 2 and states["running"] == 1 and states["planned"] == 1
    # Planned and failed jobs keep their parameters (from the manifest).
    assert df.loc[df["state"] == "failed", "param.model.latent"].notna().all()
    # The old-schema job is read best-effort: its loss counts.
    old = df[df["problems"].str.contains("schema_version", na=False)]
    assert old["best_val_loss"].notna().all()
    bad = df[df["problems"].str.contains("fast", na=False)]
    assert bad["param.train.lr"].isna().all()
    text = (bad_campaign / "summary" / "report.txt").read_text()
    assert "Skipped jobs (7)" in text and "exit code 1" in text


def test_empty_campaign(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    (root / "jobs").mkdir(parents=True)
    (root / "manifest.json").write_text('{"name": "empty", "jobs": []}')
    report = results.summarize(root)
    assert report.exit_code == 1
    assert report.n_used == 0
    assert "no jobs" in report.text()
    assert len(results.load(root)) == 0


def test_only_failed_jobs(tmp_path: Path) -> None:
    root = make_campaign(tmp_path / "failed", 4, n_failed=4)
    report = results.summarize(root)
    assert report.exit_code == 1
    assert len(report.skipped) == 4
    assert (results.load(root)["state"] == "failed").all()


def test_not_a_campaign(tmp_path: Path) -> None:
    with pytest.raises(SummaryError, match="not a campaign directory"):
        results.summarize(tmp_path)
    with pytest.raises(SummaryError, match="no such directory"):
        results.summarize(tmp_path / "nope")
    with pytest.raises(SummaryError, match="run `gridsearch summarize`"):
        results.load(tmp_path)


def test_corrupt_manifest_falls_back_to_job_dirs(campaign: Path) -> None:
    (campaign / "manifest.json").write_text('{"jobs": ')
    report = results.summarize(campaign, plots=False)
    assert report.table.n_jobs == 24
    assert report.exit_code == 1
    assert any("manifest.json" in n for n in report.notes)


def test_rank_best_median_worst(campaign: Path) -> None:
    report = results.summarize(campaign, plots=False)
    df = results.load(campaign)
    assert report.group_by == "param.model.latent"
    assert [g.value for g in report.groups] == sorted(df["param.model.latent"].unique())
    for g in report.groups:
        values = np.sort(df.loc[df["param.model.latent"] == g.value, "best_val_loss"])
        best, median, worst = g.picks
        assert (best.label, median.label, worst.label) == ("best", "median", "worst")
        assert best.value == values[0] and worst.value == values[-1]
        assert median.value == values[(len(values) - 1) // 2]
        assert "param.train.lr" in best.params and "param.model.latent" not in best.params
    text = (campaign / "summary" / "report.txt").read_text()
    assert "Best, median and worst run per latent" in text
    assert "min val loss" in text and "at epoch" in text
    tex = (campaign / "summary" / "tables.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\toprule" in tex and "\\times10^{" in tex


def test_group_by_other_and_none(campaign: Path) -> None:
    r = results.summarize(campaign, group_by="bs", plots=False)
    assert r.group_by == "param.train.batch_size"
    r = results.summarize(campaign, group_by=None, metric="test_loss", plots=False)
    assert len(r.groups) == 1 and r.metric == "test_loss"
    with pytest.raises(SummaryError, match="no metric named 'nonsense'"):
        results.summarize(campaign, metric="nonsense", plots=False)


def test_all_plots(tmp_path: Path) -> None:
    root = make_campaign(tmp_path / "plots", 40, eval_fraction=0.0)
    report = results.summarize(root, formats=["png"], heatmap=("lr", "bs"))
    drawn = {f.plot for f in report.figures}
    assert drawn == {"loss_vs_lr", "widths", "pareto", "heatmap", "curves", "best_runs"}
    assert report.exit_code == 0, report.text()
    for f in report.figures:
        for path in f.files:
            assert path.suffix == ".png" and path.stat().st_size > 1000
    stems = {f.stem for f in report.figures}
    assert "heatmap_lr_bs" in stems
    n_latent = len(report.groups)
    assert len([s for s in stems if s.startswith("best_")]) == 3 * n_latent
    text = (root / "summary" / "report.txt").read_text()
    assert "Figures (" in text and "time per plot" in text
    assert set(report.plot_seconds) == drawn


def test_missing_evaluation_is_reported(tmp_path: Path) -> None:
    root = make_campaign(tmp_path / "noeval", 12, eval_fraction=0.0, eval_best=False)
    report = results.summarize(root, only=["best_runs", "pareto"], formats=["pdf"])
    assert report.exit_code == 1
    (name, why, problem) = report.plots_skipped[0]
    assert name == "best_runs" and problem
    assert "evaluation.npz" in why
    assert [f.plot for f in report.figures] == ["pareto"]
    assert (root / "summary" / "figures" / "pareto.pdf").stat().st_size > 1000


def test_pareto_front() -> None:
    x = np.array([1.0, 2.0, 2.0, 4.0, 4.0, 1.0])
    y = np.array([0.1, 0.2, 0.5, 0.4, 0.3, 0.05])
    assert pareto_front(x, y).tolist() == [4, 1, 5]


def test_residual_kinds() -> None:
    inp = np.array([[100.0, 1.0, 3.1]])
    out = np.array([[101.0, 1.5, -3.1]])
    r = residuals(inp, out, ["relative", "absolute", "angle"])
    np.testing.assert_allclose(r[0], [0.01, 0.5, 2 * np.pi - 6.2], atol=1e-12)


def test_results_never_imports_torch(campaign: Path) -> None:
    code = (
        "import sys, results; "
        f"results.summarize({str(campaign)!r}, only=['pareto'], formats=['png']); "
        "results.load({!r}); ".format(str(campaign))
        + "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_27_variables_make_pages_of_nine(tmp_path: Path) -> None:
    from hepae_core.variables import VARIABLES_27D

    root = make_campaign(tmp_path / "c27", 8, variables=VARIABLES_27D, eval_fraction=0.0)
    report = results.summarize(root, group_by="param.train.optimizer", only=["best_runs"],
                               formats=["png"])  # fmt: skip
    assert report.exit_code == 0, report.text()
    stems = sorted(f.stem for f in report.figures)
    assert stems == sorted(
        [f"best_optimizeradam_{k}_{i}" for k in ("inputs_outputs", "residuals") for i in (1, 2, 3)]
        + ["best_optimizeradam_residual_correlation"]
    )


def test_missing_evaluation_is_recomputed_by_the_evaluate_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an evaluate module available, best_runs re-evaluates in a subprocess."""
    pkg = tmp_path / "fake_eval"
    pkg.mkdir()
    (pkg / "fake_evaluate_job.py").write_text(
        "import json, sys\n"
        "from pathlib import Path\n"
        "from results.synthetic import write_evaluation\n"
        "d = Path(sys.argv[1])\n"
        "m = json.loads((d / 'metrics.json').read_text())\n"
        "write_evaluation(d, m, m['variables'].split(','), 500, 1)\n"
    )
    repo = str(Path(__file__).parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pkg), repo]))
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.setattr("results.plots.EVALUATE_MODULE", "fake_evaluate_job")
    root = make_campaign(tmp_path / "reeval", 6, eval_fraction=0.0, eval_best=False)
    report = results.summarize(root, group_by=None, only=["best_runs"], formats=["png"])
    assert report.exit_code == 0, report.text()
    best = report.groups[0].picks[0]
    assert (root / best.job_dir / "evaluation.npz").exists()


def test_manifest_lists_and_odd_column_names(tmp_path: Path) -> None:
    root = make_campaign(tmp_path / "odd", 6, eval_fraction=0.0, n_failed=1)
    manifest = json.loads((root / "manifest.json").read_text())
    failed = manifest["jobs"][-1]
    failed["params"]["model.encoder"] = [64, 32]
    (root / "manifest.json").write_text(json.dumps(manifest))
    done = root / manifest["jobs"][0]["dir"] / "metrics.json"
    m = json.loads(done.read_text())
    m["cut.1.expr"] = "pt/E > 0.1"
    m["ratio pt/E%"] = 0.5
    _bump(done, json.dumps(m))
    collect(root)
    df = results.load(root)
    row = df.set_index("job_id").loc[failed["id"]]
    assert row["param.model.encoder"] == "64-32"
    assert df["ratio pt/E%"].notna().sum() == 1
    assert (df["cut.1.expr"] == "pt/E > 0.1").sum() == 1


# --- the bottom line ----------------------------------------------------------------------


def _codec_row(latent: int = 3, floor: float = 6e-4) -> dict:
    """An ideal quantiser on 4 variables (k bits a value, width 2^-k) and an autoencoder
    whose quantised latent has a floor: it wins at few bits and loses at many."""
    row = {"latent": latent, "variables": "pt,eta,phi,E", "job_id": "j1"}
    for k in range(2, 17):
        row[f"sq{k}.bits_per_jet"] = 4 * k
        for v in ("pt", "eta", "phi", "E"):
            row[f"sq{k}.{v}.width"] = 2.0**-k
    for k in range(6, 17):
        row[f"aeq{k}.bits_per_jet"] = latent * k
        for v in ("pt", "eta", "phi", "E"):
            row[f"aeq{k}.{v}.width"] = math.hypot(floor, 2.0 ** (-k + 2))
            row[f"ae.{v}.width"] = floor
    return row


def test_codec_sentence_says_where_the_autoencoder_wins_and_loses() -> None:
    from results.report import codec_sentence

    row = _codec_row()
    # by hand: at k bits a latent value the autoencoder spends 3k bits a jet, where the
    # quantiser's width is 2^(-3k/4); the autoencoder's is hypot(6e-4, 2^(2-k))
    wins = [k for k in range(6, 17) if math.hypot(6e-4, 2.0 ** (2 - k)) < 2.0 ** (-3 * k / 4)]
    loses = [k for k in range(6, 17) if k not in wins]
    # too few bits: the latent's own quantisation step dominates; too many: its floor
    assert wins == [9, 10, 11, 12, 13, 14] and loses == [6, 7, 8, 15, 16]
    text = codec_sentence(row, ["pt", "eta", "phi", "E"])
    r = {k: f"{32 * 4 / (3 * k):.1f}" for k in range(6, 17)}
    assert f"loses at ratio {r[8]} to {r[6]} (k = 6-8: wider on every variable), " in text
    assert f"wins at ratio {r[14]} to {r[9]} (k = 9-14: narrower on every variable) and" in text
    assert f"loses at ratio {r[16]} to {r[15]} (k = 15-16: wider" in text
    assert "stops at its own reconstruction error" in text
    # one variable worse: the k where only it loses are 'mixed' and name it
    for k in range(6, 17):
        row[f"aeq{k}.E.width"] = 2 * row[f"aeq{k}.pt.width"]
    text = codec_sentence(row, ["pt", "eta", "phi", "E"])
    assert "is mixed at ratio" in text and "wider on E)" in text


def test_report_leads_with_the_bottom_line(tmp_path: Path) -> None:
    root = make_campaign(tmp_path / "bl", 8, eval_fraction=0.0)
    report = results.summarize(root, plots=False)
    text = (root / "summary" / "report.txt").read_text()
    lines = text.splitlines()
    assert lines[2] == "Bottom line", text[:400]
    best = min(report.groups, key=lambda g: g.picks[0].value).picks[0]
    assert lines[3].startswith(f"  Best model: {best.name} (")
    head = "\n".join(lines[:14])
    assert "the lowest of 8 runs" in head
    assert re.search(r"pt [0-9.]+%", head)  # a relative width, in per cent
    assert "Other sample: not measured" in head
    # the bottom line comes before the tables
    assert text.index("Bottom line") < text.index("Best, median and worst run")


def test_other_sample_sentence_compares_widths(tmp_path: Path) -> None:
    from results.report import other_sample_sentence

    row = {"job_id": "j1", "variables": "pt,eta", "ae.pt.width": 0.01, "ae.eta.width": 0.002}
    csv = tmp_path / "evaluate_on_hard.csv"
    csv.write_text(
        "group,job_id,name,on.sample_jets,on.norm_domain_errors,on.outside_training,"
        "on.ae.pt.width,on.ae.eta.width\n"
        "3,j1,z3,5000,7,31,0.025,0.0021\n"
    )
    text = other_sample_sentence(csv, row)
    assert text.startswith("On hard (5000 jets): the best run's residuals are up to 2.5x wider")
    assert "(pt)" in text and "eta 1.05x" in text and "7 outside the normalisation's domain" in text
    assert "jets 31 outside the training ranges" in text
    assert other_sample_sentence(None, row).startswith("Other sample: not measured")
