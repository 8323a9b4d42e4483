"""Rendering: templates extend the base script, StrictUndefined, shell quoting, and a
corpus of hostile strings that must never run as commands."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gridsearch import render, sites
from gridsearch.backends.base import JobRef
from gridsearch.backends.condor import CondorBackend
from gridsearch.backends.slurm import SlurmBackend
from gridsearch.errors import GridsearchError

# Each would create a file named "pwned" if any shell ever evaluated it.
HOSTILE = [
    "it's",
    'say "hi"',
    "$(touch pwned)",
    "`touch pwned`",
    "'; touch pwned; '",
    '"; touch pwned; "',
    "a; touch pwned",
    "x && touch pwned || touch pwned",
    "${HOME}$(touch pwned)",
    "../../etc",
    "with  two spaces",
    "back\\slash \\$(touch pwned)",
    "*glob? [x]",
    "-n",
    "%A_%a %j",
    "$((1+1)) !! #hash",
    "tab\there",
    "unicode ümläut ✓",
]
WITH_NEWLINE = ["line\nbreak; touch pwned", "cr\rtouch pwned"]

FAKE_PYTHON = """#!{python}
import json, os, sys
out = {{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}
with open(os.path.join(os.getcwd(), "fake.json"), "w") as fh:
    json.dump(out, fh)
"""


def make_jobs(root: Path, n: int = 2) -> list[JobRef]:
    jobs = []
    for i in range(n):
        d = root / "jobs" / f"job{i:09d}"
        d.mkdir(parents=True)
        (d / "config.yaml").write_text("seed: 0\n")
        jobs.append(JobRef(f"job{i:09d}", d))
    return jobs


def test_templates_extend_the_base_through_blocks():
    names = render.templates()
    assert {"base.sh.j2", "slurm.sh.j2", "condor.sh.j2", "condor.sub.j2"} <= set(names)
    for child in ("slurm.sh.j2", "condor.sh.j2"):
        text = render._load(child)
        assert text.startswith('{% extends "base.sh.j2" %}')
        assert "python" not in text  # the run step lives in the base only


def test_strict_undefined():
    with pytest.raises(GridsearchError, match="needs a value"):
        render.render("base.sh.j2", {"site": "x", "kind": "slurm"})
    with pytest.raises(GridsearchError, match="no such template"):
        render.render("nope.j2", {})


@pytest.mark.parametrize("value", HOSTILE + WITH_NEWLINE)
def test_shell_quote_is_one_inert_word(value, tmp_path):
    out = subprocess.run(
        ["bash", "-c", f"printf '%s' {render.shell_quote(value)}"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    assert out.stdout.decode() == value
    assert not list(tmp_path.iterdir())


def test_compact_ranges():
    assert render.compact_ranges([3, 7, 12]) == "3,7,12"
    assert render.compact_ranges([0, 1, 2, 4, 6, 7, 5, 9]) == "0-2,4-7,9"
    assert render.compact_ranges([]) == ""


def test_task_indices_are_the_campaign_indices(tmp_path):
    jobs = make_jobs(tmp_path, 3)
    assert render.task_indices(jobs) == [0, 1, 2]  # no campaign index: positions
    indexed = [JobRef(j.id, j.dir, 10 + i) for i, j in enumerate(jobs)]
    assert render.task_indices(indexed) == [10, 11, 12]
    assert render.task_indices(indexed[::2]) == [10, 12]
    # a duplicated index cannot address two jobs: positions
    assert render.task_indices([indexed[0], JobRef("x", jobs[1].dir, 10)]) == [0, 1]


def _hostile_profile(tmp_path: Path, value: str, kind: str) -> dict:
    """A profile whose every shell-side value is ``value`` (and a fake python)."""
    safe = value.replace("/", "_")
    bin_dir = tmp_path / f"bin {safe}"
    bin_dir.mkdir(parents=True)
    python = bin_dir / f"python {safe}"
    python.write_text(FAKE_PYTHON.format(python=sys.executable))
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    venv = tmp_path / f"venv {safe}"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text('export HEPAE_VENV_ACTIVATED="yes"\n')
    src = tmp_path / f"init {safe}.sh"
    src.write_text('export HEPAE_SOURCED="yes"\n')
    profile = sites.load_profile(kind)
    profile["python"] = str(python)
    profile["env"] = {
        "module_purge": True,
        "modules": [value, "GCC/8.2.0"],
        "source": [str(src)],
        "conda": value,
        "venv": str(venv),
        "variables": {"HEPAE_HOSTILE": value},
    }
    return profile


def _run_script(script: Path, env: dict, args: list[str], cwd: Path) -> None:
    record = cwd / "calls.txt"
    full = dict(os.environ)
    full.update(env)
    # `module` and `conda` are shell functions on clusters; these record their arguments.
    fn = (
        '() { for a in "$@"; do printf "%s\\0" "$a" >> "$HEPAE_RECORD"; done; '
        'printf "\\n" >> "$HEPAE_RECORD"; }'
    )
    full["BASH_FUNC_module%%"] = fn
    full["BASH_FUNC_conda%%"] = fn
    full["HEPAE_RECORD"] = str(record)
    proc = subprocess.run(
        ["bash", str(script), *args], cwd=cwd, env=full, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("kind", ["slurm", "condor"])
def test_hostile_strings_run_nothing(value, kind, tmp_path):
    """The campaign path and every profile value hostile; the rendered job script is run
    by bash with a fake python: the job dir and the values arrive intact, and no
    command hidden in them ran."""
    safe = value.replace("/", "_")
    campaign = tmp_path / f"camp {safe}"
    jobs = make_jobs(campaign, 2)
    profile = _hostile_profile(tmp_path / "profile", value, kind)
    backend = SlurmBackend() if kind == "slurm" else CondorBackend()
    if kind == "condor" and "$(" in value:
        # HTCondor expands $(...) macros in item data: such paths are refused, unwritten.
        with pytest.raises(GridsearchError, match="HTCondor submit description"):
            backend.submit(jobs, profile, campaign / "submit" / "s", dry_run=True)
        assert not (campaign / "submit").exists()
        return
    sub = backend.submit(jobs, profile, campaign / "submit" / f"s {safe}", dry_run=True)
    script = sub.directory / "job.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    for i, job in enumerate(jobs):
        if kind == "slurm":
            env = {"SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": str(i)}
            args, expect_id = [], f"77_{i}"
        else:
            env, args, expect_id = {}, [str(i), f"77.{i}"], f"77.{i}"
        _run_script(script, env, args, tmp_path)
        got = json.loads((job.dir / "fake.json").read_text())
        assert got["argv"] == ["-m", "hepae_core.job", str(job.dir)]
        assert Path(got["cwd"]) == job.dir
        assert got["env"]["HEPAE_HOSTILE"] == value
        assert got["env"]["HEPAE_SCHEDULER_JOB_ID"] == expect_id
        assert got["env"]["HEPAE_VENV_ACTIVATED"] == "yes"
        assert got["env"]["HEPAE_SOURCED"] == "yes"
        assert got["env"]["HEPAE_THREADS"] == "1"
        assert "=== gridsearch:" in (job.dir / "job.log").read_text()
    calls = (tmp_path / "calls.txt").read_text().split("\n")
    assert calls[0] == "purge\0"
    assert calls[1] == f"load\0{value}\0"
    assert calls[2] == "load\0GCC/8.2.0\0"
    assert calls[3] == f"activate\0{value}\0"
    assert not [p for p in tmp_path.rglob("pwned*")]
    assert not (Path.cwd() / "pwned").exists()


@pytest.mark.parametrize("value", WITH_NEWLINE)
def test_line_breaks_in_paths_are_refused_before_writing(value, tmp_path):
    campaign = tmp_path / value.replace("/", "_")
    jobs = make_jobs(campaign, 1)
    out = campaign / "submit" / "s"
    with pytest.raises(GridsearchError, match="line break"):
        SlurmBackend().submit(jobs, sites.load_profile("slurm"), out, dry_run=True)
    assert not out.exists()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("account", "proj; touch pwned"),
        ("account", "proj\n#SBATCH --wrap=x"),
        ("partition", "$(touch pwned)"),
        ("qos", "a b"),
        ("gpu_type", "v100 --wrap"),
        ("constraint", "a\nb"),
    ],
)
def test_hostile_scheduler_values_are_refused(key, value, tmp_path):
    jobs = make_jobs(tmp_path, 1)
    with pytest.raises(GridsearchError, match="not a plain scheduler value"):
        SlurmBackend().submit(
            jobs, sites.load_profile("slurm"), tmp_path / "s", dry_run=True, overrides={key: value}
        )
    assert not (tmp_path / "s").exists()


def test_hostile_extra_options_are_refused(tmp_path):
    profile = sites.load_profile("slurm")
    profile["request"]["extra"] = ["--exclusive", "--wrap=$(touch pwned)"]
    with pytest.raises(GridsearchError, match="not a plain sbatch option"):
        SlurmBackend().submit(make_jobs(tmp_path, 1), profile, tmp_path / "s", dry_run=True)
    profile["request"]["extra"] = ["--exclusive", "--mail-type=END"]
    sub = SlurmBackend().submit(make_jobs(tmp_path / "b", 1), profile, tmp_path / "s", True)
    text = (sub.directory / "job.sh").read_text()
    assert "#SBATCH --exclusive\n#SBATCH --mail-type=END\n" in text


def test_slurm_chunks_at_max_array_size(tmp_path):
    jobs = [
        JobRef(j.id, j.dir, i) for i, j in zip([5, 1000, 1001, 2500, 7], make_jobs(tmp_path, 5))
    ]
    profile = sites.load_profile("slurm")
    profile["request"]["throttle"] = 2
    sub = SlurmBackend().submit(jobs, profile, tmp_path / "submit" / "s", dry_run=True)
    scripts = sorted(p.name for p in sub.files if p.suffix == ".sh")
    assert scripts == ["job-0.sh", "job-1.sh", "job-2.sh"]
    arrays = {
        p.name: next(ln for ln in p.read_text().splitlines() if "--array" in ln)
        for p in sub.files
        if p.suffix == ".sh"
    }
    assert arrays["job-0.sh"] == "#SBATCH --array=5,7,1000%2"
    assert arrays["job-1.sh"] == "#SBATCH --array=0%2"
    assert arrays["job-2.sh"] == "#SBATCH --array=498%2"
    assert (
        "TASK_INDEX=$(( SLURM_ARRAY_TASK_ID + 2002 ))" in (sub.directory / "job-2.sh").read_text()
    )
    assert sub.command.count("&&") == 2
    # the throttle holds across chunks: each chunk waits for the one before
    assert sub.command.count("--dependency=afterany:PREVIOUS") == 2
    assert render.read_list(sub.directory / "jobs.txt")[2500] == str(jobs[3].dir)


def test_max_jobs_per_submission(tmp_path):
    profile = sites.load_profile("slurm")
    profile["limits"]["max_jobs_per_submission"] = 2
    with pytest.raises(GridsearchError, match="max_jobs_per_submission: 2"):
        SlurmBackend().submit(make_jobs(tmp_path, 3), profile, tmp_path / "s", dry_run=True)


def test_sbatch_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(GridsearchError, match="sbatch not found"):
        SlurmBackend().submit(make_jobs(tmp_path, 1), sites.load_profile("slurm"), tmp_path / "s")


SLOW_START_PYTHON = """#!{python}
import os, signal, sys, time
if sys.argv[1] == "-c":  # the job script's check that the package imports
    sys.exit(0)
got = []
time.sleep(1.5)  # importing torch, reading data: the signal may come before this is done
signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
for _ in range(200):
    if got:
        open("interrupted.txt", "w").write("USR1")
        sys.exit(75)
    time.sleep(0.05)
sys.exit(0)
"""


def test_signal_during_job_start_up_is_not_lost(tmp_path):
    """Slurm may send the walltime warning early (up to a minute, its docs say), even
    before the job installed its handler: the script passes it on again until handled."""
    import signal
    import time

    jobs = make_jobs(tmp_path / "camp", 1)
    python = tmp_path / "python"
    python.write_text(SLOW_START_PYTHON.format(python=sys.executable))
    python.chmod(0o755)
    profile = sites.load_profile("slurm")
    profile["python"] = str(python)
    sub = SlurmBackend().submit(jobs, profile, tmp_path / "camp" / "submit" / "s", True)
    env = dict(os.environ, SLURM_ARRAY_JOB_ID="5", SLURM_ARRAY_TASK_ID="0")
    proc = subprocess.Popen(["bash", str(sub.directory / "job.sh")], env=env)
    time.sleep(0.5)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=30) == 75
    assert (jobs[0].dir / "interrupted.txt").read_text() == "USR1"
    log = (jobs[0].dir / "job.log").read_text()
    assert "received SIGUSR1" in log and "job exited with 75" in log
