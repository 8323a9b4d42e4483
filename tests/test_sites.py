"""Site profiles: loading, user profiles, limits, and golden rendered scripts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from gridsearch import sites
from gridsearch.backends.base import JobRef
from gridsearch.backends.condor import CondorBackend
from gridsearch.backends.slurm import SlurmBackend
from gridsearch.cli import sites as cmd_sites
from gridsearch.errors import GridsearchError

GOLDEN = Path(__file__).resolve().parent / "golden"
PACKAGED = ["aurora", "condor", "cosmos", "kebnekaise", "local", "lxplus", "slurm"]
# name -> (profile, overrides) of each golden rendering
CASES = {
    "slurm": ("slurm", {}),
    "aurora": ("aurora", {"account": "lu2026-2-12"}),
    "cosmos": ("cosmos", {"account": "lu2026-2-12"}),
    "kebnekaise": ("kebnekaise", {"account": "hpc2n2026-123"}),
    "kebnekaise-gpu": (
        "kebnekaise",
        {"account": "hpc2n2026-123", "gpus": 1, "gpu_type": "v100", "time": "2h"},
    ),
    "cosmos-gpu": (
        "cosmos",
        {"account": "lu2026-2-12", "partition": "gpua100", "gpus": 2, "throttle": 4},
    ),
    "condor": ("condor", {}),
    "lxplus": ("lxplus", {"time": "3h", "mem": "4G", "cpus": 2}),
}


@pytest.fixture(autouse=True)
def _no_user_profiles(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(sites.USER_SITES_ENV, raising=False)


def test_packaged_profiles_are_listed():
    assert list(sites.available()) == PACKAGED


@pytest.mark.parametrize("name", PACKAGED)
def test_every_packaged_profile_resolves(name):
    profile = sites.load_profile(name)
    assert profile["name"] == name
    assert profile["kind"] in ("local", "slurm", "condor")
    if profile["kind"] != "local":
        sites.check_environment(profile)
        overrides = {"account": "x-1"} if "account" in profile.get("required", []) else {}
        request = sites.resolve_request(profile, overrides)
        assert request["time_s"] > 0
        limits = profile["limits"]
        assert "max_jobs_per_submission" in limits


def test_named_sites_extend_the_generic_ones():
    for name in ("aurora", "cosmos", "kebnekaise"):
        assert yaml.safe_load(sites._packaged(name))["extends"] == "slurm"
    assert yaml.safe_load(sites._packaged("lxplus"))["extends"] == "condor"


def test_missing_account_is_an_error_naming_the_key(tmp_path):
    profile = sites.load_profile("kebnekaise")
    with pytest.raises(GridsearchError, match="required at site 'kebnekaise'") as err:
        SlurmBackend().submit(
            [JobRef("a", tmp_path / "jobs" / "a")], profile, tmp_path / "submit", dry_run=True
        )
    assert err.value.key == "request.account"
    assert "--account" in str(err.value)
    assert not (tmp_path / "submit").exists()


def test_user_profile_extends_the_packaged_one_of_the_same_name(tmp_path):
    d = tmp_path / "mysites"
    d.mkdir()
    (d / "kebnekaise.yaml").write_text(
        "extends: kebnekaise\nrequest: {account: hpc2n2026-1}\nenv: {venv: /proj/v}\n"
    )
    profile = sites.load_profile("kebnekaise", [d])
    assert profile["request"]["account"] == "hpc2n2026-1"
    assert profile["request"]["cpus"] == 4  # from the packaged profile
    assert profile["env"]["venv"] == "/proj/v"
    assert profile["env"]["modules"]  # kept from the packaged profile
    assert profile["source"] == str(d / "kebnekaise.yaml")
    sites.resolve_request(profile)


def test_user_dirs_from_environment(tmp_path, monkeypatch):
    d = tmp_path / "envsites"
    d.mkdir()
    (d / "mycluster.yaml").write_text("extends: slurm\nrequest: {partition: big}\n")
    monkeypatch.setenv(sites.USER_SITES_ENV, str(d))
    assert sites.available()["mycluster"] == str(d / "mycluster.yaml")
    assert sites.load_profile("mycluster")["request"]["partition"] == "big"


def test_profile_loops_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b\n")
    (tmp_path / "b.yaml").write_text("extends: a\n")
    with pytest.raises(GridsearchError, match="extends itself"):
        sites.load_profile("a", [tmp_path])


def test_times_are_not_read_as_base_60_numbers(tmp_path):
    (tmp_path / "t.yaml").write_text("extends: slurm\nrequest: {time: 20:00}\n")
    profile = sites.load_profile("t", [tmp_path])
    assert sites.resolve_request(profile)["time_s"] == 20 * 60


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 1800),
        ("30", 1800),
        ("1:30", 90),
        ("02:00:00", 7200),
        ("1-00:00:00", 86400),
        ("2-12", 2 * 86400 + 12 * 3600),
        ("1-2:30", 86400 + 2 * 3600 + 1800),
        ("90s", 90),
        ("20m", 1200),
        ("1.5h", 5400),
        ("1d", 86400),
        ("1w", 604800),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d12h", 129600),
        ("2-00:00:00", 172800),
        (" 1H30M ", 5400),
    ],
)
def test_parse_walltime(text, seconds):
    assert sites.parse_walltime(text) == seconds


@pytest.mark.parametrize(
    "bad", ["", "soon", "0", -5, "1:2:3:4", True, None, "$(x)", "0h0m", "1h-30m", "h30m"]
)
def test_bad_walltimes(bad):
    with pytest.raises(GridsearchError, match="walltime"):
        sites.parse_walltime(bad)


def test_format_walltime():
    assert sites.format_walltime(59) == "00:00:59"
    assert sites.format_walltime(86400 + 3661) == "1-01:01:01"


@pytest.mark.parametrize(
    ("text", "mb"), [(4000, 4000), ("4000M", 4000), ("4G", 4096), ("4GB", 4096), ("1T", 1048576)]
)
def test_parse_memory(text, mb):
    assert sites.parse_memory(text) == mb


def test_walltime_over_the_partition_limit_is_refused():
    profile = sites.load_profile("cosmos")
    with pytest.raises(GridsearchError, match=r"over the limit 7-00:00:00 \(max_time\)") as err:
        sites.resolve_request(profile, {"account": "x", "time": "8-00:00:00"})
    assert "partition 'lu48'" in str(err.value)
    assert err.value.key == "request.time"


def test_more_gpus_than_a_node_has_is_refused():
    with pytest.raises(GridsearchError, match="more than the 2 a node has"):
        sites.resolve_request(sites.load_profile("kebnekaise"), {"account": "x", "gpus": 4})
    with pytest.raises(GridsearchError, match="more than the 0 a node has"):
        sites.resolve_request(sites.load_profile("cosmos"), {"account": "x", "gpus": 1})
    with pytest.raises(GridsearchError, match="GPU type 'k80'"):
        sites.resolve_request(
            sites.load_profile("kebnekaise"), {"account": "x", "gpus": 1, "gpu_type": "k80"}
        )


def test_cli_option_aliases():
    request = sites.resolve_request(sites.load_profile("slurm"), {"threads": 4, "workers": 8})
    assert request["cpus"] == 4 and request["throttle"] == 8


def test_unknown_partition_and_override():
    with pytest.raises(GridsearchError, match="not one of cosmos's partitions"):
        sites.resolve_request(sites.load_profile("cosmos"), {"account": "x", "partition": "p"})
    with pytest.raises(GridsearchError, match="cannot be overridden"):
        sites.resolve_request(sites.load_profile("slurm"), {"colour": "red"})


@pytest.mark.parametrize(
    ("time", "flavour"),
    [
        ("10m", "espresso"),
        ("20m", "espresso"),
        ("21m", "microcentury"),
        ("1h", "microcentury"),
        ("2h", "longlunch"),
        ("8h", "workday"),
        ("20h", "tomorrow"),
        ("3d", "testmatch"),
        ("1w", "nextweek"),
    ],
)
def test_lxplus_job_flavour_from_walltime(time, flavour):
    assert sites.resolve_request(sites.load_profile("lxplus"), {"time": time})["flavour"] == flavour


def test_lxplus_walltime_over_a_week_is_refused():
    with pytest.raises(GridsearchError, match="limit 7-00:00:00"):
        sites.resolve_request(sites.load_profile("lxplus"), {"time": "8d"})


def _campaign(root: Path, n: int = 3) -> list[JobRef]:
    jobs, entries = [], []
    for i in range(n):
        job_id = f"{i:x}" * 12
        d = root / "jobs" / job_id
        d.mkdir(parents=True)
        (d / "config.yaml").write_text("seed: 0\n")
        jobs.append(JobRef(job_id, d))
        entries.append({"index": i, "id": job_id})
    (root / "manifest.json").write_text(json.dumps({"name": "scan", "jobs": entries}))
    return jobs


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_rendered_scripts(case, tmp_path):
    """Rendered files for every packaged site (campaign path with spaces and quotes)
    match tests/golden/; regenerate with UPDATE_GOLDEN=1 after a deliberate change."""
    name, overrides = CASES[case]
    profile = sites.load_profile(name)
    root = tmp_path / 'my "scan" it\'s'
    jobs = _campaign(root)
    backend = SlurmBackend() if profile["kind"] == "slurm" else CondorBackend()
    sub = backend.submit(
        jobs, profile, root / "submit" / f"20260101-000000-{name}-abcd", True, overrides
    )
    assert sub.dry_run and not sub.scheduler_ids
    out = GOLDEN / case
    for path in sorted(sub.files):
        # jobs run with the Python that submitted (this venv) unless the profile says
        text = path.read_text().replace(str(tmp_path), "/CAMPAIGNS")
        text = text.replace(sys.executable, "/VENV/bin/python")
        golden = out / path.name
        if os.environ.get("UPDATE_GOLDEN"):
            out.mkdir(parents=True, exist_ok=True)
            golden.write_text(text)
        assert golden.is_file(), f"no golden file {golden}: run with UPDATE_GOLDEN=1"
        assert text == golden.read_text(), f"{case}/{path.name} differs from the golden file"


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridsearch")
    cmd_sites.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_sites_command_lists_and_shows(capsys, tmp_path):
    assert _cli(["sites"]) == 0
    out = capsys.readouterr().out
    for name in PACKAGED:
        assert name in out
    assert _cli(["sites", "list"]) == 0
    capsys.readouterr()
    assert _cli(["sites", "show", "lxplus"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["flavours"]["espresso"] == "20m" and shown["kind"] == "condor"
    assert _cli(["sites", "show", "kebnekaise"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["kind"] == "slurm" and resolved["name"] == "kebnekaise"
    assert resolved["limits"]["max_gpus"] == 2
    with pytest.raises(GridsearchError, match="no site profile named 'nope'"):
        _cli(["sites", "show", "nope"])
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "mine.yaml").write_text("extends: condor\n")
    assert _cli(["sites", "--sites-dir", str(tmp_path / "extra"), "list"]) == 0
    assert "mine" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["slurm", "condor"])
def test_backends_are_found_by_kind(kind):
    backends = pytest.importorskip("gridsearch.backends")
    if not hasattr(backends, "get_backend"):
        pytest.skip("get_backend comes with the gridsearch core")
    backend = backends.get_backend(kind)
    assert backend.kind == kind
    assert callable(backend.submit) and callable(backend.query)


def test_one_walltime_parser():
    # sites, the local backend and slurm all read walltimes through gridsearch.units
    from gridsearch import units
    from gridsearch.backends import local

    assert sites.parse_walltime is units.parse_walltime
    assert local.parse_walltime is units.parse_walltime


@pytest.mark.parametrize("bad", [0, "0", "0M", "0G"])
def test_mem_zero_is_refused(bad):
    profile = sites.load_profile("slurm")
    with pytest.raises(GridsearchError, match="above zero"):
        sites.resolve_request(profile, {"mem": bad})
