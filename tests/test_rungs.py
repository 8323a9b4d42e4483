"""``submit --all-rungs``: successive halving to its last rung by one command (locally in
the command, real trainings; the Slurm script as rendered; the refusals). The real Slurm
run is in test_slurm_rungs.py."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import yaml
from conftest_gs import cli, write

from gridsearch.backends.slurm import SlurmBackend
from gridsearch.campaign import open_campaign
from gridsearch.halving import rungs
from gridsearch.halving.promote import rung_of

SPACE = """\
name: halving
base:
  data: {source: bundled:dijet_4d, max_jets: 3000}
  model: {encoder: [8]}
  train: {epochs: 1, batch_size: 256}
  evaluate: {plots: false, timing_jets: 1000}
grid:
  train.lr: [1.0e-3, 2.0e-3, 3.0e-3, 4.0e-3]
halving: {rungs: [1, 2, 3], keep: 1/2}
"""


def _plan(tmp_path: Path, capsys, text: str = SPACE) -> Path:
    space = write(tmp_path / "space.yaml", text)
    camp = tmp_path / "camp"
    assert cli(capsys, "plan", space, "-o", camp)[0] == 0
    return camp


def _jobs(camp: Path) -> list[dict]:
    return json.loads((camp / "manifest.json").read_text())["jobs"]


def test_local_all_rungs_runs_every_rung_in_one_command(tmp_path, capsys):
    camp = _plan(tmp_path, capsys)
    code, out, err = cli(capsys, "submit", camp, "--site", "local", "--all-rungs")
    assert code == 0, out + err
    assert out.count("promoted ") == 2  # rung 0 -> 1, rung 1 -> 2
    dirs = {j["name"]: camp / j["dir"] for j in _jobs(camp)}
    reached = {name: rung_of(d) for name, d in dirs.items()}
    assert sorted(reached.values()) == [0, 0, 1, 2]  # 4 -> keep 1/2 -> 2 -> keep 1/2 -> 1

    # Each rung's results, from the job's own files: promotion moves the round's outputs
    # to previous/<time>-rung<R> (R: the rung they were made at).
    def result(name: str, rung: int) -> float:
        d = dirs[name]
        found = sorted((d / "previous").glob(f"*-rung{rung}")) if rung < reached[name] else []
        return json.loads(((found[0] if found else d) / "metrics.json").read_text())[
            "best_val_loss"
        ]

    # rung 0: the two with the lowest best_val_loss went on
    on = [n for n in dirs if reached[n] >= 1]
    stayed = [n for n in dirs if reached[n] == 0]
    assert max(result(n, 0) for n in on) < min(result(n, 0) for n in stayed)
    # rung 1: the better of those two went on to rung 2
    best = min(on, key=lambda n: result(n, 1))
    assert reached[best] == 2
    # every job trained exactly the epochs of its rung, and ended done
    for name, d in dirs.items():
        rows = (d / "history.csv").read_text().splitlines()[1:]
        assert len(rows) == [1, 2, 3][reached[name]], name
        assert json.loads((d / "state.json").read_text())["state"] == "done"
    assert "the last rung" not in out  # locally the loop simply ends


def test_all_rungs_without_halving_is_refused_before_anything_runs(tmp_path, capsys):
    camp = _plan(tmp_path, capsys, SPACE.replace("halving: {rungs: [1, 2, 3], keep: 1/2}\n", ""))
    code, _, err = cli(capsys, "submit", camp, "--site", "local", "--all-rungs")
    assert code == 2
    assert "space.yaml" in err and "halving" in err and "Traceback" not in err
    assert not (camp / "ledger.jsonl").exists() or not open_campaign(camp).submissions()


def test_all_rungs_on_htcondor_is_refused_with_the_way_on(tmp_path, capsys):
    camp = _plan(tmp_path, capsys)
    code, _, err = cli(capsys, "submit", camp, "--site", "lxplus", "--all-rungs", "--dry-run")
    assert code == 2
    assert "condor cannot queue a job behind" in err and "gridsearch promote" in err
    assert not open_campaign(camp).submissions()


def test_slurm_dry_run_renders_the_promote_job(tmp_path, capsys):
    hostile = tmp_path / "scan $(touch pwned) 'q'"
    hostile.mkdir()
    camp = _plan(hostile, capsys)
    code, out, err = cli(
        capsys, "submit", camp, "--site", "slurm", "--all-rungs", "--dry-run",
        "--time", "20", "--mem", "3G", "--account", "hep-01", "--bundle", "2",
    )  # fmt: skip
    assert code == 0, out + err
    assert "halving: would queue a job that promotes the best of these to rung 1" in out
    assert "--dependency=afterany:<ids of rung 0>" in out
    script = next((camp / "submit").glob("*-rung-*")) / rungs.SCRIPT
    text = script.read_text()
    assert "#SBATCH --dependency" not in text  # given on the sbatch command line
    assert "#SBATCH --account=hep-01\n" in text and "#SBATCH --time=00:15:00\n" in text
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    line = next(line for line in text.splitlines() if " gridsearch promote " in line)
    words = shlex.split(line)
    assert words[1:6] == ["-m", "gridsearch", "promote", str(camp), "--site"]
    assert words[6:8] == ["slurm", "--all-rungs"]
    flags = dict(zip(words[8::2], words[9::2], strict=True))
    assert flags == {"--time": "20", "--mem": "3G", "--account": "hep-01", "--bundle": "2"}
    # a dry run queues nothing and records no promote job
    records = [json.loads(x) for x in (camp / "ledger.jsonl").read_text().splitlines()]
    assert not [r for r in records if r.get("event") == rungs.RUNG_EVENT]
    assert rungs.newest_link(open_campaign(camp)) is None
    assert not list(tmp_path.rglob("pwned"))


def test_promote_command_carries_the_ranking(tmp_path, capsys):
    campaign = open_campaign(_plan(tmp_path, capsys))
    cmd = rungs.promote_command(
        campaign, "kebnekaise", "/usr/bin/python3", {"workers": 2, "gpus": 1}, [tmp_path],
        metric="pt.width", per="model.latent",
    )  # fmt: skip
    assert cmd[:7] == ["/usr/bin/python3", "-m", "gridsearch", "promote", str(campaign.root),
                       "--site", "kebnekaise"]  # fmt: skip
    rest = cmd[7:]
    assert rest[0] == "--all-rungs"
    pairs = dict(zip(rest[1::2], rest[2::2], strict=True))
    assert pairs == {
        "--metric": "pt.width",
        "--per": "model.latent",
        "--sites-dir": str(tmp_path),
        "--gpus": "1",
    }  # fmt: skip  (workers is local only: a promote job runs on Slurm)


def test_follow_up_command_holds_the_job_behind_every_array(tmp_path):
    cmd = SlurmBackend().follow_up_command(tmp_path / "rung.sh", ["101", "102"])
    assert cmd[:2] == ["sbatch", "--parsable"]
    assert "--dependency=afterany:101:102" in cmd and cmd[-1] == str(tmp_path / "rung.sh")


def test_next_rung_follows_the_promotions(tmp_path, capsys):
    camp = _plan(tmp_path, capsys)
    campaign = open_campaign(camp)
    assert rungs.next_rung(campaign) == 1
    job = camp / _jobs(camp)[0]["dir"]
    (job / "promotion.json").write_text(json.dumps({"rung": 1}))
    assert rungs.next_rung(campaign) == 2
    (job / "promotion.json").write_text(json.dumps({"rung": 2}))
    assert rungs.next_rung(campaign) is None  # rungs [1, 2, 3]: 2 is the last
    space = yaml.safe_load((camp / "space.yaml").read_text())
    assert space["halving"]["rungs"] == [1, 2, 3]


def test_status_line_of_the_promote_job(tmp_path, capsys):
    """What status says of the newest promote job, by the scheduler's word and, once the
    scheduler forgot it, by the exit its script logged."""
    from gridsearch.backends.base import SchedulerState

    campaign = open_campaign(_plan(tmp_path, capsys))
    link = {"scheduler_id": "77", "rung": 2, "dir": "submit/x-rung-1", "site": "kebnekaise"}
    log = campaign.root / "submit/x-rung-1/rung-77.out"
    log.parent.mkdir(parents=True)

    def line(state: str, reason: str = "") -> str | None:
        return rungs.describe(campaign, (link, SchedulerState("77", state, reason)))

    assert "job 77 promotes the best to rung 2" in line("queued", "pending (Dependency)")
    assert "pending (Dependency)" in line("queued", "pending (Dependency)")
    assert "is promoting the best to rung 2" in line("running")
    assert line("done") is None
    failed = line("failed", "exit 1")
    # no log was written (cancelled before it ran): none is pointed at
    assert "ended failed (exit 1)" in failed and str(log) not in failed
    assert "--site kebnekaise --all-rungs" in failed
    # forgotten by the scheduler: the log decides
    assert "no exit logged" in line("unknown")
    log.write_text("=== gridsearch: 2026-11-26T05:00:00Z promote exited with 2\n")
    assert "ended failed (exit 2)" in line("unknown") and str(log) in line("unknown")
    log.write_text("promoted 1 of 2\n=== gridsearch: 2026-11-26T05:00:00Z promote exited with 0\n")
    assert line("unknown") is None
    assert rungs.in_flight((link, SchedulerState("77", "queued"))) is True
    assert rungs.in_flight((link, SchedulerState("77", "unknown"))) is False
    assert rungs.in_flight(None) is False
