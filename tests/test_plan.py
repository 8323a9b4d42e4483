"""Planning: job dirs, ids, idempotent re-planning, safety."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest_gs import TINY_BASE, manifest, set_state, write

from gridsearch.errors import GridsearchError
from gridsearch.plan import _Canon, plan
from hepae_core import config as hc

REPO = Path(__file__).resolve().parents[1]

SPACE = "name: t\n" + TINY_BASE + "grid:\n  model.latent: [2, 3]\n  train.lr: [1e-2, 1e-3]\n"


def test_plan_writes_campaign_and_valid_job_configs(tmp_path):
    space = write(tmp_path / "space.yaml", SPACE)
    camp = tmp_path / "camp"
    report = plan(space, camp)
    assert len(report.added) == 4 and report.new_campaign
    info = json.loads((camp / "campaign.json").read_text())
    assert info["name"] == "t" and info["space"]["sha256"]
    assert (camp / "space.yaml").read_text() == space.read_text()
    m = manifest(camp)
    assert [j["index"] for j in m["jobs"]] == [0, 1, 2, 3]
    assert m["axes"] == ["model.latent", "train.lr"]
    first = m["jobs"][0]
    assert first["name"] == "z2_lr1e-02" and first["in_space"] is True
    assert first["params"] == {"model.latent": 2, "train.lr": 0.01}
    for job in m["jobs"]:
        cfg = hc.load(camp / job["dir"] / "config.yaml")
        assert cfg["name"] == job["name"]
        canonical = hc.dump({k: v for k, v in cfg.items() if k != "name"})
        assert job["id"] == hashlib.sha256(canonical.encode()).hexdigest()[:12]
        assert job["dir"] == f"jobs/{job['id']}"
    assert sorted(os.listdir(camp / "jobs")) == sorted(j["id"] for j in m["jobs"])


def test_fast_canonical_dump_equals_hepae_core_dump():
    canon = _Canon()
    raws = [
        {},
        {"seed": 7, "name": "x", "model": {"preset": "AE_3D_200", "latent": 2}},
        {"data": {"variables": "27d", "source": "/a b/'q\"$(x)`\n../y.h5"},
         "normalisation": {"kind": "standard"}, "train": {"lr": 3e-2, "weight_decay": 0.1},
         "model": {"preset": "AE_bn_LeakyReLU", "latent": 8}},
        {"evaluate": {"residuals": {"pt": "absolute"}, "round": ["pt"]},
         "data": {"branches": {"pt": "jet_pt"}, "cuts": ["pt > 20", "abs(eta) < 2.5"]}},
        # strings a YAML 1.1 dumper writes bare and a YAML 1.2 reader takes for numbers
        {"name": "1e3", "data": {"source": "1e3", "tree": "0o17"}},
    ]  # fmt: skip
    for raw in raws:
        cfg = hc.resolve(raw)
        assert canon.dump(cfg) == hc.dump(cfg)
        assert canon.dump(cfg, skip="name") == hc.dump(
            {k: v for k, v in cfg.items() if k != "name"}
        )


def test_replan_is_idempotent_and_reports_changes(tmp_path):
    space = write(tmp_path / "space.yaml", SPACE)
    camp = tmp_path / "camp"
    plan(space, camp)
    before = manifest(camp)
    again = plan(space, camp)
    assert again.added == [] and len(again.unchanged) == 4 and again.gone == []
    assert [j["id"] for j in manifest(camp)["jobs"]] == [j["id"] for j in before["jobs"]]
    # a job that ran is never touched; a changed space adds, flags, deletes nothing
    done_id = before["jobs"][0]["id"]
    set_state(camp / "jobs" / done_id, "done")
    cfg_before = (camp / "jobs" / done_id / "config.yaml").read_text()
    write(space, SPACE.replace("[2, 3]", "[2]").replace("[1e-2, 1e-3]", "[1e-2, 1e-3, 1e-4]"))
    changed = plan(space, camp)
    assert len(changed.added) == 1 and len(changed.unchanged) == 2 and len(changed.gone) == 2
    m = manifest(camp)
    assert len(m["jobs"]) == 5
    flagged = [j for j in m["jobs"] if not j["in_space"]]
    assert len(flagged) == 2 and all((camp / j["dir"]).is_dir() for j in flagged)
    assert (camp / "jobs" / done_id / "config.yaml").read_text() == cfg_before
    assert (camp / "jobs" / done_id / "state.json").exists()
    # the earlier grid is kept
    assert len(list((camp / "history").glob("space-*.yaml"))) == 1
    assert len(json.loads((camp / "campaign.json").read_text())["plans"]) == 3


def test_dry_run_writes_nothing(tmp_path):
    space = write(tmp_path / "space.yaml", SPACE)
    report = plan(space, tmp_path / "camp", dry_run=True)
    assert len(report.added) == 4 and not (tmp_path / "camp").exists()


def test_invalid_point_names_the_line_and_writes_nothing(tmp_path):
    space = write(tmp_path / "space.yaml", SPACE.replace("[2, 3]", "[2, 4]"))
    with pytest.raises(GridsearchError) as exc:
        plan(space, tmp_path / "camp")
    msg = str(exc.value)
    assert f"{space}:8" in msg and "'model.latent'" in msg and "latent size below 4" in msg
    assert "point 2" in msg
    assert not (tmp_path / "camp").exists()


def test_list_values_hint_and_base_errors(tmp_path):
    space = write(tmp_path / "s.yaml", "name: t\ngrid:\n  model.encoder: [200, 100]\n")
    with pytest.raises(GridsearchError, match=r"s.yaml:3: 'model.encoder'.*\[\[200, 100, 50\]\]"):
        plan(space, tmp_path / "camp")
    space = write(tmp_path / "s.yaml", "name: t\nbase:\n  train:\n    lr: -1\ngrid:\n  seed: [1]\n")
    with pytest.raises(GridsearchError, match=r"s.yaml:4: 'train.lr'"):
        plan(space, tmp_path / "camp")
    space = write(tmp_path / "s.yaml", "name: t\nbase:\n  train:\n    lrr: 1\ngrid:\n  seed: [1]\n")
    with pytest.raises(GridsearchError, match=r"s.yaml:4: 'train.lrr'.*did you mean 'train.lr'"):
        plan(space, tmp_path / "camp")


def test_duplicate_points_are_refused(tmp_path):
    space = write(tmp_path / "space.yaml", "name: t\ngrid:\n  train.lr: [1e-3, 0.001]\n")
    with pytest.raises(GridsearchError, match=r"points 0 .* and 1 .* are the same job config"):
        plan(space, tmp_path / "camp")
    # an axis that changes nothing: the preset sets encoder [8, 6, 4] anyway
    space = write(
        tmp_path / "space.yaml",
        "name: t\nbase: {model: {preset: AE_big}}\ngrid:\n  model.latent: [3, 3]\n",
    )
    with pytest.raises(GridsearchError, match="same job config"):
        plan(space, tmp_path / "camp")


def test_relative_data_source_is_resolved_against_the_space_file(tmp_path):
    space = write(
        tmp_path / "sub" / "space.yaml",
        "name: t\nbase: {data: {source: ../data/jets.h5}}\ngrid:\n  seed: [1, 2]\n",
    )
    camp = tmp_path / "camp"
    plan(space, camp)
    job = manifest(camp)["jobs"][0]
    cfg = yaml.safe_load((camp / job["dir"] / "config.yaml").read_text())
    assert cfg["data"]["source"] == str(tmp_path / "data" / "jets.h5")


def test_refuses_directories_that_are_not_its_campaign(tmp_path):
    space = write(tmp_path / "space.yaml", SPACE)
    other = tmp_path / "other"
    write(other / "precious.txt", "keep me")
    with pytest.raises(GridsearchError, match="not a campaign directory"):
        plan(space, other)
    assert os.listdir(other) == ["precious.txt"]
    camp = tmp_path / "camp"
    plan(space, camp)
    renamed = write(tmp_path / "s2.yaml", SPACE.replace("name: t", "name: u"))
    with pytest.raises(GridsearchError, match="is the campaign 't'"):
        plan(renamed, camp)
    with pytest.raises(GridsearchError, match="not a directory"):
        plan(space, space)


def test_hostile_values_stay_data(tmp_path):
    hostile = "$(touch PWNED)`touch PWNED2`'\"\n../../etc"
    space = write(
        tmp_path / "space.yaml",
        "name: t\n"
        "grid:\n"
        f'  data.tree: [{json.dumps(hostile)}, "a;rm -rf ~"]\n'
        f'  data.key: ["../../x"]\n',
    )
    camp = tmp_path / "camp"
    plan(space, camp)
    m = manifest(camp)
    for job in m["jobs"]:
        assert all(c in "0123456789abcdef" for c in job["id"])
        assert all(c.isalnum() or c in "._+-" for c in job["name"])
        cfg = hc.load(camp / job["dir"] / "config.yaml")
        assert cfg["data"]["tree"] in (hostile, "a;rm -rf ~")
    assert sorted(os.listdir(camp)) == [
        ".lock", "campaign.json", "jobs", "manifest.json", "space.yaml",
    ]  # fmt: skip
    assert not list(tmp_path.rglob("PWNED*"))


def test_two_plans_at_once_make_no_duplicates(tmp_path):
    axes = ", ".join(str(i) for i in range(300))
    space = write(tmp_path / "space.yaml", f"name: t\ngrid:\n  seed: [{axes}]\n")
    camp = tmp_path / "camp"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "gridsearch", "plan", str(space), "-o", str(camp)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted(o.split(":")[1].split(",")[0].strip() for o in outs) == ["0 added", "300 added"]
    ids = [j["id"] for j in manifest(camp)["jobs"]]
    assert len(ids) == len(set(ids)) == 300
    assert sorted(os.listdir(camp / "jobs")) == sorted(ids)


@pytest.mark.parametrize(
    "name, points", [("demo.yaml", 6), ("thesis_4d.yaml", 20), ("thesis_27d.yaml", 216)]
)
def test_examples_plan(name, points, tmp_path):
    report = plan(REPO / "examples" / name, tmp_path / "c", dry_run=True)
    assert len(report.jobs) == points
    if name == "thesis_27d.yaml":
        combos = {(j.params["model.latent"], j.params["train.batch_size"]) for j in report.jobs}
        assert all((bs >= 4096) if z < 14 else (bs <= 4096) for z, bs in combos)
        assert {z for z, _ in combos} == {8, 10, 12, 14, 16, 18, 20}


def test_a_killed_plan_records_no_plan(tmp_path, monkeypatch):
    """campaign.json lists only plans that completed: a plan killed after 5 of its 20 job
    dirs records nothing; the next one records what it really added (15, by hand)."""
    import gridsearch.plan as P

    space = write(tmp_path / "space.yaml", "name: t\ngrid:\n  seed: [" + ", ".join(
        str(i) for i in range(20)) + "]\n")  # fmt: skip
    camp = tmp_path / "camp"
    real, calls = P._write_job, []

    def killed_after_five(*args):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(args)
        real(*args)

    monkeypatch.setattr(P, "_write_job", killed_after_five)
    with pytest.raises(KeyboardInterrupt):
        plan(space, camp)
    info = json.loads((camp / "campaign.json").read_text())
    assert info["plans"] == []  # not "added: 20"
    monkeypatch.setattr(P, "_write_job", real)
    plan(space, camp)
    (record,) = json.loads((camp / "campaign.json").read_text())["plans"]
    assert (record["added"], record["unchanged"], record["points"]) == (15, 5, 20)


def test_plan_prints_terminal_escapes_escaped(tmp_path, capsys):
    from conftest_gs import cli

    space = write(
        tmp_path / "space.yaml",
        "name: t\nbase:\n  data: {source: bundled:dijet_4d}\ngrid:\n"
        '  data.source: ["/nope/a\\e[2J.h5", "/nope/b\\e]0;pwned\\a.h5"]\n',
    )
    code, out, err = cli(capsys, "plan", space, "-o", tmp_path / "camp", "--table")
    assert code == 0, err
    assert "\x1b" not in out + err and "\x07" not in out + err  # nothing raw reaches the terminal
    assert "/nope/b\\x1b]0;pwned\\x07.h5" in out  # the table shows it, escaped
    assert "data file /nope/a\\x1b[2J.h5 does not exist" in err


def test_safe_escapes_controls_only():
    from gridsearch.text import safe

    assert safe("a\x1b[31mb\x9bc\x7f") == "a\\x1b[31mb\\x9bc\\x7f"
    assert safe("line\nnext\ttab") == "line\\nnext\\ttab"
    assert safe("ümläut ✓ $(x)") == "ümläut ✓ $(x)"
