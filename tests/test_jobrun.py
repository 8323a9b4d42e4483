"""One run of a job (hepae_core.run.jobrun): the same failure ends a lone job and a bundle member
in the same words, and every file of a bundle member goes through the disk-full-aware writer.
"""

from __future__ import annotations

import copy
import errno
import json
from pathlib import Path

import pytest
from conftest import TINY_JOB, run_job_process, write_job
from test_bundle import run_bundle
from test_diskfull import fill, small_fs  # noqa: F401  (the tmpfs fixture)

from hepae_core.diskfull import DiskFull
from hepae_core.errors import EXIT_BAD_INPUT, EXIT_FAILED, HepaeError
from hepae_core.run.jobrun import failure_of
from hepae_core.training.two_stage import Stage1NotDone


def config(encoder=(16, 8), **train) -> dict:
    cfg = copy.deepcopy(TINY_JOB)
    cfg["model"]["encoder"] = list(encoder)
    cfg["train"].update(train)
    return cfg


def state(job: Path) -> dict:
    return json.loads((job / "state.json").read_text())


def test_the_failure_table(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.pt"))
    cases = {
        "bad_input": HepaeError(source="c.yaml", key="train.lr", message="is bad"),
        "stage1_not_done": Stage1NotDone(source="c.yaml", key="model.stage1", message="wait"),
        "disk_full": full,
        "nan": FloatingPointError("the training loss became nan at epoch 1"),
        "python_error": ValueError("boom"),
    }
    got = {kind: failure_of(exc, tmp_path) for kind, exc in cases.items()}
    assert {k: f.kind for k, f in got.items()} == {k: k for k in cases}
    assert got["bad_input"].exit_code == got["stage1_not_done"].exit_code == EXIT_BAD_INPUT
    assert got["disk_full"].exit_code == got["nan"].exit_code == EXIT_FAILED
    assert str(tmp_path / "x.pt") in got["disk_full"].reason
    assert got["nan"].reason == "FloatingPointError: the training loss became nan at epoch 1"
    # only an unexpected error shows a traceback
    assert [k for k, f in got.items() if f.traceback] == ["python_error"]
    # a DiskFull raised by a writer keeps the file it names
    assert failure_of(DiskFull(tmp_path / "model.pt"), tmp_path).reason.endswith(
        f"while writing {tmp_path / 'model.pt'}; free space and resubmit: the job resumes "
        "from its last checkpoint"
    )


def test_a_diverging_training_is_nan_alone_and_in_a_bundle(tmp_path):
    lone = write_job(tmp_path / "lone", config(lr=1e30))
    out = run_job_process(lone)
    assert out.returncode == EXIT_FAILED
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: job failed: FloatingPointError")

    good = write_job(tmp_path / "bundle" / "good", config())
    stacked = write_job(tmp_path / "bundle" / "stacked", config(lr=1e30))  # stacked with good
    alone = write_job(tmp_path / "bundle" / "alone", config(encoder=(32, 8), lr=1e30))
    code, err = run_bundle(good, stacked, alone)
    assert code == EXIT_FAILED, err
    assert "2 training(s) (2, 1 model(s) each)" in err
    assert state(good)["state"] == "done"
    for job in (lone, stacked, alone):
        s = state(job)
        assert (s["state"], s["error_kind"], s["exit_code"]) == ("failed", "nan", EXIT_FAILED)
        assert s["reason"].startswith("FloatingPointError: ")
        assert (s["epoch"], s["epochs"]) == (0, 2)
        assert not (job / "metrics.json").exists()
    assert state(stacked)["reason"] == state(lone)["reason"]


@pytest.mark.parametrize("max_stack", [None, 1], ids=["stacked", "alone"])
def test_a_bundle_member_on_a_full_disk_is_disk_full(small_fs, tmp_path, max_stack):  # noqa: F811
    roomy = write_job(tmp_path / "roomy", config())
    full = write_job(small_fs / "full", config())
    fill(small_fs, 24)  # room for the model, not for the first checkpoint
    args = [roomy, full] + ([] if max_stack is None else ["--max-stack", str(max_stack)])
    code, err = run_bundle(*args)
    assert code == EXIT_FAILED, err
    assert "Traceback" not in err
    assert state(roomy)["state"] == "done"
    s = state(full)
    assert (s["state"], s["error_kind"], s["exit_code"]) == ("failed", "disk_full", EXIT_FAILED)
    assert s["reason"].startswith(f"no space left on device while writing {full}/")
    assert f"[full] error: no space left on device while writing {full}/" in err
    assert not (full / "metrics.json").exists()
    left = [p.name for p in full.iterdir() if p.name.startswith(".") and p.name != ".lock"]
    assert left == []


def _imports(path: Path) -> set[str]:
    """The hepae_core modules ``path`` imports, at the top or inside functions."""
    import ast

    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "hepae_core":
            out |= {f"hepae_core.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hepae_core."):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("hepae_core.")}
    return out


def test_the_job_run_and_the_model_file_are_in_no_import_circle():
    from conftest import REPO

    def name(p: Path) -> str:
        parts = p.relative_to(REPO).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    graph = {name(p): _imports(p) for p in sorted((REPO / "hepae_core").rglob("*.py"))}
    assert "hepae_core.run.jobrun" in graph and "hepae_core.training.two_stage" in graph

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(graph.get(start, ()))
        while todo:
            mod = todo.pop()
            if mod == goal:
                return True
            if mod not in seen:
                seen.add(mod)
                todo.extend(graph.get(mod, ()))
        return False

    run = ("run.job", "run.jobrun", "run.bundle", "run.modelfile", "data.prepared")
    assert [m for m in run if reaches(f"hepae_core.{m}", f"hepae_core.{m}")] == []
    # grouped and two-stage models use the model file and the data, never the job entry
    for low in ("training.two_stage", "run.modelfile", "data.prepared"):
        assert not reaches(f"hepae_core.{low}", "hepae_core.run.job"), low
        assert not reaches(f"hepae_core.{low}", "hepae_core.run.jobrun"), low


def test_a_file_that_is_no_model_is_refused_in_one_line(tmp_path):
    import torch

    from hepae_core.run.modelfile import load_model, read_payload

    path = tmp_path / "model.pt"
    torch.save({"format": "something-else", "state_dict": {}}, path)
    with pytest.raises(HepaeError) as err:
        load_model(path)
    assert str(err.value) == f"{path}: is not a model saved by hepae_core"
    with pytest.raises(HepaeError, match=r"^upload\.pt: is not a model"):
        read_payload(path.read_bytes(), "upload.pt")
