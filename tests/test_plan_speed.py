"""Planning many points: the threaded job-dir writer and the cheap config defaults write
exactly what the one-thread path and a full copy of the schema's defaults would."""

import json
import os
import threading
import time
from pathlib import Path

import pytest
from conftest_gs import TINY_BASE, write

import gridsearch.plan as P
from hepae_core import config as hc

SPACE = (
    "name: t\n" + TINY_BASE + "grid:\n  model.latent: [1, 2, 3]\n  train.lr: [1e-2, 1e-3]\n"
    "  seed: [0, 1, 2, 3, 4, 5]\n"
)  # 36 points


def _tree(root):
    """Every file under the campaign's jobs/ dir: relative path -> bytes."""
    out = {}
    for dirpath, _, files in os.walk(root / "jobs"):
        for name in files:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = Path(path).read_bytes()
    return out


def test_threaded_writer_writes_what_one_thread_writes(tmp_path, monkeypatch):
    space = write(tmp_path / "space.yaml", SPACE)
    P.plan(space, tmp_path / "one")  # 36 < PARALLEL_WRITES_FROM: one thread
    used = set()
    real = P._write_job

    def spy(*args):
        used.add(threading.current_thread().name)
        real(*args)

    monkeypatch.setattr(P, "PARALLEL_WRITES_FROM", 2)
    monkeypatch.setattr(P, "_write_job", spy)
    P.plan(space, tmp_path / "many")
    assert len(used) > 1 and all(n.startswith("gridsearch-plan") for n in used)
    one, many = _tree(tmp_path / "one"), _tree(tmp_path / "many")
    assert len(one) == 36 and one == many  # same job dirs, same config.yaml bytes
    jobs = [
        json.loads((tmp_path / d / "manifest.json").read_text())["jobs"] for d in ("one", "many")
    ]
    assert [j["id"] for j in jobs[0]] == [j["id"] for j in jobs[1]]


def test_threaded_writer_stops_on_the_first_error_and_records_no_plan(tmp_path, monkeypatch):
    """A full disk in one thread stops them all; no manifest, no plan recorded; the next
    plan completes the campaign (the job dirs made before the error are kept)."""
    space = write(tmp_path / "space.yaml", SPACE)
    camp = tmp_path / "camp"
    real, calls = P._write_job, []
    lock = threading.Lock()

    def full_after_ten(*args):
        with lock:
            calls.append(args[1].id)
            if len(calls) == 11:  # one thread fails once; the others would carry on
                raise OSError(28, "No space left on device")
        time.sleep(0.01)  # a slow file system: the others have work left when it fails
        real(*args)

    monkeypatch.setattr(P, "PARALLEL_WRITES_FROM", 2)
    monkeypatch.setattr(P, "_write_job", full_after_ten)
    with pytest.raises(OSError, match="No space left"):
        P.plan(space, camp)
    assert len(calls) <= 11 + P.WRITER_THREADS  # the others stopped at their next job
    assert not (camp / "manifest.json").exists()
    assert json.loads((camp / "campaign.json").read_text())["plans"] == []
    monkeypatch.setattr(P, "_write_job", real)
    report = P.plan(space, camp)
    assert len(report.added) == 36 - len(report.unchanged) and len(report.unchanged) >= 10
    assert len(os.listdir(camp / "jobs")) == 36


def test_defaults_are_fresh_complete_copies():
    """defaults() builds from a cached template: every field is there with its default, and
    changing one config's lists or dicts never reaches another config (or the schema)."""
    a = hc.defaults()
    for section, fields in hc.SCHEMA.items():
        assert a[section] == {k: f.default for k, f in fields.items()}
    assert {k: a[k] for k in hc.TOP_LEVEL} == {k: f.default for k, f in hc.TOP_LEVEL.items()}
    a["evaluate"]["bits"].append(99)
    a["data"]["branches"]["pt"] = "x"
    a["data"]["group"]["size"] = 3
    a["model"]["encoder"][0] = 1
    b = hc.defaults()
    assert b["evaluate"]["bits"] == list(range(6, 17))
    assert b["data"]["branches"] == {} and b["data"]["group"] == {}
    assert b["model"]["encoder"] == [200, 100, 50]
    raw = {"model": {"encoder": [[1]], "latent": 2}}  # nested values are copied too
    cfg = hc.resolve({"data": {"branches": {"pt": "jet_pt"}}})
    assert cfg["data"]["branches"] == {"pt": "jet_pt"}
    assert (
        hc._copy(raw) == raw
        and hc._copy(raw)["model"]["encoder"][0] is not raw["model"]["encoder"][0]
    )
