"""Careless and hostile input to the command lines: each case runs the real command in a
subprocess and expects exactly one ``error:`` line naming the file or option, a non-zero
exit, no traceback, and every input file byte-identical afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest_gs import cli, write

GS = [sys.executable, "-m", "gridsearch"]
TRAIN = [sys.executable, "-m", "hepae_core.cli"]


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def refused(cmd: list, root: Path, *needles: str, code: int = 2, timeout: int = 120) -> str:
    """Run ``cmd``; assert one error line holding ``needles``, exit ``code``, no traceback,
    and nothing under ``root`` changed. Returns the line."""
    before = _tree(root)
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=root)  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == code, text
    assert "Traceback" not in text, text
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert _tree(root) == before, "an input file changed"
    return lines[0]


def _nested(depth: int, flow: bool) -> str:
    if flow:
        return "[" * depth + "]" * depth
    return (
        "\n"
        + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(depth))
        + "  " * (depth + 1)
        + "v: 1"
    )


# ---------------------------------------------------------------- deep YAML


@pytest.mark.parametrize("depth,flow", [(5000, True), (400, False), (100, True)])
def test_deeply_nested_space_file(tmp_path, depth, flow):
    write(tmp_path / "s.yaml", "name: x\ngrid:\n  seed: [1]\nbase:\n  a: ")
    with open(tmp_path / "s.yaml", "a") as fh:
        fh.write(_nested(depth, flow) + "\n")
    refused([*GS, "plan", "s.yaml", "--dry-run"], tmp_path, "s.yaml", "nests")


def test_deeply_nested_config(tmp_path):
    (tmp_path / "cfg.yaml").write_text("data: " + _nested(5000, True) + "\n")
    refused([*TRAIN, "cfg.yaml", "--out", "job"], tmp_path, "cfg.yaml", "nests")
    assert not (tmp_path / "job").exists()


def test_deeply_nested_site_profile(tmp_path, capsys):
    write(tmp_path / "s.yaml", "name: s\ngrid:\n  seed: [1, 2]\n")
    assert cli(capsys, "plan", tmp_path / "s.yaml", "-o", tmp_path / "c")[0] == 0
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "deep.yaml").write_text("kind: slurm\nenv: " + _nested(3000, True))
    refused(
        [*GS, "submit", "c", "--site", "deep", "--sites-dir", "sites", "--dry-run"],
        tmp_path, "deep.yaml", "nests",
    )  # fmt: skip


# ---------------------------------------------------------------- sizes


def test_huge_repeat_is_refused_before_building_seeds(tmp_path):
    write(tmp_path / "s.yaml", "name: x\nrepeat: 100000000\ngrid:\n  train.lr: [1.0e-3]\n")
    # a memory limit: building 10**8 seeds would blow it, a cap checked first does not
    line = refused(
        ["prlimit", "--as=2000000000", *GS, "plan", "s.yaml", "--dry-run"], tmp_path,
        "'repeat'", "1,000,000",
    )  # fmt: skip
    assert "s.yaml" in line


# ---------------------------------------------------------------- plan refuses late failures

STAGED = """\
name: st
base:
  data: {source: bundled:dijet_4d, max_jets: 3000}
  train: {epochs: 2}
stages:
  single:
    grid: {model.latent: [2, 3]}
  grouped:
    after: single
    stage1: {pick: best, by: BY}
    base: {data: {group: {by: sequence}}}
    grid: {data.group.size: [2]}
    zip: {model.latent: [Z2]}
"""


@pytest.mark.parametrize(
    "by, words",
    [("best_val_los", ["did you mean 'best_val_loss'"]), ("ae.pt.widht", ["'ae.pt.width'"]),
     ("accuracy", ["docs/metrics.md"])],
)  # fmt: skip
def test_plan_refuses_a_misspelt_stage1_by(tmp_path, by, words):
    write(tmp_path / "s.yaml", STAGED.replace("BY", by).replace("Z2", "3"))
    line = refused([*GS, "plan", "s.yaml", "-o", "c"], tmp_path, "stages.grouped.stage1.by",
                   f"'{by}' is not a metrics.json key", *words)  # fmt: skip
    assert "s.yaml:" in line
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("by", ["ae.pt.width", "best_val_loss", "sq8.m.rms", "param.train.lr"])
def test_plan_accepts_real_metric_keys(tmp_path, capsys, by):
    write(tmp_path / "s.yaml", STAGED.replace("BY", by).replace("Z2", "3"))
    code, _, err = cli(capsys, "plan", tmp_path / "s.yaml", "--dry-run")
    assert code == 0, err


def test_plan_refuses_a_stage2_latent_not_below_g_times_z1(tmp_path, capsys):
    # stage-1 latents 2 and 3, G = 2: a stage-2 latent of 4 is >= 2 x 2
    write(tmp_path / "s.yaml", STAGED.replace("BY", "best_val_loss").replace("Z2", "4"))
    line = refused([*GS, "plan", "s.yaml", "-o", "c"], tmp_path, "'model.latent'",
                   "is 4 in stage 'grouped'", "below 4")  # fmt: skip
    assert "s.yaml" in line and not (tmp_path / "c").exists()
    write(tmp_path / "ok.yaml", STAGED.replace("BY", "best_val_loss").replace("Z2", "3"))
    assert cli(capsys, "plan", tmp_path / "ok.yaml", "--dry-run")[0] == 0


@pytest.mark.parametrize(
    "where",
    ["base:\n  train: {epochs: 2, schedule: one_cycle}\n",
     "base:\n  train: {epochs: 2}\n"],
)  # fmt: skip
def test_plan_refuses_halving_with_one_cycle(tmp_path, where):
    grid = "grid:\n  train.lr: [1.0e-3, 3.0e-3]\n"
    if "one_cycle" not in where:
        grid = "grid:\n  train.schedule: [constant, one_cycle]\n"
    write(tmp_path / "s.yaml", f"name: h\n{where}halving: {{rungs: [2, 6], keep: 1/2}}\n{grid}")
    refused([*GS, "plan", "s.yaml", "-o", "c"], tmp_path, "'train.schedule'",
            "is one_cycle", "cannot continue", "s.yaml")  # fmt: skip
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------- nonsense values


@pytest.fixture
def camp(tmp_path, capsys):
    write(tmp_path / "s.yaml", "name: s\ngrid:\n  train.lr: [1.0e-3, 3.0e-3]\n")
    code, _, err = cli(capsys, "plan", tmp_path / "s.yaml", "-o", tmp_path / "c")
    assert code == 0, err
    return tmp_path / "c"


@pytest.mark.parametrize(
    "args, words",
    [
        (["submit", "c", "--site", "slurm", "--dry-run", "--time", "99999999999999999999"],
         ["'request.time'", "more than a year"]),
        (["submit", "c", "--site", "slurm", "--dry-run", "--time", "400d"], ["more than a year"]),
        (["submit", "c", "--site", "local", "--dry-run", "--time", "9999999999999h"],
         ["more than a year"]),
        (["status", "c", "--lost-after", "-5"], ["--lost-after", "above zero", "'-5'"]),
        (["status", "c", "--lost-after", "nan"], ["--lost-after", "above zero"]),
        (["submit", "c", "--site", "slurm", "--dry-run", "--lost-after", "inf"], ["--lost-after"]),
        (["resubmit", "c", "--site", "slurm", "--lost-after", "0"], ["--lost-after"]),
        (["status", "c", "--interval", "-1", "--watch"], ["--interval"]),
        (["adopt", "c", "x", "--ids", "0"], ["'--ids'", "'0'"]),
        (["adopt", "c", "x", "--ids", "1" * 30], ["'--ids'", "below 2^32"]),
        (["adopt", "c", "x", "--ids", "000123"], ["'--ids'", "no leading zeros", "'000123'"]),
        (["adopt", "c", "x", "--ids", "12,12"], ["'--ids'", "12 twice"]),
        (["promote", "c", "--keep", "1", "--epochs", "4", "--metric", "best_val_los"],
         ["'--metric'", "did you mean 'best_val_loss'"]),
        (["resubmit", "c", "--site", "slurm", "--out-of-date", "--dry-run"],
         ["--out-of-date", "no stages"]),
        (["submit", "c", "--site", "slurm", "--dry-run", "--mem", "99999999999999999999T"],
         ["'request.mem'", "more than 1 PB"]),
    ],
)  # fmt: skip
def test_nonsense_values_are_refused(camp, args, words):
    refused([*GS, *args], camp.parent, *words)
    assert not (camp / "submit").exists()


def test_adopt_accepts_plain_and_condor_ids():
    from gridsearch.cli.adopt import check_ids

    assert check_ids("1234, 1235") == ["1234", "1235"]
    assert check_ids("4242.0") == ["4242.0"]
    assert check_ids(str(2**32 - 1)) == [str(2**32 - 1)]


def _done(job_dir: Path, **metrics) -> None:
    import json

    from conftest_gs import set_state

    set_state(job_dir, "done")
    (job_dir / "metrics.json").write_text(json.dumps({"status": "done", **metrics}))


def test_promote_by_a_string_metric_is_refused(camp):
    for i, d in enumerate(sorted((camp / "jobs").iterdir())):
        _done(d, name=f"job{i}", best_val_loss=0.5 + i)
    refused([*GS, "promote", str(camp), "--keep", "1", "--epochs", "4", "--metric", "name"],
            camp.parent, "'--metric'", "is not a number", "(it is 'job")  # fmt: skip
    # which job is named depends on the order of the job ids (content hashes), not on this


def test_promote_with_no_finished_job_fails(camp):
    line = refused([*GS, "promote", str(camp), "--keep", "1", "--epochs", "4"], camp.parent,
                   "nothing to promote", code=1)  # fmt: skip
    assert "2 not done (planned)" in line


def test_promote_while_jobs_run_says_to_wait(camp):
    from conftest_gs import set_state

    jobs = sorted((camp / "jobs").iterdir())
    set_state(jobs[0], "running", host="localhost-not-this", heartbeat_s=60)
    (jobs[0] / "heartbeat").touch()
    line = refused([*GS, "promote", str(camp), "--keep", "1", "--epochs", "4"], camp.parent,
                   "nothing to promote yet", "still queued or running", "wait", code=1)  # fmt: skip
    assert "--watch" in line


@pytest.mark.parametrize(
    "args",
    [["submit", "c", "--mem", "-4G"], ["submit", "c", "--site", "slurm", "--cpus", "x"],
     ["submit", "c", "--site", "slurm", "--throttle", "abc"], ["status", "c", "--state", "bogus"],
     ["bogus"], [], ["status", "c", "--lines", "-2"]],
)  # fmt: skip
def test_usage_errors_are_one_line(camp, args):
    line = refused([*GS, *args], camp.parent)
    assert "usage:" not in line and "--help" in line


# ---------------------------------------------------------------- messages

ESC = "\x1b[2J\x1b]0;owned\x07"


def test_halving_names_the_unknown_key(tmp_path):
    write(tmp_path / "h.yaml", "name: h\nhalving: {rungs: [2, 6], kep: 1/2}\n"
          "grid:\n  train.lr: [1.0e-3]\n")  # fmt: skip
    line = refused([*GS, "plan", "h.yaml", "--dry-run"], tmp_path, "'halving.kep'",
                   "did you mean 'keep'")  # fmt: skip
    assert "expects a mapping" not in line


@pytest.mark.parametrize(
    "args, shown",
    [(["submit", "c", "--site", ESC, "--dry-run"], "'--site'"),
     (["promote", "c", "--keep", "1" + ESC, "--epochs", "3"], "'--keep'"),
     (["status", "c", "--state", ESC], "--state")],
)  # fmt: skip
def test_escape_sequences_in_options_are_shown_escaped(camp, args, shown):
    line = refused([*GS, *args], camp.parent, shown, "\\x1b[2J")
    assert "\x1b" not in line and "\x07" not in line


def test_escape_sequences_in_keys_and_file_names_are_shown_escaped(tmp_path):
    odd = tmp_path / ("x" + ESC)
    odd.mkdir()
    # the key holds an escape written as YAML's \e; the file name a raw one
    (odd / "s.yaml").write_text('name: s\ngrid:\n  "\\e[2Jtrain.lr": [1]\n')
    line = refused([*GS, "plan", str(odd / "s.yaml"), "--dry-run"], tmp_path, "\\x1b[2Jtrain.lr")
    assert "\x1b" not in line and "did you mean 'train.lr'" in line
    (odd / "raw.yaml").write_text("name: s\ngrid:\n  train.lr: [1]\n  x\x1b[2J: [2]\n")
    line = refused([*GS, "plan", str(odd / "raw.yaml"), "--dry-run"], tmp_path, "not valid YAML")
    assert "\x1b" not in line and "\\x1b]0;owned\\x07/raw.yaml" in line


@pytest.mark.parametrize(
    "args, words",
    [(["--site", "slurm", "--time", "0"], ["'request.time'"]),
     (["--site", "slurm", "--gpus", "-1"], ["'request.gpus'"]),
     (["--site", "slurm", "--throttle", "0"], ["'request.throttle'"]),
     (["--site", "slurm", "--mem", "1e400"], ["'request.mem'"]),
     (["--site", "local", "--workers", "0"], ["'workers'"]),
     (["--site", "local", "--time", "-5"], ["'--time'"])],
)  # fmt: skip
def test_requests_are_checked_even_with_nothing_to_submit(camp, args, words):
    """Every job is done: nothing to submit, but a nonsense request is still refused
    rather than answered with "nothing to submit", exit 0."""
    from conftest_gs import set_state

    for d in (camp / "jobs").iterdir():
        set_state(d, "done")
    for cmd in ("submit", "resubmit"):
        refused([*GS, cmd, "c", "--dry-run", *args], camp.parent, *words)


def test_hepae_train_refuses_a_misspelt_stage1_by(tmp_path):
    (tmp_path / "cfg.yaml").write_text(
        "data: {source: bundled:dijet_4d, group: {size: 2, by: sequence}}\n"
        "model: {stage1: {pick: best, by: best_val_los, from: [../a]}}\n"
    )
    refused([*TRAIN, "cfg.yaml", "--out", "job"], tmp_path, "'model.stage1.by'",
            "did you mean 'best_val_loss'")  # fmt: skip
    assert not (tmp_path / "job").exists()
