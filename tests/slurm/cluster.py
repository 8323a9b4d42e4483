"""The private one-node Slurm cluster of the tests, and waiting on it by progress.

``ensure()`` runs ``start_cluster.sh`` beside this file (its own munged, slurm.conf and
ports in a temporary directory; no system file touched) and points this process's
``SLURM_CONF`` at it, so that every ``sbatch``/``squeue`` the tests and the tool run reach
it. It returns None when the node is idle, or a reason to skip when this machine cannot
run Slurm (not root, packages missing); a cluster that should start but does not is an
error, not a skip. ``stop()`` stops it again (the test session does so at its end when it
started it; a cluster that already ran before is left running).

The tests never wait for a fixed wall-clock time: ``wait_for`` polls until a condition
holds and fails only when nothing has moved for ``STALL_S`` seconds (no task changed its
state in the queue, no job wrote an epoch or a new state), or within seconds when the cluster
itself is at fault (controller gone, node down). A loaded machine is slow, not stuck.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
START = HERE / "start_cluster.sh"
STOP = HERE / "stop_cluster.sh"
RUN = Path(os.environ.get("HEPAE_SLURM_RUN", "/run/hepae-slurm"))
PACKAGES = "apt-get update && apt-get install -y slurmctld slurmd slurm-client munge"
NEEDED = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
#: Seconds without any progress (queue or job dirs) after which a wait fails.
STALL_S = float(os.environ.get("HEPAE_SLURM_STALL_S", "300"))

_state: dict[str, Any] = {"started_here": False, "conf_before": None, "dir": None}


def skip_reason() -> str | None:
    """Why this machine cannot run the test cluster, or None."""
    if os.name != "posix" or os.geteuid() != 0:
        return "the Slurm test cluster needs root (slurmd runs as root here)"
    missing = [exe for exe in NEEDED if shutil.which(exe) is None]
    if missing:
        return f"Slurm/munge not installed ({', '.join(missing)} missing): {PACKAGES}"
    return None


def cluster_dir() -> Path | None:
    """The directory of the running test cluster (config, state, logs), if one is recorded."""
    try:
        text = (RUN / "dir").read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None


def ensure(timeout: int = 90) -> str | None:
    """Start the cluster unless it runs and point SLURM_CONF at it; None when ready, else
    the reason to skip."""
    reason = skip_reason()
    if reason:
        return reason
    env = dict(os.environ, HEPAE_SLURM_TIMEOUT=str(timeout))
    proc = subprocess.run(
        ["bash", str(START)], capture_output=True, text=True, timeout=timeout + 60, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"tests/slurm/start_cluster.sh failed ({proc.returncode}):\n{proc.stdout}\n"
            f"{proc.stderr}"
        )
    directory = cluster_dir()
    if directory is None:
        raise RuntimeError(f"tests/slurm/start_cluster.sh recorded no cluster in {RUN}/dir")
    if "already running" not in proc.stdout:
        _state["started_here"] = True
    if _state["dir"] is None:
        _state["conf_before"] = os.environ.get("SLURM_CONF")
    _state["dir"] = directory
    os.environ["SLURM_CONF"] = str(directory / "slurm.conf")
    return None


def started_here() -> bool:
    """Whether ``ensure`` in this process started the cluster (rather than found it)."""
    return bool(_state["started_here"])


def stop() -> str:
    """Stop the cluster (its jobs, daemons and directory) and restore SLURM_CONF."""
    proc = subprocess.run(
        ["bash", str(STOP), "--purge"], capture_output=True, text=True, timeout=120
    )
    before = _state["conf_before"]
    if before is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = before
    _state.update(started_here=False, dir=None, conf_before=None)
    return proc.stdout + proc.stderr


# -- waiting by progress -------------------------------------------------------------------


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _log_tail(name: str, lines: int = 15) -> str:
    directory = _state["dir"] or cluster_dir()
    try:
        text = (Path(directory) / name).read_text(errors="replace").splitlines()
    except (OSError, TypeError):
        return ""
    return f"\n--- {name} (last {lines} lines)\n" + "\n".join(text[-lines:])


def queue() -> str:
    """Every task the cluster knows, one line each: id, state, reason (all are the tests')."""
    return _run(["squeue", "-h", "-a", "-r", "-o", "%i %T %r"]).stdout


def cluster_fault() -> str | None:
    """What is wrong with the cluster itself (controller gone, node down), or None."""
    proc = _run(["sinfo", "-h", "-N", "-o", "%T|%E"])
    if proc.returncode != 0:
        return f"the Slurm controller does not answer: {proc.stderr.strip()}" + _log_tail(
            "slurmctld.log"
        )
    state, _, why = proc.stdout.strip().partition("|")
    if state.rstrip("*~#$@").lower() in ("down", "drained", "drain", "draining", "fail", "failing"):
        return f"the node is {state} ({why})" + _log_tail("slurmctld.log") + _log_tail("slurmd.log")
    return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def job_progress(dirs: Iterable[Path]) -> tuple:
    """What the jobs under ``dirs`` have done so far: state, epoch and attempt of every
    state.json, and the size of every history.csv (heartbeats alone are not progress)."""
    seen = []
    for top in dirs:
        for path in sorted(Path(top).rglob("state.json")):
            st = _read_json(path)
            seen.append((str(path), st.get("state"), st.get("epoch"), st.get("attempt")))
        for path in sorted(Path(top).rglob("history.csv")):
            with contextlib.suppress(OSError):
                seen.append((str(path), path.stat().st_size))
    return tuple(seen)


def wait_for(
    what: str,
    predicate: Callable[[], Any],
    *,
    dirs: Iterable[Path] = (),
    every: float = 1.0,
    stall_s: float | None = None,
) -> Any:
    """Poll ``predicate()`` until it returns something true, and return that.

    There is no deadline: the wait fails when nothing moved for ``stall_s`` seconds
    (default ``STALL_S``), where moving is any change of the queue (a task submitted,
    started, ended) or of the jobs under ``dirs`` (an epoch, a state); and within seconds when the
    cluster is at fault. A predicate may raise to fail fast on what it knows is wrong.
    """
    stall_s = STALL_S if stall_s is None else stall_s
    dirs = list(dirs)
    last: tuple | None = None
    moved = time.monotonic()
    checked = 0.0
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        snapshot = (queue(), job_progress(dirs))
        if snapshot != last:
            last, moved = snapshot, now
        elif now - moved > stall_s:
            raise AssertionError(
                f"stuck waiting for {what}: nothing moved for {stall_s:.0f} s; queue:\n"
                f"{snapshot[0]}" + _log_tail("slurmctld.log") + _log_tail("slurmd.log")
            )
        if now - checked > 5:
            checked = now
            fault = cluster_fault()
            if fault:
                raise AssertionError(f"while waiting for {what}: {fault}")
        time.sleep(every)


def epoch_seconds(job_dirs: Iterable[Path]) -> float | None:
    """The median seconds per epoch the jobs in ``job_dirs`` took (their history.csv):
    how fast this machine trains right now, to scale the runtime checks by."""
    seconds = []
    for d in job_dirs:
        try:
            rows = (Path(d) / "history.csv").read_text().splitlines()
        except OSError:
            continue
        header = rows[0].split(",") if rows else []
        if "seconds" not in header:
            continue
        col = header.index("seconds")
        for row in rows[1:]:
            with contextlib.suppress(IndexError, ValueError):
                seconds.append(float(row.split(",")[col]))
    return statistics.median(seconds) if seconds else None


def slowdown(job_dirs: Iterable[Path], idle_epoch_s: float) -> float:
    """How many times slower than on an idle machine (``idle_epoch_s`` per epoch) the jobs
    trained, at least 1."""
    measured = epoch_seconds(job_dirs)
    return max(1.0, measured / idle_epoch_s) if measured else 1.0


# -- a scenario in a module fixture ---------------------------------------------------------


class Scenario(dict):
    """The observations of a scenario that a module fixture plays once for several tests.

    A step that fails is recorded, not raised (``with scenario.steps():``): the module's
    ``test_scenario_completes`` fails with it, and a test reading an observation the
    scenario never got to is skipped, naming that test. The tests whose observations were
    made still run. So one fault fails one test, not every test of the module."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.error: str | None = None

    def steps(self) -> _Steps:
        return _Steps(self)

    def __missing__(self, key: str) -> Any:
        if self.error is not None:
            import pytest

            pytest.skip(
                f"the {self.name} scenario stopped before '{key}' "
                "(see test_scenario_completes for why)"
            )
        raise KeyError(key)

    def check_completed(self) -> None:
        """Fail (one test) with what stopped the scenario."""
        if self.error is not None:
            import pytest

            pytest.fail(f"the {self.name} scenario stopped: {self.error}", pytrace=False)


class _Steps:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    def __enter__(self) -> Scenario:
        return self.scenario

    def __exit__(self, kind, exc, tb) -> bool:
        import pytest

        # A failure (an assert, a stall, a subprocess timeout, pytest-timeout's) is the
        # scenario's: record it. A skip or an interrupt goes on up.
        if exc is not None and isinstance(exc, (Exception, pytest.fail.Exception)):
            where = "".join(traceback.format_exception(kind, exc, tb, limit=-3))
            self.scenario.error = f"{exc}\n{where}"
            return True
        return False


# -- campaigns on the cluster --------------------------------------------------------------


def tiny_space(name: str) -> dict:
    """A space of two one-epoch trainings on 3,000 jets (two learning rates): a campaign
    that runs in seconds, for tests of what the scheduler does around the jobs."""
    return {
        "name": name,
        "base": {
            "data": {"source": "bundled:dijet_4d", "max_jets": 3000},
            "model": {"encoder": [8]},
            "train": {"epochs": 1, "batch_size": 256},
            "evaluate": {"plots": False, "timing_jets": 1000},
        },
        "grid": {"train.lr": [1e-3, 1e-2]},
    }


def write_test_site(directory: Path, time: str = "5:00") -> Path:
    """A site profile ``test-slurm`` in ``directory/sites`` for this cluster: the test's
    Python and this checkout on PYTHONPATH; returns the sites directory."""
    import yaml

    sites = Path(directory) / "sites"
    sites.mkdir(parents=True, exist_ok=True)
    profile = {
        "extends": "slurm",
        "python": sys.executable,
        "env": {"variables": {"PYTHONPATH": str(REPO)}},
        "request": {"time": time},
    }
    (sites / "test-slurm.yaml").write_text(yaml.safe_dump(profile))
    return sites


def gridsearch(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m gridsearch ARGS`` in a subprocess, with this checkout importable (the
    timeout only guards against a hang: a loaded machine starts Python slowly)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "gridsearch", *args],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


def plan_and_submit(
    directory: Path, space: dict, sites: Path, *submit_args: str
) -> tuple[Path, list[str], subprocess.CompletedProcess[str]]:
    """Plan ``space`` into ``directory/camp`` and submit it to the ``test-slurm`` profile
    of ``sites`` with one ``gridsearch submit``; (campaign, site arguments, submit's run)."""
    import yaml

    path = Path(directory) / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    camp = Path(directory) / "camp"
    site = ["--site", "test-slurm", "--sites-dir", str(sites)]
    planned = gridsearch("plan", str(path), "-o", str(camp))
    assert planned.returncode == 0, planned.stdout + planned.stderr
    proc = gridsearch("submit", str(camp), *site, *submit_args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return camp, site, proc
