"""model.stage1 as {pick: best, by, from}: the best stage-1 job is chosen when stage 2 starts.

The rules of the choice are checked on hand-made job dirs (state.json and metrics.json
only: choosing reads nothing else); the end-to-end tests train real stage-1 jobs and give
copies of them hand-set metrics so the winner is known in advance.
"""

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, run_job_process, start_job_process, write_job

from hepae_core import jobdir
from hepae_core.config import ConfigError, dump, load, resolve, stage1_spec
from hepae_core.errors import EXIT_BAD_INPUT, HepaeError
from hepae_core.states import ERROR_KINDS, EXIT_INTERRUPTED
from hepae_core.training.two_stage import Stage1NotDone, resolve_stage1

STAGE1 = {
    "data": {"source": "bundled:dijet_4d", "max_jets": 3000},
    "model": {"encoder": [16, 8], "latent": 3},
    "train": {"epochs": 2, "batch_size": 128, "threads": 1},
    "evaluate": {"plots": False, "timing_jets": 1000, "bits": [8], "baselines": False},
}
BY = "ae.pt.width"


def stage2(stage1, epochs: int = 2, batch_size: int = 128) -> dict:
    cfg = copy.deepcopy(STAGE1)
    cfg["data"]["group"] = {"size": 2}
    cfg["model"].update(latent=4, stage1=stage1)
    cfg["train"].update(epochs=epochs, batch_size=batch_size)
    return cfg


def pick(*dirs: str, by: str = BY) -> dict:
    return {"pick": "best", "by": by, "from": list(dirs)}


def fake_job(path: Path, state: str | None, value=None, by: str = BY, **fields) -> Path:
    """A job dir with only state.json and, for a value, metrics.json: what the choice reads."""
    path.mkdir(parents=True)
    if state is not None:
        jobdir.write_state(path, state, **fields)
    if value is not None:
        jobdir.atomic_write_json(path / jobdir.METRICS, {by: value, "best_val_loss": 1.0})
    return path


def read(path: Path) -> dict:
    return json.loads(path.read_text())


# ------------------------------------------------------------------ config validation


def test_mapping_is_kept_as_written_and_dumps_deterministically():
    s1 = {"pick": "best", "by": BY, "from": ["../b", "../a"]}
    cfg = resolve(stage2(s1))
    assert cfg["model"]["stage1"] == s1  # no defaults added, list order kept
    assert dump(cfg) == dump(resolve(stage2(copy.deepcopy(s1))))
    assert dump(cfg) != dump(resolve(stage2({**s1, "from": ["../a", "../b"]})))
    bare = resolve(stage2({"from": ["../a"]}))
    assert bare["model"]["stage1"] == {"from": ["../a"]}
    assert stage1_spec(bare) == {"pick": "best", "by": "best_val_loss", "from": ["../a"]}
    assert stage1_spec(resolve(stage2("../x"))) == {"pick": "path", "by": None, "from": ["../x"]}


@pytest.mark.parametrize(
    ("stage1", "key", "expect"),
    [
        ({"pick": "best", "from": ["../a"], "metric": BY}, "model.stage1.metric", "unknown key"),
        ({"pick": "best", "form": ["../a"]}, "model.stage1.form", "did you mean 'from'"),
        ({"pick": "best", "from": []}, "model.stage1.from", "non-empty list"),
        ({"pick": "best"}, "model.stage1.from", "non-empty list"),
        ({"pick": "best", "from": "../a"}, "model.stage1.from", "non-empty list"),
        ({"pick": "best", "from": ["../a", 3]}, "model.stage1.from.1", "a string"),
        ({"pick": "each", "from": ["../a"]}, "model.stage1.pick", "write pick: best"),
        ({"pick": "best", "by": "", "from": ["../a"]}, "model.stage1.by", "metrics.json key"),
        ({"pick": "best", "by": 3, "from": ["../a"]}, "model.stage1.by", "metrics.json key"),
    ],
)
def test_bad_mapping_names_the_key(stage1, key, expect):
    with pytest.raises(ConfigError) as err:
        resolve(stage2(stage1), "config.yaml")
    assert err.value.key == key and expect in err.value.message
    assert "\n" not in str(err.value)


def test_bad_mapping_in_a_job_is_one_line_with_its_line_number(tmp_path):
    job = write_job(tmp_path / "s2", stage2({"pick": "best", "from": []}))
    out = run_job_process(job)
    assert out.returncode == EXIT_BAD_INPUT and "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "config.yaml:" in lines[0] and "'model.stage1.from'" in lines[0]
    with pytest.raises(ConfigError, match=r"model\.stage1\.from"):
        load(job / "config.yaml")


# --------------------------------------------------------- the rules of the choice


def test_lowest_done_finite_value_wins_first_on_a_tie(tmp_path):
    fake_job(tmp_path / "a", "done", 0.30, finished="2026-01-01T00:00:01+00:00")
    fake_job(tmp_path / "b", "done", 0.125, finished="2026-01-01T00:00:02+00:00")
    fake_job(tmp_path / "c", "done", 0.125)  # ties with b: b is first in from
    fake_job(tmp_path / "d", "failed", 0.01)  # lower, but failed
    fake_job(tmp_path / "e", "running", 0.001)
    fake_job(tmp_path / "f", "done", float("nan"))  # stored as null: does not compete
    fake_job(tmp_path / "g", "done", 2)  # an integer value competes too
    job = tmp_path / "s2"
    job.mkdir()
    cfg = resolve(stage2(pick(*(f"../{n}" for n in "abcdefg"))))
    rec, reused = resolve_stage1(cfg, job)
    assert not reused
    assert (rec["pick"], rec["by"], rec["chosen"], rec["chosen_id"]) == ("best", BY, "../b", "b")
    assert rec["value"] == 0.125
    assert [c["id"] for c in rec["candidates"]] == list("abcdefg")
    assert [c["state"] for c in rec["candidates"]] == ["done"] * 3 + ["failed", "running"] + [
        "done"
    ] * 2
    assert [c["value"] for c in rec["candidates"]] == [0.30, 0.125, 0.125, None, None, None, 2.0]
    assert rec["candidates"][0]["finished"] == "2026-01-01T00:00:01+00:00"
    assert rec["candidates"][2]["finished"] is None
    assert set(rec["candidates"][0]) == {"dir", "id", "state", "value", "finished"}
    assert not (job / jobdir.STAGE1_CHOICE).exists()  # written only once the model loads


def test_plain_path_is_recorded_as_one_candidate(tmp_path):
    fake_job(tmp_path / "0a1b2c3d4e5f", "done", finished="2026-01-02T00:00:00+00:00")
    job = tmp_path / "jobs" / "s2"
    job.mkdir(parents=True)
    rec, _ = resolve_stage1(resolve(stage2("../../0a1b2c3d4e5f")), job)
    assert rec["pick"] == "path" and rec["by"] is None and rec["value"] is None
    assert rec["chosen"] == "../../0a1b2c3d4e5f" and rec["chosen_id"] == "0a1b2c3d4e5f"
    assert rec["candidates"] == [
        {
            "dir": "../../0a1b2c3d4e5f",
            "id": "0a1b2c3d4e5f",
            "state": "done",
            "value": None,
            "finished": "2026-01-02T00:00:00+00:00",
        }
    ]


def test_none_done_names_every_state_and_waits_on_stage_1(tmp_path):
    fake_job(tmp_path / "a", "failed")
    fake_job(tmp_path / "b", "running")
    fake_job(tmp_path / "c", "failed")
    fake_job(tmp_path / "d", None)  # never started: no state.json
    fake_job(tmp_path / "f", "done", float("inf"))
    job = tmp_path / "s2"
    job.mkdir()
    cfg = resolve(stage2(pick("../a", "../b", "../c", "../d", "../e", "../f")))
    from hepae_core.jobdir import job_lock

    with job_lock(tmp_path / "b"), pytest.raises(Stage1NotDone) as err:  # b runs: its lock
        resolve_stage1(cfg, job)
    assert err.value.key == "model.stage1" and err.value.exit_code == EXIT_BAD_INPUT
    assert err.value.error_kind == "stage1_not_done" and "stage1_not_done" in ERROR_KINDS
    assert err.value.message.startswith(
        "none of the 6 stage-1 jobs is done (2 failed, 1 running, 1 not started, 1 missing, "
        f"1 done without a finite '{BY}')"
    )
    with job_lock(tmp_path / "b"), pytest.raises(Stage1NotDone, match="not done \\(1 running\\)"):
        resolve_stage1(resolve(stage2(pick("../b"))), job)
    # no process holds b's lock: it was killed while running, and says so
    with pytest.raises(Stage1NotDone, match="the stage-1 job is not done \\(1 lost\\)"):
        resolve_stage1(resolve(stage2(pick("../b"))), job)


def test_all_done_without_a_value_is_bad_input_not_waiting(tmp_path):
    fake_job(tmp_path / "a", "done", float("nan"))
    fake_job(tmp_path / "b", "done", float("nan"))
    job = tmp_path / "s2"
    job.mkdir()
    with pytest.raises(HepaeError) as err:
        resolve_stage1(resolve(stage2(pick("../a", "../b"))), job)
    assert not isinstance(err.value, Stage1NotDone)
    assert "none of the 2 stage-1 jobs is usable" in err.value.message


def test_missing_by_key_names_the_key_and_the_candidate(tmp_path):
    fake_job(tmp_path / "a", "failed")  # not done: its metrics are not read
    fake_job(tmp_path / "b", "done", 0.1, by="ae.pt.widht")
    job = tmp_path / "s2"
    job.mkdir()
    with pytest.raises(HepaeError) as err:
        resolve_stage1(resolve(stage2(pick("../a", "../b"))), job)
    assert err.value.key == "model.stage1.by" and not isinstance(err.value, Stage1NotDone)
    assert f"'{BY}' is not a key of {tmp_path / 'b' / 'metrics.json'}" in err.value.message
    assert "did you mean 'ae.pt.widht'" in err.value.message


def test_recorded_choice_is_kept_only_when_resuming_the_same_spec(tmp_path):
    fake_job(tmp_path / "a", "done", 0.5)
    fake_job(tmp_path / "b", "done", 0.1)
    job = tmp_path / "s2"
    job.mkdir()
    spec = pick("../a", "../b")
    old = {
        "pick": "best", "by": BY, "chosen": "../a", "chosen_id": "a", "value": 0.9,
        "time": "2026-01-01T00:00:00+00:00",
        "candidates": [{"dir": "../a"}, {"dir": "../b"}],
    }  # fmt: skip
    jobdir.atomic_write_json(job / jobdir.STAGE1_CHOICE, old)
    cfg = resolve(stage2(spec))
    assert resolve_stage1(cfg, job)[0]["chosen"] == "../b"  # no checkpoint: a fresh start
    (job / jobdir.CHECKPOINT).write_bytes(b"")
    assert resolve_stage1(cfg, job) == (old, True)
    edited = resolve(stage2(pick("../a", "../b", by="best_val_loss")))
    assert resolve_stage1(edited, job)[0]["by"] == "best_val_loss"  # another spec: again


# ------------------------------------------------------------- real jobs, end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two real stage-1 jobs (seeds 0 and 1)."""
    root = tmp_path_factory.mktemp("trained")
    jobs = []
    for seed in (0, 1):
        job = write_job(root / f"seed{seed}", {**STAGE1, "seed": seed})
        out = run_job_process(job)
        assert out.returncode == 0, out.stderr
        jobs.append(job)
    return jobs


def candidate(dst: Path, src: Path, value, state: str = "done") -> Path:
    """A copy of a real stage-1 job with ``BY`` set by hand in its metrics.json."""
    shutil.copytree(src, dst)
    m = read(dst / jobdir.METRICS)
    m[BY] = value
    jobdir.atomic_write_json(dst / jobdir.METRICS, m)
    if state != "done":
        jobdir.write_state(dst, state, error_kind="python_error", finished=None)
    return dst


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, trained):
    """Candidates a1 (0.5), b2 (0.2: the best), c3 (failed, 0.01), d4 (done, NaN)."""
    root = tmp_path_factory.mktemp("campaign")
    candidate(root / "a1", trained[0], 0.5)
    candidate(root / "b2", trained[1], 0.2)
    candidate(root / "c3", trained[0], 0.01, state="failed")
    candidate(root / "d4", trained[1], float("nan"))
    return root


FROM = ("../a1", "../b2", "../c3", "../d4")


@pytest.fixture(scope="module")
def whole(campaign):
    """A stage-2 job picking from the campaign, run to the end without interruption."""
    job = write_job(campaign / "whole", stage2(pick(*FROM), epochs=10, batch_size=8))
    out = run_job_process(job)
    assert out.returncode == 0, out.stderr
    return job


def test_the_lowest_done_candidate_is_chosen_recorded_and_used(campaign, whole):
    rec = read(whole / jobdir.STAGE1_CHOICE)
    assert (rec["pick"], rec["by"], rec["chosen"], rec["chosen_id"]) == ("best", BY, "../b2", "b2")
    assert rec["value"] == 0.2
    assert [(c["dir"], c["id"], c["state"], c["value"]) for c in rec["candidates"]] == [
        ("../a1", "a1", "done", 0.5),
        ("../b2", "b2", "done", 0.2),
        ("../c3", "c3", "failed", None),
        ("../d4", "d4", "done", None),
    ]
    assert rec["candidates"][1]["finished"] == read(campaign / "b2" / jobdir.STATE)["finished"]
    m = read(whole / jobdir.METRICS)
    assert (m["stage1.id"], m["stage1.pick_value"]) == ("b2", 0.2)
    # the stage-1 weights inside the stage-2 model.pt are b2's (seed 1), not a1's (seed 0)
    got = torch.load(whole / jobdir.MODEL, weights_only=True)["stage1"]
    b2 = torch.load(campaign / "b2" / jobdir.MODEL, weights_only=True)["state_dict"]
    a1 = torch.load(campaign / "a1" / jobdir.MODEL, weights_only=True)["state_dict"]
    assert got["job_dir"] == str(campaign / "b2")
    for k, v in b2.items():
        assert torch.equal(got["state_dict"][k], v), k
    assert not all(torch.equal(got["state_dict"][k], v) for k, v in a1.items())


def _history(job: Path) -> list[list[str]]:
    rows = (job / jobdir.HISTORY).read_text().splitlines()
    return [r.split(",")[:4] for r in rows]  # epoch, train_loss, val_loss, lr: no timings


def test_resume_keeps_the_recorded_choice_when_a_better_job_appears(campaign, whole):
    job = write_job(campaign / "cut", stage2(pick(*FROM), epochs=10, batch_size=8))
    proc = start_job_process(job)
    deadline = time.time() + 120
    while not (job / jobdir.HISTORY).exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    before = read(job / jobdir.STAGE1_CHOICE)
    assert before["chosen"] == "../b2"

    # Meanwhile the failed candidate is rerun and becomes the best one.
    jobdir.write_state(campaign / "c3", "done", finished=jobdir.now_iso())
    out = run_job_process(job)
    assert out.returncode == 0 and "resuming from checkpoint.pt" in out.stderr, out.stderr
    assert read(job / jobdir.STAGE1_CHOICE) == before  # the same choice, not even rewritten
    assert read(job / jobdir.METRICS)["stage1.id"] == "b2"
    assert _history(job) == _history(whole)  # exact: as if never interrupted
    # a fresh start (no checkpoint) would now pick c3
    assert resolve_stage1(load(job / jobdir.CONFIG), job)[0]["chosen_id"] == "c3"


def test_none_done_fails_with_its_kind_and_writes_only_state(campaign):
    fake_job(campaign / "f6", "failed")
    job = write_job(campaign / "early", stage2(pick("../f6", "../nowhere")))
    out = run_job_process(job)
    assert out.returncode == EXIT_BAD_INPUT and "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "'model.stage1'" in lines[0]
    assert "none of the 2 stage-1 jobs is done (1 failed, 1 missing)" in lines[0]
    state = read(job / jobdir.STATE)
    assert (state["state"], state["error_kind"], state["exit_code"]) == (
        "failed",
        "stage1_not_done",
        EXIT_BAD_INPUT,
    )
    assert {p.name for p in job.iterdir()} <= {"config.yaml", "state.json", ".lock", "heartbeat"}


def test_missing_by_key_in_a_job_is_one_line(campaign):
    job = write_job(campaign / "typo", stage2(pick("../a1", by="ae.ptt.width")))
    out = run_job_process(job)
    assert out.returncode == EXIT_BAD_INPUT and "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, out.stderr
    assert "'model.stage1.by'" in lines[0] and "'ae.ptt.width'" in lines[0] and "a1" in lines[0]
    assert read(job / jobdir.STATE)["error_kind"] == "bad_input"
    assert not (job / jobdir.STAGE1_CHOICE).exists()


def test_bundle_members_pick_as_single_jobs_do(tmp_path, trained):
    candidate(tmp_path / "a1", trained[0], 0.5)
    candidate(tmp_path / "b2", trained[1], 0.3)
    candidate(tmp_path / "c3", trained[0], 0.1, state="failed")
    best = write_job(tmp_path / "best", stage2(pick("../a1", "../b2", "../c3")))
    path = write_job(tmp_path / "path", stage2("../a1"))
    waits = write_job(tmp_path / "waits", stage2(pick("../c3")))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-m", "hepae_core.bundle", str(best), str(path), str(waits)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr  # one member failed
    assert read(best / jobdir.STAGE1_CHOICE)["chosen_id"] == "b2"
    assert read(best / jobdir.METRICS)["stage1.id"] == "b2"
    rec = read(path / jobdir.STAGE1_CHOICE)
    assert (rec["pick"], rec["chosen_id"], rec["value"]) == ("path", "a1", None)
    m = read(path / jobdir.METRICS)
    assert (m["stage1.id"], m["stage1.pick_value"]) == ("a1", None)
    st = read(waits / jobdir.STATE)
    assert (st["state"], st["error_kind"]) == ("failed", "stage1_not_done")
    assert "the stage-1 job is not done (1 failed)" in st["reason"]
    assert not (waits / jobdir.STAGE1_CHOICE).exists()
    assert yaml.safe_load((best / "config.yaml").read_text())["model"]["stage1"]["pick"] == "best"
