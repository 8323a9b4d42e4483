"""The submission flow every backend shares (gridsearch.backends.base): nothing written
before everything is valid, the write-ahead ledger, adopt, the job script's environment
check, user templates, and HTCondor macros. The real-Slurm side is in
test_slurm_submit.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest_gs import cli, fake_site, write

from gridsearch import render, sites
from gridsearch.backends.base import JobRef
from gridsearch.backends.condor import CondorBackend
from gridsearch.backends.slurm import SlurmBackend
from gridsearch.campaign import open_campaign, read_ledger
from gridsearch.errors import GridsearchError

REPO = Path(__file__).resolve().parents[1]


def _campaign(tmp_path: Path, lrs: str = "[1e-3, 2e-3, 3e-3]") -> Path:
    from gridsearch.plan import plan

    space = write(tmp_path / "space.yaml", f"name: flow\ngrid:\n  train.lr: {lrs}\n")
    camp = tmp_path / "camp"
    plan(space, camp)
    return camp


def _litter(camp: Path) -> list[str]:
    sub = camp / "submit"
    return sorted(p.name for p in sub.iterdir()) if sub.exists() else []


@pytest.fixture(autouse=True)
def _no_user_profiles(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GRIDSEARCH_SITES", raising=False)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--site", "kebnekaise"], "'request.account': is required"),
        (["--site", "kebnekaise", "--account", "p1", "--time", "8-00:00:00"], "over the limit"),
        (["--site", "kebnekaise", "--account", "p1", "--gpus", "3"], "more than the 2"),
        (["--site", "slurm", "--account", "x;touch pwned"], "not a plain scheduler value"),
        (["--site", "slurm", "--mem", "0"], "above zero"),
        (["--site", "local", "--time", "0"], "walltime"),
    ],
)
def test_refused_submission_leaves_nothing(tmp_path, capsys, args, says):
    camp = _campaign(tmp_path)
    code, out, err = cli(capsys, "submit", camp, *args)
    assert code == 2 and says in err and "Traceback" not in err
    assert _litter(camp) == []  # no submit/<id>/ directory, not even an empty one
    assert not (camp / "ledger.jsonl").exists()  # nothing was about to be submitted
    code, out, _ = cli(capsys, "status", camp)
    assert "3 planned" in out


def test_scheduler_refusal_records_refused_and_removes_its_files(tmp_path, capsys, monkeypatch):
    # A stand-in sbatch that refuses like the real one does for a bad partition (the
    # real-cluster refusal is tested in test_slurm_submit.py).
    bin_dir = tmp_path / "bin"
    write(bin_dir / "sbatch", "#!/bin/sh\necho 'sbatch: error: invalid partition specified' >&2\n"
          "exit 1\n").chmod(0o755)  # fmt: skip
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    camp = _campaign(tmp_path)
    code, _, err = cli(capsys, "submit", camp, "--site", "slurm")
    assert code == 2 and "sbatch refused job.sh: sbatch: error: invalid partition" in err
    assert _litter(camp) == []
    subs = open_campaign(camp).submissions()
    assert [s["outcome"] for s in subs] == ["refused"]
    code, out, _ = cli(capsys, "status", camp)
    assert "3 planned" in out  # refused: the jobs are submittable again


def test_array_refusal_names_the_limit(tmp_path, capsys, monkeypatch):
    bin_dir = tmp_path / "bin"
    write(bin_dir / "sbatch", "#!/bin/sh\necho 'sbatch: error: Batch job submission failed: "
          "Invalid job array specification' >&2\nexit 1\n").chmod(0o755)  # fmt: skip
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    camp = _campaign(tmp_path)
    code, _, err = cli(capsys, "submit", camp, "--site", "slurm")
    assert code == 2 and "limits.max_array_size" in err and "MaxArraySize" in err


def test_torn_ledger_line_loses_no_record(tmp_path, capsys, monkeypatch):
    """A ledger whose last line was cut short (a crash, a full disk before the fix): the
    next submission starts on a fresh line, is read back, and no job runs twice."""
    sites_dir = fake_site(tmp_path, monkeypatch)
    camp = _campaign(tmp_path)
    torn = '{"event": "intent", "submission": "20260101-000000-slurm-dead", "indi'
    (camp / "ledger.jsonl").write_text(torn)
    code, out, err = cli(capsys, "submit", camp, "--site", "fake", "--sites-dir", sites_dir)
    assert code == 0, out + err
    lines = (camp / "ledger.jsonl").read_text().split("\n")
    assert lines[0] == torn  # left as it was, the new records each on a line of their own
    assert [json.loads(x)["event"] for x in lines[1:] if x] == ["intent", "submitted"]
    code, out, _ = cli(capsys, "status", camp)
    assert "3 done" in out
    code, out, _ = cli(capsys, "submit", camp, "--site", "fake", "--sites-dir", sites_dir)
    assert "nothing to submit" in out


def _intended(camp: Path, job_ids: list[str], chunks: list[dict]) -> str:
    """An intent with no outcome: the scheduler was called, the completion never written."""
    c = open_campaign(camp)
    index = c.job_indices()
    sub = "20260101-000000-slurm-beef"
    c.record_intent(
        sub, kind="slurm", site="slurm", dir=f"submit/{sub}", time="2026-01-01T00:00:00+00:00",
        indices={str(index[j]): j for j in job_ids}, chunks=chunks,
    )  # fmt: skip
    return sub


def test_jobs_of_an_intended_submission_are_not_submitted_again(tmp_path, capsys, monkeypatch):
    sites_dir = fake_site(tmp_path, monkeypatch)
    camp = _campaign(tmp_path)
    jobs = [j["id"] for j in json.loads((camp / "manifest.json").read_text())["jobs"]]
    _intended(camp, jobs[:2], [{"offset": 0, "indices": [0, 1]}])
    code, out, err = cli(capsys, "submit", camp, "--site", "fake", "--sites-dir", sites_dir)
    assert code == 0, err
    assert "submitted 1 jobs" in out  # only the third: the other two may be queued
    assert "2 in submission 20260101-000000-slurm-beef" in out
    ran = [j for j in jobs if (camp / "jobs" / j / "state.json").exists()]
    assert ran == [jobs[2]]


def test_adopt_records_the_printed_ids(tmp_path, capsys):
    camp = _campaign(tmp_path)
    jobs = [j["id"] for j in json.loads((camp / "manifest.json").read_text())["jobs"]]
    chunks = [{"offset": 0, "indices": [0, 1]}, {"offset": 2, "indices": [2]}]
    sub = _intended(camp, jobs, chunks)
    code, _, err = cli(capsys, "adopt", camp, sub, "--ids", "41")
    assert code == 2 and "give 2 id(s)" in err
    code, out, err = cli(capsys, "adopt", camp, sub, "--ids", "41,42")
    assert code == 0, err
    rec = open_campaign(camp).submission(sub)
    assert rec["outcome"] == "submitted" and rec["scheduler_ids"] == ["41", "42"]
    # worked out by hand: chunk 2 starts at campaign index 2, so its array index is 0
    assert rec["tasks"] == {"41_0": jobs[0], "41_1": jobs[1], "42_0": jobs[2]}
    code, _, err = cli(capsys, "adopt", camp, sub, "--ids", "41,42")
    assert code == 2 and "already recorded as submitted" in err
    code, out, _ = cli(capsys, "status", camp, "--json")
    assert "planned" not in {j["state"] for j in json.loads(out)["jobs"]}


def test_adopt_none_makes_the_jobs_submittable(tmp_path, capsys):
    camp = _campaign(tmp_path)
    jobs = [j["id"] for j in json.loads((camp / "manifest.json").read_text())["jobs"]]
    sub = _intended(camp, jobs, [{"offset": 0, "indices": [0, 1, 2]}])
    code, out, err = cli(capsys, "adopt", camp, sub, "--none")
    assert code == 0 and "its jobs can be submitted" in out, err
    assert open_campaign(camp).submission(sub)["outcome"] == "refused"


def test_outcome_not_recorded_prints_ids_and_the_adopt_command(tmp_path, capsys, monkeypatch):
    """The ledger refuses the completion after sbatch accepted (a full disk: simulated by
    making the second append fail; the real full tmpfs is in test_slurm_submit.py)."""
    bin_dir = tmp_path / "bin"
    write(bin_dir / "sbatch", "#!/bin/sh\necho 4242\n").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    camp = _campaign(tmp_path)
    from gridsearch import campaign as C

    real = C.append_record

    def full_after_intent(path, record):
        if record.get("event") == C.SUBMITTED:
            raise OSError(28, "No space left on device")
        real(path, record)

    monkeypatch.setattr(C, "append_record", full_after_intent)
    code, out, err = cli(capsys, "submit", camp, "--site", "slurm")
    assert code != 0
    assert "ids 4242" in err and "do NOT submit them again" in err
    sub = read_ledger(camp / "ledger.jsonl")[0]["submission"]
    assert f"gridsearch adopt {camp.resolve()} {sub} --ids 4242" in err
    monkeypatch.setattr(C, "append_record", real)
    code, out, _ = cli(capsys, "submit", camp, "--site", "slurm", "--dry-run")
    assert "nothing to submit" in out  # not planned: the scheduler holds them


# ---------------------------------------------------------------- the job script


def _render_slurm(tmp_path: Path, profile: dict) -> tuple[Path, Path]:
    job = tmp_path / "camp" / "jobs" / "job0"
    job.mkdir(parents=True)
    (job / "config.yaml").write_text("seed: 0\n")
    sub = SlurmBackend().submit([JobRef("job0", job, 0)], profile, tmp_path / "camp" / "s", True)
    return sub.directory / "job.sh", job


def _base_python() -> Path:
    """A real Python without this project on its path (the module system's python3)."""
    python = Path(sys.base_prefix) / "bin" / "python3"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([python, "-c", "import hepae_core"], env=env, cwd="/", check=False,
                           capture_output=True)  # fmt: skip
    if probe.returncode == 0:
        pytest.skip(f"{python} can import hepae_core: no Python without it here")
    return python


def test_job_without_the_package_fails_as_bad_environment(tmp_path):
    python = _base_python()
    profile = sites.load_profile("slurm")
    profile["python"] = str(python)
    script, job = _render_slurm(tmp_path, profile)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(SLURM_ARRAY_JOB_ID="77", SLURM_ARRAY_TASK_ID="0")
    proc = subprocess.run(["bash", str(script)], env=env, timeout=60, check=False)
    assert proc.returncode == 78  # EXIT_BAD_ENVIRONMENT, not a bare ModuleNotFoundError
    log = (job / "job.log").read_text().splitlines()
    said = [ln for ln in log if "bad environment" in ln]
    assert len(said) == 1 and f"{python} cannot import hepae_core" in said[0]
    assert "No module named 'hepae_core'" in said[0]
    state = json.loads((job / "state.json").read_text())
    assert state["state"] == "failed" and state["error_kind"] == "bad_environment"
    assert state["exit_code"] == 78 and state["scheduler_job_id"] == "77_0"
    assert not [p.name for p in job.iterdir() if p.name.endswith(".tmp")]
    from hepae_core.states import EXIT_BAD_ENVIRONMENT

    assert EXIT_BAD_ENVIRONMENT == 78


def test_bad_environment_leaves_a_locked_job_dir_alone(tmp_path):
    """Another process runs this job dir (holds its lock): the failing task says so in
    job.log only and leaves state.json as it was."""
    python = _base_python()
    profile = sites.load_profile("slurm")
    profile["python"] = str(python)
    script, job = _render_slurm(tmp_path, profile)
    (job / "state.json").write_text('{"state": "running"}')
    from hepae_core.jobdir import job_lock

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(SLURM_ARRAY_JOB_ID="78", SLURM_ARRAY_TASK_ID="0")
    with job_lock(job):
        proc = subprocess.run(["bash", str(script)], env=env, timeout=60, check=False)
    assert proc.returncode == 78
    assert (job / "state.json").read_text() == '{"state": "running"}'


def test_default_python_is_the_submitting_one_and_dry_run_says_so(tmp_path, capsys):
    camp = _campaign(tmp_path, "[1e-3]")
    code, out, err = cli(capsys, "submit", camp, "--site", "slurm", "--dry-run")
    assert code == 0, err
    assert f"note: python on the nodes: {sys.executable} (the venv that ran gridsearch" in out
    script = next((camp / "submit").glob("*/job.sh")).read_text()
    assert f"HEPAE_PYTHON={sys.executable}\n" in script
    assert f"\n{sys.executable} -m hepae_core.job " in script


def test_profile_venv_overrides_the_default(tmp_path):
    profile = sites.load_profile("slurm")
    profile["env"]["venv"] = "/proj/venvs/hepae"
    env = sites.check_environment(profile)
    assert env["python"] == "python" and "env.venv /proj/venvs/hepae" in env["origin"]


# ---------------------------------------------------------------- templates


def test_user_template_extends_a_packaged_one(tmp_path, capsys):
    user = tmp_path / "mysites"
    write(user / "mycluster.yaml", "extends: slurm\ntemplate: mycluster.sh.j2\n")
    write(
        user / "mycluster.sh.j2",
        """\
        {% extends "slurm.sh.j2" %}
        {% block directives %}
        {{ super() }}
        #SBATCH --reservation=physics
        {% endblock %}
        """,
    )
    camp = _campaign(tmp_path, "[1e-3]")
    code, out, err = cli(
        capsys, "submit", camp, "--site", "mycluster", "--sites-dir", user, "--dry-run"
    )
    assert code == 0 and "would submit 1 jobs to mycluster" in out, err
    text = next((camp / "submit").glob("*/job.sh")).read_text()
    assert "#SBATCH --reservation=physics\n" in text
    assert "#SBATCH --array=0\n" in text and "-m hepae_core.job" in text  # the rest is slurm's


def test_templates_get_the_exit_codes_not_literals():
    from hepae_core.states import EXIT_CODES

    for name in render.templates():
        text = (REPO / "jobs_templates" / name).read_text()
        for code in (EXIT_CODES["interrupted"], EXIT_CODES["bad_environment"]):
            assert str(code) not in text, f"{name} has a literal {code}"


# ---------------------------------------------------------------- HTCondor macros

MACROS = [
    "$(HOME)",
    "$$(Memory)",
    "$ENV(HOME)",
    "$RANDOM_CHOICE(a,b)",
    "$F(x)",
    "$RANDOM_INTEGER(1,9)",
]


@pytest.mark.parametrize("macro", MACROS)
def test_every_condor_macro_form_is_refused(tmp_path, macro):
    htcondor2 = pytest.importorskip("htcondor2")
    # HTCondor's own parser really reads it as a macro: expanded at submit time, or
    # ($$) kept for the schedd to fill in at match time.
    text = f"executable = /data/{macro}/job.sh\nqueue\n"
    value = htcondor2.Submit(text).get("executable")
    assert value == f"/data/{macro}/job.sh"
    if not macro.startswith("$$"):
        assert htcondor2.Submit(text).expand("executable") != value
    with pytest.raises(GridsearchError, match="macros"):
        render.condor_value(f"/data/{macro}/job.sh")
    job = tmp_path / f"c{macro}" / "jobs" / "j0"
    job.mkdir(parents=True)
    (job / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(GridsearchError, match="macros"):
        CondorBackend().submit([JobRef("j0", job, 0)], sites.load_profile("condor"),
                               tmp_path / "s", True)  # fmt: skip
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("plain", ["/data/price$5/job.sh", "/data/a$/b", "/data/$1/x"])
def test_a_dollar_that_is_no_macro_passes(plain):
    htcondor2 = pytest.importorskip("htcondor2")
    assert htcondor2.Submit(f"executable = {plain}\nqueue\n").expand("executable") == plain
    assert render.condor_value(plain) == plain


def test_clean_keeps_the_files_of_submissions_in_flight(tmp_path, capsys, monkeypatch):
    """Queued tasks read jobs.txt and the script when they start: --submit-files keeps
    them for submissions whose jobs are in flight (here: an unconfirmed one)."""
    camp = _campaign(tmp_path)
    jobs = [j["id"] for j in json.loads((camp / "manifest.json").read_text())["jobs"]]
    sub = _intended(camp, jobs[:1], [{"offset": 0, "indices": [0]}])
    (camp / "submit" / sub).mkdir(parents=True)
    (camp / "submit" / sub / "jobs.txt").write_text(f"0 {camp / 'jobs' / jobs[0]}\n")
    (camp / "submit" / "20250101-000000-slurm-0ld0").mkdir()
    code, out, err = cli(capsys, "clean", camp, "--submit-files", "--yes")
    assert code == 0 and "removed 1 submission files" in out, err
    assert f"keeping submit/{sub}: its jobs are in flight" in err
    assert _litter(camp) == [sub]


def test_max_array_size_from_scontrol_when_smaller(tmp_path, monkeypatch):
    """A stand-in scontrol (the real cluster's MaxArraySize, 10001, is above every
    profile's): the smaller value wins, and submit says where it came from."""
    bin_dir = tmp_path / "bin"
    config = "Configuration data as of now\nMaxArraySize            = 3\nMaxJobCount = 10000\n"
    write(bin_dir / "scontrol", f"#!/bin/sh\nprintf '{config}'\n").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    from gridsearch.backends.slurm import cluster_max_array_size

    assert cluster_max_array_size() == 3
    jobs = []
    for i in range(5):
        d = tmp_path / "camp" / "jobs" / f"j{i}"
        d.mkdir(parents=True)
        jobs.append(JobRef(f"j{i}", d, i))
    sub = SlurmBackend().submit(jobs, sites.load_profile("slurm"), tmp_path / "s", True)
    # indices 0-4 below 3 per chunk, worked out by hand: 0-2 and 3-4 (offset 3 -> 0-1)
    arrays = sorted(
        next(ln for ln in p.read_text().splitlines() if "--array" in ln)
        for p in sub.files
        if p.suffix == ".sh"
    )
    assert arrays == ["#SBATCH --array=0-1", "#SBATCH --array=0-2"]
    assert any("MaxArraySize 3 from 'scontrol show config'" in n for n in sub.notes)


def test_max_array_size_of_the_real_cluster():
    import shutil

    if shutil.which("scontrol") is None:
        pytest.skip("no scontrol on PATH")
    from gridsearch.backends.slurm import cluster_max_array_size

    value = cluster_max_array_size()
    if value is None:
        pytest.skip("no Slurm controller answers")
    # tests/slurm/start_cluster.sh configures MaxArraySize=10001
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    if conf.is_file() and "start_cluster.sh" in conf.read_text():
        assert value == 10001
