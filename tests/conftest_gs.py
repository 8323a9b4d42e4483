"""Helpers for the gridsearch tests (imported by them; not a pytest conftest)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from gridsearch.cli import main

TINY_BASE = """\
base:
  data: {source: bundled:dijet_4d, max_jets: 3000}
  model: {encoder: [8]}
  train: {epochs: 2, batch_size: 256}
  evaluate: {plots: false, timing_jets: 1000}
"""

# Three tiny one-thread trainings of one shape: a campaign that bundles into a stack.
THREE_LR_SPACE = """\
name: bun
base:
  data: {source: bundled:dijet_4d, max_jets: 3000}
  model: {encoder: [8]}
  train: {epochs: 2, batch_size: 256, threads: 1}
  evaluate: {plots: false, timing_jets: 1000}
grid:
  train.lr: [1.0e-3, 3.0e-3, 1.0e-2]
"""

# A stand-in for `python -m hepae_core.job DIR`: writes state.json like the real one and
# behaves by the config's learning rate: 0.01 fails, 0.02 exits 75 (interrupted), 0.03
# sleeps until SIGTERM then exits 75, anything else is done with metrics.
FAKE_JOB = """
import json, os, signal, sys, time
d = sys.argv[1]
def w(state, **kw):
    rec = {"state": state, "attempt": 1, "pid": os.getpid(), "host": os.uname().nodename,
           "updated": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
           "scheduler_job_id": os.environ.get("HEPAE_SCHEDULER_JOB_ID"),
           "threads": os.environ.get("HEPAE_THREADS"), **kw}
    tmp = os.path.join(d, ".state.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(rec))
    os.replace(tmp, os.path.join(d, "state.json"))
cfg = open(os.path.join(d, "config.yaml")).read()
w("running", epoch=0, epochs=2)
print("fake job running", d, flush=True)
if "lr: 0.01" in cfg:
    print("ValueError: boom", flush=True)
    w("failed", reason="ValueError: boom", error_kind="python_error", exit_code=1)
    sys.exit(1)
if "lr: 0.02" in cfg:
    w("interrupted", signal="SIGTERM")
    sys.exit(75)
if "lr: 0.03" in cfg:
    def stop(*a):
        w("interrupted", signal="SIGTERM")
        sys.exit(75)
    signal.signal(signal.SIGTERM, stop)
    time.sleep(60)
with open(os.path.join(d, "metrics.json"), "w") as fh:
    json.dump({"status": "done", "best_val_loss": 0.5}, fh)
w("done", epoch=2, epochs=2, val_loss=0.5)
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def fake_site(tmp_path: Path, monkeypatch, workers: int = 2) -> Path:
    """A site profile 'fake' (kind local) running FAKE_JOB; returns its directory."""
    pkg = tmp_path / "fakepkg"
    write(pkg / "fakejob.py", FAKE_JOB)
    sites = tmp_path / "sites"
    write(
        sites / "fake.yaml",
        f"kind: local\noptions: {{workers: {workers}, threads: 1, job_module: fakejob}}\n",
    )
    monkeypatch.setenv("PYTHONPATH", str(pkg))
    return sites


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the gridsearch command line in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def manifest(campaign: Path) -> dict:
    return json.loads((campaign / "manifest.json").read_text())


def set_state(job_dir: Path, state: str, **fields) -> None:
    from hepae_core.jobdir import now_iso

    record = {"state": state, "attempt": 1, "host": "elsewhere", "pid": 1, "updated": now_iso()}
    record.update(fields)
    (job_dir / "state.json").write_text(json.dumps(record))
