"""Status: job-dir files first, the ledger next, the scheduler for the jobs it may hold.

The scheduler's answers here come from a stand-in (``FakeScheduler``): these tests pin the
decision table; tests/test_slurm_faults.py checks the same decisions against real Slurm.
"""

import json
import os
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest_gs import cli, set_state, write

import gridsearch.backends
import gridsearch.cli.submit  # bind the real get_backend before the tests patch it
import gridsearch.submit
from gridsearch.backends.base import SchedulerState
from gridsearch.campaign import open_campaign
from gridsearch.errors import GridsearchError
from gridsearch.plan import plan
from gridsearch.selection import RESUBMIT_DEFAULT, parse_only, select_jobs
from gridsearch.status import campaign_status, counts
from gridsearch.text import safe, safe_text
from hepae_core.jobdir import HEARTBEAT, job_lock, touch_heartbeat
from hepae_core.states import JobState

P, Q, R, I, F, C, L, D = (  # noqa: E741 (short names keep the decision table readable)
    JobState.PLANNED,
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.INTERRUPTED,
    JobState.FAILED,
    JobState.CANCELLED,
    JobState.LOST,
    JobState.DONE,
)
HOST = socket.gethostname()


@pytest.fixture
def camp(tmp_path):
    seeds = ", ".join(str(i) for i in range(12))
    space = write(tmp_path / "space.yaml", f"name: st\ngrid:\n  seed: [{seeds}]\n")
    plan(space, tmp_path / "camp")
    return open_campaign(tmp_path / "camp")


def jobs(c):
    return [c.job_dir(j["id"]) for j in c.manifest()["jobs"]]


def ids(c):
    return [j["id"] for j in c.manifest()["jobs"]]


def iso(seconds_ago=0.0):
    t = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return t.isoformat(timespec="seconds")


def beat(job_dir, seconds_ago):
    """A heartbeat file last touched ``seconds_ago``."""
    touch_heartbeat(job_dir)
    t = time.time() - seconds_ago
    os.utime(job_dir / HEARTBEAT, (t, t))


class FakeScheduler:
    """Stands in for a scheduler's query: a dict task id -> SchedulerState arguments."""

    kind = "slurm"

    def __init__(self, answers, fail=None):
        self.answers = answers
        self.asked = []
        self.fail = fail

    def query(self, task_ids):
        self.asked.append(sorted(task_ids))
        if self.fail:
            raise OSError(self.fail)
        out = {t: SchedulerState(t, *self.answers[t]) for t in task_ids if t in self.answers}
        for t in task_ids:
            out.setdefault(t, SchedulerState(t, "unknown", f"Slurm no longer knows task {t}"))
        return out


def submitted(camp, tasks, seconds_ago=1800, **extra):
    camp.append_ledger(
        {
            "event": "submitted",
            "submission": extra.pop("submission", "s1"),
            "time": iso(seconds_ago),
            "kind": "slurm",
            "site": "kebnekaise",
            "dry_run": False,
            "tasks": tasks,
            **extra,
        }
    )


def test_states_from_job_dir_files(camp):
    d = jobs(camp)
    set_state(d[1], "done", epoch=2, epochs=2, val_loss=0.25)
    (d[1] / "metrics.json").write_text(json.dumps({"best_val_loss": 0.2}))
    set_state(d[2], "failed", reason="ValueError: boom", error_kind="python_error")
    (d[2] / "job.log").write_text("start\n" + "".join(f"line {i}\n" for i in range(20)))
    set_state(d[3], "interrupted", signal="SIGTERM", epoch=1)
    set_state(d[4], "running", epoch=3, epochs=10, train_loss=0.5, val_loss=0.6)
    set_state(d[5], "running", updated=iso(7200))  # elsewhere, silent for 2 h: lost
    set_state(d[6], "running", host=HOST, pid=2**22 + 12345)  # no such pid, no lock file
    (d[7] / "state.json").write_text("{torn")
    set_state(d[8], "running", host=HOST, pid=os.getpid(), updated=iso(7200))
    (d[8] / ".lock").write_text("")  # a lock file nobody holds: the process is gone
    set_state(d[9], "running", updated=iso(7200))
    beat(d[9], 5)  # state.json silent, but the heartbeat is fresh: running
    set_state(d[10], "running", updated=iso(7200))
    beat(d[10], 6000)
    set_state(d[11], "failed", epoch=0, epochs=30, reason="bad", error_kind="bad_input")
    st = campaign_status(camp, metrics=True, log_lines=3)
    assert [s.state for s in st] == [P, D, F, I, R, L, L, F, L, R, L, F]
    assert st[1].metrics == {"best_val_loss": 0.2} and st[1].val_loss == 0.25
    assert st[2].reason == "ValueError: boom"
    assert st[2].log_tail == ["line 17", "line 18", "line 19"]
    assert (st[4].epoch, st[4].epochs, st[4].train_loss) == (3, 10, 0.5)
    assert "no heartbeat for 2.0 h" in st[5].reason
    assert (
        "is gone" in st[6].reason and "is gone" in st[8].reason and "lock is free" in st[8].reason
    )
    assert "not valid JSON" in st[7].reason
    assert "no heartbeat for 100 min" in st[10].reason  # the newest sign of life counts
    # the epoch column: never 0/None
    assert [s.epoch_text for s in st[:5]] == [None, "2/2", None, "1", "3/10"]
    assert st[11].epoch_text == "0/30"
    assert counts(st) == {"running": 2, "interrupted": 1, "failed": 3, "lost": 4, "done": 1,
                          "planned": 1}  # fmt: skip
    assert list(counts(st)) == ["planned", "running", "interrupted", "failed", "lost", "done"]


def test_held_lock_keeps_a_silent_job_running(camp):
    d = jobs(camp)
    set_state(d[0], "running", host=HOST, pid=os.getpid(), updated=iso(7200))
    with job_lock(d[0]):
        st = campaign_status(camp)
    assert st[0].state == R
    st = campaign_status(camp)  # the lock is free again: the process is gone
    assert st[0].state == L


def test_lost_after_is_the_threshold_without_a_scheduler(camp):
    d = jobs(camp)
    set_state(d[0], "running", updated=iso(300))
    assert campaign_status(camp)[0].state == R  # 5 min < 10 min default
    assert campaign_status(camp, lost_after_s=240)[0].state == L


def test_scheduler_decides_jobs_it_may_hold(camp, monkeypatch):
    """The decision table: the job's files x the scheduler's word."""
    monkeypatch.setenv("HEPAE_HEARTBEAT_S", "2")  # the job's heartbeat interval
    d = jobs(camp)
    job = ids(camp)
    submitted(camp, {f"9_{i}": job[i] for i in range(12)})
    set_state(d[0], "done")
    set_state(d[1], "running", epoch=1, updated=iso(20))
    beat(d[1], 20)  # killed: the scheduler says failed 137, heartbeat 20 s old
    set_state(d[2], "running", epoch=1, updated=iso(60))  # forgotten by Slurm, silent
    set_state(d[3], "running", epoch=1)
    beat(d[3], 1)  # the scheduler says it ended, but it beat a second ago
    set_state(d[4], "interrupted", epoch=4, epochs=30, signal="SIGTERM")  # requeued
    # d[5]: never started, pending; d[6]: never started, unknown (cancelled while pending)
    # d[7]: cancelled (array cancelled as a whole); d[8]: never started but job.log written
    (d[8] / "job.log").write_text("gridsearch: environment setup failed\n")
    set_state(d[9], "running", updated=iso(900))  # silent 15 min, but Slurm runs it
    set_state(d[10], "failed", reason="ValueError: x", exit_code=1)
    set_state(d[11], "running", updated=iso(900))  # silent, no word from Slurm
    fake = FakeScheduler(
        {
            "9_1": ("failed", "exit 137: killed by signal 9", 137),
            "9_3": ("done",),
            "9_4": ("queued", "pending (BeginTime), requeued 1 time", None, 1),
            "9_5": ("queued", "pending (Priority)"),
            "9_7": ("cancelled", "cancelled"),
            "9_8": ("failed", "exit 2: bad config or data", 2),
            "9_9": ("running",),
            "9_10": ("failed", "exit 1", 1),
        }
    )
    monkeypatch.setattr(gridsearch.backends, "get_backend", lambda kind: fake)
    st = campaign_status(camp)
    # done jobs are never asked about
    assert fake.asked == [sorted(f"9_{i}" for i in range(1, 12))]
    assert [s.state for s in st] == [D, L, L, R, Q, Q, C, C, F, R, F, L]
    # lost: the last heartbeat and the scheduler's last word, each once
    assert st[1].reason == "last heartbeat 20 s ago; Slurm: failed (exit 137: killed by signal 9)"
    assert st[1].reason.count("137") == 1
    assert st[2].reason.startswith("last heartbeat 6")
    assert st[2].reason.endswith(" s ago; Slurm no longer knows task 9_2")
    assert "lost unless it beats again" in st[3].reason
    assert st[4].reason.startswith("requeued by Slurm (preempted/node failure), will run again")
    assert "epoch 4/30" in st[4].reason
    assert st[5].reason == "pending (Priority)"
    assert "cancelled while pending" in st[6].reason
    assert st[7].reason == "cancelled before it started"
    assert "ended before the job started" in st[8].reason and st[8].exit_code == 2
    assert "silent for 15 min, but Slurm: running" in st[9].reason
    assert st[10].reason == "ValueError: x"  # the job's own word stands
    assert st[11].state == L  # Slurm forgot it, silent for 15 min
    assert all(s.asked for s in st[1:])


def test_the_job_records_its_heartbeat_interval(camp, monkeypatch):
    monkeypatch.delenv("HEPAE_HEARTBEAT_S", raising=False)
    d = jobs(camp)
    job = ids(camp)
    submitted(camp, {"9_0": job[0], "9_1": job[1]})
    for k in (0, 1):
        set_state(d[k], "running", updated=iso(20), heartbeat_s=5 if k == 0 else 10)
        beat(d[k], 20)
    fake = FakeScheduler({"9_0": ("failed", "exit 137", 137), "9_1": ("failed", "exit 137", 137)})
    monkeypatch.setattr(gridsearch.backends, "get_backend", lambda kind: fake)
    st = campaign_status(camp)
    assert st[0].state == L  # 20 s > 3 x 5 s
    assert st[1].state == R  # 20 s < 3 x 10 s: maybe still beating


def test_job_resubmitted_after_its_state_is_in_flight_again(camp, monkeypatch):
    d = jobs(camp)
    job = ids(camp)
    set_state(d[0], "interrupted", updated=iso(1200))
    set_state(d[1], "failed", updated=iso(1200), error_kind="bad_input", exit_code=2)
    submitted(camp, {"9_0": job[0], "9_1": job[1]}, seconds_ago=60)
    fake = FakeScheduler({"9_0": ("queued", "pending (Resources)"), "9_1": ("running",)})
    monkeypatch.setattr(gridsearch.backends, "get_backend", lambda kind: fake)
    st = campaign_status(camp)
    assert (st[0].state, st[0].reason) == (Q, "pending (Resources)")
    assert st[1].state == R and "no state yet" in st[1].reason
    assert (st[1].error_kind, st[1].exit_code) == (None, None)  # the old attempt's
    # without asking: queued, from the ledger alone
    st = campaign_status(camp, query=False)
    assert [s.state for s in st[:2]] == [Q, Q] and st[0].reason == "submitted as s1"


def test_intended_submission_is_queued_and_never_planned(camp, monkeypatch, capsys):
    job = ids(camp)
    camp.record_intent("s-int", kind="slurm", site="kebnekaise", indices={"0": job[0]})
    fake = FakeScheduler({})
    monkeypatch.setattr(gridsearch.backends, "get_backend", lambda kind: fake)
    st = campaign_status(camp)
    assert st[0].state == Q and "ids were not recorded" in st[0].reason
    assert st[0].outcome == "intended" and fake.asked == []  # no task ids to ask about
    # a refused submission queued nothing
    camp.record_intent("s-ref", kind="slurm", indices={"1": job[1]})
    camp.record_outcome("s-ref", "refused", reason="sbatch: error")
    assert campaign_status(camp)[1].state == P
    with pytest.raises(GridsearchError, match="--force"):
        select_jobs(st, parse_only("queued"))
    code, out, _ = cli(capsys, "status", camp.root)
    assert code == 0 and "1 queued" in out
    assert f"gridsearch adopt {camp.root} s-int --ids ID[,ID...]" in out
    chosen, skipped = select_jobs(st, set(RESUBMIT_DEFAULT))
    assert chosen == [] and skipped["queued"] == 1


def test_query_failure_keeps_file_based_answer_and_blocks_resubmit(camp, monkeypatch):
    d = jobs(camp)
    job = ids(camp)
    submitted(camp, {"9_0": job[0], "9_1": job[1]})
    set_state(d[1], "interrupted")
    fake = FakeScheduler({}, fail="squeue failed: Unable to contact slurm controller")
    monkeypatch.setattr(gridsearch.backends, "get_backend", lambda kind: fake)
    st = campaign_status(camp)
    assert st[0].state == Q and "Unable to contact" in st[0].reason  # never "cancelled"
    assert st[1].state == I and st[1].asked is False
    # an interrupted job may be requeued: not resubmitted while that cannot be asked
    with pytest.raises(GridsearchError, match="could not be asked"):
        select_jobs(st, set(RESUBMIT_DEFAULT))
    chosen, _ = select_jobs(st, set(RESUBMIT_DEFAULT), force=True)
    assert [js.id for js in chosen] == [job[1]]


def test_resubmit_selection_never_takes_held_jobs(camp, monkeypatch):
    d = jobs(camp)
    job = ids(camp)
    submitted(camp, {f"9_{i}": job[i] for i in range(6)})
    set_state(d[0], "interrupted")  # requeued by Slurm
    set_state(d[1], "interrupted")  # walltime: Slurm says failed 75
    set_state(d[2], "running", updated=iso(100))
    set_state(d[3], "failed", error_kind="bad_input", reason="no such column")
    set_state(d[4], "running", updated=iso(3))
    fake = FakeScheduler(
        {
            "9_0": ("queued", "pending (BeginTime)"),  # no restart count: its state tells
            "9_1": ("failed", "exit 75", 75),
            "9_2": ("failed", "exit 137", 137),
            "9_3": ("failed", "exit 2", 2),
            "9_4": ("running",),
        }
    )
    monkeypatch.setattr(gridsearch.backends, "get_backend", lambda kind: fake)
    st = campaign_status(camp)
    assert [s.state for s in st[:6]] == [Q, I, L, F, R, C]
    assert st[0].reason.startswith("requeued by Slurm")
    chosen, skipped = select_jobs(st, set(RESUBMIT_DEFAULT))
    assert [js.index for js in chosen] == [1, 2, 3, 5]
    assert skipped == {"queued": 1, "running": 1, "planned": 6}
    # --only names states; a held job is not in them, and asking for it needs --force
    chosen, _ = select_jobs(st, parse_only("interrupted"))
    assert [js.index for js in chosen] == [1]
    for only in ("queued", "running", "submitted", "done"):
        with pytest.raises(GridsearchError, match="--force"):
            select_jobs(st, parse_only(only))
    assert parse_only("stale,pending") == {L, Q}
    with pytest.raises(GridsearchError, match="unknown state"):
        parse_only("failed,bogus")


def test_local_submission_that_never_started_a_job_is_failed(camp):
    job = ids(camp)
    camp.append_ledger(
        {"submission": "l", "time": iso(5), "kind": "local", "tasks": {"l_0": job[0]}}
    )
    st = campaign_status(camp)
    assert st[0].state == F and "never started" in st[0].reason


def test_local_run_that_died_before_starting_a_job_is_cancelled(camp):
    job = ids(camp)
    camp.record_intent("l2", kind="local", indices={"0": job[0], "1": job[1]})
    with camp.lock("submit"):  # the local run is alive: its jobs wait
        st = campaign_status(camp)
        assert st[0].state == Q and "waiting in the local run" in st[0].reason
    st = campaign_status(camp)  # the run is gone, no outcome recorded
    assert st[0].state == C and "ended before it started" in st[0].reason


def test_status_command(camp, capsys, monkeypatch):
    monkeypatch.setenv("HEPAE_HEARTBEAT_S", "2")
    d = jobs(camp)
    job = ids(camp)
    submitted(camp, {"9_0": job[0], "9_1": job[1], "9_2": job[2]}, site="my site")
    set_state(d[0], "failed", reason="ValueError: boom \x1b[2J\x1b]0;owned\x07", epochs=30)
    (d[0] / "job.log").write_text("Traceback\nValueError: boom\x1b[31m red\n")
    set_state(d[1], "running", epoch=3, epochs=10, train_loss=0.5, val_loss=0.6, updated=iso(60))
    set_state(d[2], "running", epoch=3, epochs=10, updated=iso(3))
    fake = FakeScheduler({"9_1": ("failed", "exit 137", 137), "9_2": ("running",)})
    monkeypatch.setattr(gridsearch.backends, "get_backend", lambda kind: fake)
    code, out, _ = cli(capsys, "status", camp.root)
    assert code == 0 and "12 jobs: 9 planned, 1 running, 1 failed, 1 lost" in out
    assert "3/10" in out and "0/30" in out and "None" not in out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J" in out
    hint = f"to rerun the 1 failed, 1 lost jobs (interrupted and lost ones resume from their " \
           f"checkpoints): gridsearch resubmit {camp.root} --site 'my site'"  # fmt: skip
    assert hint in out
    code, out, _ = cli(capsys, "status", camp.root, "--failed")
    assert "  | ValueError: boom\\x1b[31m red" in out and "\x1b" not in out
    assert "planned" not in out.splitlines()[1]
    code, out, _ = cli(capsys, "status", camp.root, "--state", "stale")  # old word for lost
    rows = out.splitlines()[1:-2]
    assert len(rows) == 1 and rows[0].split()[:4] == ["1", ids(camp)[1], "s1", "lost"]
    code, out, _ = cli(capsys, "status", camp.root, "--json")
    data = json.loads(out)
    assert data["counts"]["failed"] == 1 and len(data["jobs"]) == 12
    assert data["jobs"][1]["state"] == "lost"


def test_safe_escapes_terminal_controls():
    assert safe("a\x1b[31mb\rc\x9bd\u202ee\tf\ng é") == "a\\x1b[31mb\\rc\\x9bd\\u202ee\\tf\\ng é"
    assert safe_text("a\x1b[31mb\tf\ng") == "a\\x1b[31mb\tf\ng"


def test_status_over_many_job_dirs_is_fast(tmp_path):
    n = 2000  # benchmarks/orchestration.py measures 10,000 (target <= 1 s)
    root = tmp_path / "camp"
    (root / "jobs").mkdir(parents=True)
    (root / "campaign.json").write_text("{}")
    done = json.dumps({"state": "done", "updated": iso(), "epoch": 2, "val_loss": 0.1})
    entries = []
    for i in range(n):
        jid = f"{i:012x}"
        os.mkdir(root / "jobs" / jid)
        if i % 2 == 0:
            (root / "jobs" / jid / "state.json").write_text(done)
        entries.append({"index": i, "id": jid, "name": f"p{i}", "params": {}, "dir": f"jobs/{jid}"})
    (root / "manifest.json").write_text(json.dumps({"name": "big", "jobs": entries}))
    camp = open_campaign(root)
    elapsed = []
    for _ in range(3):  # the best of three: a shared machine's load comes in spikes
        t = time.perf_counter()
        st = campaign_status(camp)
        elapsed.append(time.perf_counter() - t)
    assert counts(st) == {"planned": n // 2, "done": n // 2}
    # target 0.2 s for 2,000 (0.1 s measured on an idle machine); a generous bound
    assert min(elapsed) < 1.0
