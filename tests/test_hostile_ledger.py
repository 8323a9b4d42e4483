"""The write-ahead ledger's reader, tested on what it returns: a torn line (a write cut
short) is skipped, the record on the next line is kept, and a whole record glued onto a
torn one (written by an older writer without the fresh-line rule) is recovered. The
ledger is what stops a job from being submitted twice, so each loss is a duplicate."""

from __future__ import annotations

import json
import os

import pytest
from conftest_gs import cli, write

from gridsearch.campaign import open_campaign, read_ledger


def _rec(n: int, **extra) -> dict:
    return {"event": "submitted", "submission": f"2026-{n}", "n": n, **extra}


def _line(rec: dict) -> str:
    return json.dumps(rec, sort_keys=True)


TORN = '{"event": "intent", "submission": "2026-dead", "indices": {"0": "a'


@pytest.mark.parametrize("torn", [TORN, '{"ev', "\x00\x00\x00", '{"a": {"b": "{\\"c'])
def test_the_record_after_a_torn_line_is_kept(tmp_path, torn):
    path = tmp_path / "ledger.jsonl"
    path.write_text("\n".join([_line(_rec(1)), torn, _line(_rec(2)), _line(_rec(3))]) + "\n")
    assert [r["n"] for r in read_ledger(path)] == [1, 2, 3]


def test_a_record_glued_onto_a_torn_one_is_recovered(tmp_path):
    path = tmp_path / "ledger.jsonl"
    glued = TORN + _line(_rec(2, tasks={"7_0": "x"}))  # no line break: an older writer
    path.write_text("\n".join([_line(_rec(1)), glued, _line(_rec(3))]) + "\n")
    records = read_ledger(path)
    assert [r["n"] for r in records] == [1, 2, 3]
    assert records[1] == _rec(2, tasks={"7_0": "x"})  # whole, not a fragment
    # glued at the very end of the file, and a torn last line with nothing after it
    path.write_text(_line(_rec(1)) + "\n" + TORN + _line(_rec(2)) + "\n" + TORN)
    assert [r["n"] for r in read_ledger(path)] == [1, 2]


def test_a_glued_intent_still_keeps_its_jobs_from_a_second_submission(
    tmp_path, capsys, monkeypatch
):
    """End to end: the intent glued onto a torn line holds its jobs (queued, intended):
    submit leaves them alone instead of submitting them again."""
    write(tmp_path / "s.yaml", "name: g\ngrid:\n  seed: [1, 2]\n")
    assert cli(capsys, "plan", tmp_path / "s.yaml", "-o", tmp_path / "c")[0] == 0
    camp = open_campaign(tmp_path / "c")
    index = camp.job_indices()
    intent = {
        "event": "intent", "submission": "20260101-000000-slurm-beef", "kind": "slurm",
        "site": "slurm", "dir": "submit/20260101-000000-slurm-beef",
        "time": "2026-01-01T00:00:00+00:00", "indices": {str(i): j for j, i in index.items()},
        "chunks": [{"offset": 0, "indices": sorted(index.values())}],
    }  # fmt: skip
    ledger = camp.root / "ledger.jsonl"
    ledger.write_text(TORN + json.dumps(intent, sort_keys=True) + "\n")
    before = ledger.read_bytes()
    bin_dir = tmp_path / "bin"
    for tool in ("squeue", "sacct"):
        write(bin_dir / tool, "#!/bin/sh\nexit 0\n").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    code, out, err = cli(capsys, "submit", camp.root, "--site", "slurm", "--dry-run")
    assert code == 0, err
    assert "nothing to submit" in out and "2 in submission" in out, out
    assert ledger.read_bytes()[: len(before)] == before
