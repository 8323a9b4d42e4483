"""A local run says what it submitted, and as which id, before its jobs run; its progress
lines name the stage; no progress bar without a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest_gs import cli, fake_site, write

REPO = Path(__file__).resolve().parents[1]


def _gs(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gridsearch", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, so the order is the order of writing
        text=True,
        env=env,
        timeout=300,
    )


def test_local_submit_says_submitted_first_and_names_the_stage(tmp_path, monkeypatch, capsys):
    sites = fake_site(tmp_path, monkeypatch)
    write(
        tmp_path / "s.yaml",
        """\
        name: st
        base:
          data: {source: bundled:dijet_4d, variables: 4d}
        stages:
          first:
            grid: {train.lr: [1.0e-3, 2.0e-3]}
          second:
            after: first
            stage1: {pick: best}
            base: {data: {group: {by: sequence}}}
            zip: {data.group.size: [2], model.latent: [3]}
        """,
    )
    camp = tmp_path / "c"
    assert cli(capsys, "plan", tmp_path / "s.yaml", "-o", camp)[0] == 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.environ["PYTHONPATH"], str(REPO)]))
    out = _gs("submit", camp, "--site", "fake", "--sites-dir", sites, env=env)
    assert out.returncode == 0, out.stdout
    lines = out.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if "stage 'first': submitted 2 jobs" in line)
    second = next(i for i, line in enumerate(lines) if "stage 'second': submitted 1 jobs" in line)
    first_done = [i for i, line in enumerate(lines) if line.startswith("[first ")]
    second_done = [i for i, line in enumerate(lines) if line.startswith("[second ")]
    # "submitted ... as <id>" comes before that stage's jobs end, and says the id
    assert len(first_done) == 2 and first < min(first_done) < max(first_done) < second
    assert len(second_done) == 1 and second < second_done[0]
    assert " as " in lines[first] and "(local)" in lines[first]
    assert lines[first_done[0]].startswith("[first 1/2] ")
    # said once, not again at the end
    assert sum("submitted" in line for line in lines) == 2
    assert lines[-1].startswith("local run ended: 3 done")
    # no terminal: no progress bar drawn (no carriage returns, no tqdm bar)
    assert "\r" not in out.stdout and "it/s" not in out.stdout and "job/s" not in out.stdout
