"""The gridsearch command line: errors, the commands, and one real local campaign."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest_gs import TINY_BASE, cli, manifest, set_state, write

from gridsearch import cli as gcli

REPO = Path(__file__).resolve().parents[1]


def run_gs(*args, cwd=None, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "gridsearch", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def test_import_leaves_torch_out():
    code = "import sys, gridsearch.cli, gridsearch.status, gridsearch.submit, gridsearch.plan;"
    code += "import gridsearch.backends.local; assert 'torch' not in sys.modules, 'torch'"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_usage_errors_return_2(capsys):
    assert gcli.main(["plan"]) == 2
    assert gcli.main(["frobnicate"]) == 2
    assert gcli.main(["--help"]) == 0
    capsys.readouterr()


def test_command_modules_are_a_list_to_extend():
    assert "gridsearch.cli.plan" in gcli.COMMAND_MODULES
    parser = gcli.build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    assert {"plan", "submit", "status", "show", "clean", "resubmit"} <= set(verbs)


@pytest.mark.parametrize(
    "space, words",
    [
        ("name: s\ngrid:\n  train.lr: [1e-3\n", "not valid YAML"),
        ("name: s\ngrid:\n  train.lrr: [1]\n", "did you mean 'train.lr'"),
        ("name: s\ngrid: {}\n", "is empty"),
        ("name: s\ngrid:\n  model.latent: [2, 2]\n", "same job config"),
        ("name: s\ngrid:\n  model.latent: [9]\n", "latent size below 4"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, space, words):
    path = write(tmp_path / "space.yaml", space)
    out = run_gs("plan", path, "-o", tmp_path / "camp")
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and words in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "camp").exists()


def test_not_a_campaign_and_usage_errors(tmp_path, capsys):
    code, _, err = cli(capsys, "status", tmp_path)
    assert code == 2 and "not a campaign directory" in err
    code, _, err = cli(capsys, "submit", tmp_path / "nope", "--site", "local")
    assert code == 2 and "no such directory" in err
    write(tmp_path / "s.yaml", "name: s\ngrid:\n  seed: [1, 2]\n")
    cli(capsys, "plan", tmp_path / "s.yaml", "-o", tmp_path / "c")
    code, _, err = cli(capsys, "submit", tmp_path / "c", "--site", "local", "--only", "bogus")
    assert code == 2 and "unknown state(s) bogus" in err
    code, _, err = cli(capsys, "submit", tmp_path / "c", "--site", "nowhere")
    assert code == 2 and "no site profile named 'nowhere'" in err


def test_missing_cluster_backend_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import importlib

    real = importlib.import_module

    def fake_import(name, *a):
        if name == "gridsearch.backends.slurm":
            raise ModuleNotFoundError(name=name)
        return real(name, *a)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    write(tmp_path / "sites" / "mycluster.yaml", "kind: slurm\n")
    write(tmp_path / "s.yaml", "name: s\ngrid:\n  seed: [1, 2]\n")
    cli(capsys, "plan", tmp_path / "s.yaml", "-o", tmp_path / "c")
    code, _, err = cli(
        capsys, "submit", tmp_path / "c", "--site", "mycluster", "--sites-dir", tmp_path / "sites"
    )
    assert code == 2 and "slurm backend is not available" in err


def test_plan_dry_run_table_max_points_and_default_dir(tmp_path, capsys, monkeypatch):
    seeds = ", ".join(str(i) for i in range(12))
    write(tmp_path / "s.yaml", f"name: many\ngrid:\n  seed: [{seeds}]\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(capsys, "plan", "s.yaml", "--dry-run")
    assert code == 0 and "would plan 12 points" in out and "nothing written" in out
    assert out.splitlines()[0].split() == ["#", "id", "name", "plan", "seed"]
    assert not (tmp_path / "many").exists()
    code, _, err = cli(capsys, "plan", "s.yaml", "--max-points", "10")
    assert code == 2 and "--yes" in err
    code, out, _ = cli(capsys, "plan", "s.yaml", "--max-points", "10", "--yes")
    assert code == 0 and (tmp_path / "many" / "manifest.json").exists()
    code, out, _ = cli(capsys, "plan", "s.yaml", "--yes")
    assert "0 added, 12 unchanged" in out


def test_show_and_clean(tmp_path, capsys):
    write(tmp_path / "s.yaml", "name: s\ngrid:\n  seed: [1, 2, 3]\n")
    camp = tmp_path / "c"
    cli(capsys, "plan", tmp_path / "s.yaml", "-o", camp)
    jobs = manifest(camp)["jobs"]
    d = [camp / j["dir"] for j in jobs]
    set_state(d[0], "done")
    (d[0] / "metrics.json").write_text(json.dumps({"best_val_loss": 0.125}))
    (d[0] / "checkpoint.pt").write_bytes(b"x" * 100)
    set_state(d[1], "failed", reason="boom")
    (d[1] / "job.log").write_text("boom\n")
    code, out, _ = cli(capsys, "show", jobs[0]["id"][:6], camp)
    assert code == 0 and "best_val_loss: 0.125" in out and "seed: 1" in out
    code, out, _ = cli(capsys, "show", "s3", camp, "--json")
    assert json.loads(out)["state"] is None
    code, _, err = cli(capsys, "show", "zzz", camp)
    assert code == 2 and "no job" in err
    code, _, err = cli(capsys, "clean", camp)
    assert code == 2 and "name what to remove" in err
    # asks first; "no" removes nothing
    from gridsearch.cli import clean as cmd_clean

    args = gcli.build_parser().parse_args(["clean", str(camp), "--checkpoints", "--failed"])
    assert cmd_clean.run(args, confirm=lambda q: False) == 1
    assert (d[0] / "checkpoint.pt").exists()
    assert cmd_clean.run(args, confirm=lambda q: "1 checkpoint, 2 output files" in q) == 0
    assert not (d[0] / "checkpoint.pt").exists() and (d[0] / "metrics.json").exists()
    assert sorted(os.listdir(d[1])) == ["config.yaml"]
    code, out, _ = cli(capsys, "status", camp)
    assert "3 jobs: 2 planned, 1 done" in out


def test_real_local_campaign_end_to_end(tmp_path):
    """Plan two tiny points and train them for real with `python -m hepae_core.job`."""
    space = write(
        tmp_path / "space.yaml", "name: e2e\n" + TINY_BASE + "grid:\n  model.latent: [2, 3]\n"
    )
    camp = tmp_path / "camp"
    out = run_gs("plan", space, "-o", camp)
    assert out.returncode == 0, out.stderr
    out = run_gs("submit", camp, "--site", "local", "--workers", "2", cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "local run ended: 2 done" in out.stdout
    out = run_gs("status", camp, "--json")
    data = json.loads(out.stdout)
    assert data["counts"] == {"done": 2}
    for job in data["jobs"]:
        assert job["metrics"]["status"] == "done" and job["metrics"]["best_val_loss"] > 0
        assert job["metrics"]["threads"] == 1
        assert job["metrics"]["name"] == job["name"]
    out = run_gs("status", camp)
    assert "2 jobs: 2 done" in out.stdout
    out = run_gs("submit", camp, "--site", "local")
    assert out.returncode == 0 and "nothing to submit" in out.stdout


def test_real_interrupt_then_resubmit_resumes(tmp_path):
    """Ctrl-C a real local run mid-training; `resubmit` resumes it from its checkpoint."""
    import signal
    import time

    base = TINY_BASE.replace("epochs: 2", "epochs: 1000")  # ~8 s here
    space = write(tmp_path / "space.yaml", "name: resume\n" + base + "grid:\n  seed: [1]\n")
    camp = tmp_path / "camp"
    assert run_gs("plan", space, "-o", camp).returncode == 0
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridsearch", "submit", str(camp), "--site", "local"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    job = camp / manifest(camp)["jobs"][0]["dir"]
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if json.loads((job / "state.json").read_text()).get("epoch", 0) >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    state = json.loads((job / "state.json").read_text())
    if state["state"] == "done":
        pytest.skip("the job finished before it could be interrupted")
    assert state["state"] == "interrupted" and (job / "checkpoint.pt").exists()
    out = run_gs("status", camp)
    assert "1 jobs: 1 interrupted" in out.stdout
    out = run_gs("resubmit", camp, "--site", "local", timeout=300)
    assert out.returncode == 0, out.stderr
    m = json.loads((job / "metrics.json").read_text())
    assert m["attempts"] == 2 and m["epochs_run"] == 1000


def test_clean_not_in_space(tmp_path, capsys):
    space = write(tmp_path / "s.yaml", "name: s\ngrid:\n  seed: [1, 2, 3]\n")
    camp = tmp_path / "c"
    cli(capsys, "plan", space, "-o", camp)
    write(space, "name: s\ngrid:\n  seed: [1, 2]\n")
    code, out, _ = cli(capsys, "plan", space, "-o", camp)
    assert "1 no longer in the space" in out
    gone = [j for j in manifest(camp)["jobs"] if not j["in_space"]]
    code, out, _ = cli(capsys, "clean", camp, "--not-in-space", "--yes")
    assert code == 0 and "removed 1 job not in the space" in out
    assert not (camp / gone[0]["dir"]).exists()
    assert [j["in_space"] for j in manifest(camp)["jobs"]] == [True, True]
