"""The summarize command: options, exit codes, one-line errors, subparser registration."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from results import cmd_summarize
from results.cli import main
from results.synthetic import make_campaign

ROOT = Path(__file__).parents[1]


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    return make_campaign(tmp_path / "clean", 20, eval_fraction=0.0)


def test_exit_0_when_everything_is_used(clean: Path, capsys: pytest.CaptureFixture) -> None:
    code = main([str(clean), "--only", "pareto,heatmap", "--format", "png"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "everything was used" in out
    assert (clean / "summary" / "figures" / "pareto.png").exists()
    assert not (clean / "summary" / "figures" / "pareto.pdf").exists()
    assert (clean / "summary" / "summary.h5").exists()
    assert (clean / "summary" / "summary.csv").exists()


def test_exit_1_when_something_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_campaign(tmp_path / "c", 20, eval_fraction=0.0, n_failed=1, n_truncated=1)
    assert main([str(root), "--no-plots"]) == 1
    out = capsys.readouterr().out
    assert "failed: RuntimeError" in out and "truncated" in out


def test_exit_2_on_bad_input_without_traceback(
    tmp_path: Path, clean: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such directory" in err and "gridsearch plan" in err
    assert main([str(tmp_path)]) == 2
    assert "not a campaign directory" in capsys.readouterr().err
    assert main([str(clean), "--only", "nonsense"]) == 2
    assert "unknown plot 'nonsense'" in capsys.readouterr().err
    assert main([str(clean), "--heatmap", "lr"]) == 2
    assert "--heatmap needs two" in capsys.readouterr().err
    assert main([str(clean), "--format", "gif", "--no-plots"]) == 2
    assert main([str(clean), "--top", "many"]) == 2


def test_options(clean: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        [
            str(clean),
            "--group-by",
            "bs",
            "--metric",
            "test_loss",
            "--only",
            "curves",
            "--top",
            "3",
            "--format",
            "png",
            "-q",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and out.strip().startswith("Result:")
    report = (clean / "summary" / "report.txt").read_text()
    assert "per bs (by test_loss" in report
    assert "training curves of the top 3 runs" in report
    assert main([str(clean), "--group-by", "none", "--only", "none"]) == 0
    assert "over the campaign" in (clean / "summary" / "report.txt").read_text()


def test_second_run_is_incremental(clean: Path, capsys: pytest.CaptureFixture) -> None:
    main([str(clean), "--no-plots"])
    capsys.readouterr()
    main([str(clean), "--no-plots"])
    assert "read 0 job(s), 20 unchanged from the cache" in capsys.readouterr().out
    main([str(clean), "--no-plots", "--no-cache"])
    assert "read 20 job(s)" in capsys.readouterr().out


def test_register_adds_subcommand(clean: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser(prog="gridsearch")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd_summarize.register(sub)
    args = parser.parse_args(["summarize", str(clean), "--no-plots"])
    assert args.func is cmd_summarize.run
    assert args.func(args) == 0
    assert "Best, median and worst run per latent" in capsys.readouterr().out


def test_python_m_results_has_no_traceback(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "results", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "no such directory" in res.stderr


def test_non_numeric_metric_is_bad_input(clean: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(clean), "--metric", "device", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "'device' is not numeric" in err and "Traceback" not in err
