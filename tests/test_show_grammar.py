"""`gridsearch show DIR JOB`: the campaign first like every other command, short by default."""

import json

from conftest_gs import cli, manifest, set_state, write


def _campaign(tmp_path, capsys):
    write(tmp_path / "s.yaml", "name: s\ngrid:\n  seed: [1, 2, 3]\n")
    camp = tmp_path / "c"
    cli(capsys, "plan", tmp_path / "s.yaml", "-o", camp)
    jobs = manifest(camp)["jobs"]
    dirs = [camp / j["dir"] for j in jobs]
    set_state(dirs[0], "done")
    metrics = {"best_val_loss": 0.125, "test_loss": 0.13, "best_epoch": 3}
    metrics.update({f"ae.v{i}.width": 0.01 * i for i in range(200)})
    (dirs[0] / "metrics.json").write_text(json.dumps(metrics))
    set_state(dirs[1], "failed", reason="boom")
    (dirs[1] / "job.log").write_text("".join(f"line {i}\n" for i in range(30)) + "boom\n")
    return camp, jobs


def test_show_dir_job_is_short_and_all_is_complete(tmp_path, capsys):
    camp, jobs = _campaign(tmp_path, capsys)
    code, out, err = cli(capsys, "show", camp, jobs[0]["id"][:6])
    assert code == 0 and err == ""
    assert "best_val_loss: 0.125" in out and "seed: 1" in out and "(#0, done)" in out
    assert "ae.v7.width" not in out and "--- config.yaml ---" not in out
    assert len(out.splitlines()) <= 12, out
    assert "(--all adds config.yaml, state.json, 200 more metric(s)" in out

    code, out, _ = cli(capsys, "show", camp, jobs[0]["id"][:6], "--all")
    assert code == 0 and "ae.v7.width: 0.07" in out and "--- config.yaml ---" in out
    assert "--- state.json ---" in out


def test_show_failed_job_names_the_reason_and_the_last_log_lines(tmp_path, capsys):
    camp, _ = _campaign(tmp_path, capsys)
    code, out, _ = cli(capsys, "show", camp, "1")
    assert code == 0 and "reason: boom" in out
    assert "line 29\nboom" in out and "line 20" not in out  # the last 5 lines only


def test_old_order_still_works_with_a_note(tmp_path, capsys):
    camp, jobs = _campaign(tmp_path, capsys)
    code, out, err = cli(capsys, "show", jobs[0]["id"][:6], camp)
    assert code == 0 and "best_val_loss: 0.125" in out
    assert f"write 'gridsearch show {camp} {jobs[0]['id'][:6]}'" in err


def test_show_without_a_job_says_how(tmp_path, capsys):
    camp, _ = _campaign(tmp_path, capsys)
    code, out, err = cli(capsys, "show", camp)
    assert code == 2 and out == ""
    assert "name a job: gridsearch show DIR JOB" in err and len(err.splitlines()) == 1
    code, _, err = cli(capsys, "show", camp, "zzz")
    assert code == 2 and "no job" in err
