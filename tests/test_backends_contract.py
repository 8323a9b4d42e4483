"""The backend contract: abstract hooks, the one registry of kinds, the one table of
submission options, and the exit-code table every backend reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridsearch import options, sites
from gridsearch.backends import base, registry
from gridsearch.backends.base import Backend, SchedulerBackend
from gridsearch.cli import build_parser
from gridsearch.errors import GridsearchError
from hepae_core import contract


class _NoQuery(Backend):
    kind = "broken"

    def _prepare(self, order):  # type: ignore[override]
        raise AssertionError

    def _display_command(self, prepared):  # type: ignore[override]
        return []

    def _execute(self, prepared, sub):  # type: ignore[override]
        return None

    def _task_ids(self, job_id, chunk):  # type: ignore[override]
        return {}


def test_a_backend_missing_a_hook_cannot_be_instantiated():
    with pytest.raises(TypeError, match="query"):
        _NoQuery()

    class NoJobId(SchedulerBackend):
        def _prepare(self, order):  # type: ignore[override]
            raise AssertionError

        def _task_ids(self, job_id, chunk):  # type: ignore[override]
            return {}

        def query(self, task_ids):  # type: ignore[override]
            return {}

        def _make_submission_command(self, prepared, chunk, previous):  # type: ignore[override]
            return []

    with pytest.raises(TypeError, match="_get_job_id_from_submission_command"):
        NoJobId()


@pytest.mark.parametrize("kind", registry.KINDS)
def test_each_kind_is_one_subpackage_and_one_registry_entry(kind):
    backend = registry.get_backend(kind)
    assert backend.kind == kind
    module, _ = registry.BACKENDS[kind]
    assert type(backend).__module__.startswith(module)
    # a subpackage: gridsearch/backends/<kind>/__init__.py
    assert Path(__import__(module, fromlist=["x"]).__file__).name == "__init__.py"
    assert isinstance(backend, Backend)
    assert backend.blocking or isinstance(backend, SchedulerBackend)


def test_unknown_kinds_are_refused_naming_the_registry(tmp_path):
    with pytest.raises(GridsearchError, match="use one of local, slurm, condor"):
        registry.get_backend("pbs")
    (tmp_path / "pbs.yaml").write_text("kind: pbs\n")
    with pytest.raises(GridsearchError, match="must be local, slurm or condor"):
        sites.load_profile("pbs", [tmp_path])


def test_request_rules_are_the_backends():
    # HTCondor's own keys come from its backend: the flavour, disk, transfer rules
    request = sites.resolve_request(sites.load_profile("lxplus"), {"time": "2h"})
    assert request["flavour"] == "longlunch" and request["transfer_files"] == "NO"
    assert "disk_kb" in request and "max_restarts" in request
    # a Slurm profile takes `extra` as sbatch options, not HTCondor submit commands
    profile = sites.merge(sites.load_profile("slurm"), {"request": {"extra": {"a": 1}}})
    with pytest.raises(GridsearchError, match="list of non-empty strings"):
        sites.resolve_request(profile)
    assert "flavour" not in sites.resolve_request(sites.load_profile("slurm"))


def test_exit_meanings_come_from_the_contract():
    from gridsearch.backends.condor import classify as condor_classify
    from gridsearch.backends.local import _outcomes
    from gridsearch.backends.slurm import classify as slurm_classify

    assert slurm_classify("FAILED", "75:0") == (
        "failed",
        "exit 75: interrupted, checkpoint written; resubmit to resume",
        75,
    )
    assert slurm_classify("FAILED", "2:0")[1].startswith("exit 2: bad config or data")
    assert slurm_classify("FAILED", "127:0")[1].startswith("exit 127: python not found")
    for code, meaning in contract.EXIT_MEANINGS.items():
        if meaning.reason:
            assert slurm_classify("FAILED", f"{code}:0")[1] == meaning.reason
    ref = base.JobRef("j", Path("."))
    assert _outcomes([ref], contract.EXIT_INTERRUPTED, False) == [(ref, "interrupted")]
    assert _outcomes([ref], contract.EXIT_BUSY, False) == [(ref, "failed (job dir busy)")]
    assert _outcomes([ref], 99, False) == [(ref, "failed")]
    state, reason, code = condor_classify({"JobStatus": 4, "ExitCode": 75, "NumJobStarts": 2})
    assert state == contract.TaskState.FAILED and code == 75 and "interrupted" in reason
    assert isinstance(slurm_classify("PENDING")[0], contract.TaskState)


def test_the_contract_imports_nothing_of_the_project():
    import ast

    tree = ast.parse(Path(contract.__file__).read_text(encoding="utf-8"))
    imported = [
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    ]
    project = ("hepae_core", "gridsearch", "results")
    assert not [m for m in imported if m and m.split(".")[0] in project]
    assert contract.EXIT_CODES["interrupted"] == 75 and contract.JOB_FILES["state"] == "state.json"


@pytest.mark.parametrize("command", ["submit", "resubmit", "promote"])
def test_the_submission_flags_come_from_the_one_table(command):
    parser = build_parser()
    argv = [command, "camp", "--site", "slurm"]
    given = {
        "bundle": "auto",
        "time": "2h",
        "mem": "4G",
        "cpus": "2",
        "gpus": "1",
        "gpu_type": "a100",
        "partition": "p",
        "account": "a",
        "qos": "q",
        "throttle": "3",
        "workers": "2",
        "threads": "4",
    }
    assert set(given) == set(options.REMEMBERED_FLAGS)
    for key, value in given.items():
        argv += [options.BY_KEY[key].flag, value]
    overrides = options.overrides_from_args(parser.parse_args(argv))
    assert overrides == {
        k: (int(v) if options.BY_KEY[k].type is int else v) for k, v in given.items()
    }
    # the profile keys and the flags a rung carries on are the same table's
    assert set(options.OVERRIDABLE) >= {"time", "mem", "cpus", "constraint", "disk"}
    assert {
        k: f for k, f in options.REMEMBERED_FLAGS.items() if k not in ("workers", "threads")
    } == sites.OVERRIDE_FLAGS


def test_a_bad_bundle_is_one_error_naming_the_flag():
    args = build_parser().parse_args(["submit", "c", "--site", "local", "--bundle", "0"])
    with pytest.raises(GridsearchError, match="--bundle"):
        options.overrides_from_args(args)
