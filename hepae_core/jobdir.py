"""The job directory contract: file names, the state file, and atomic writes.

A job directory holds ``config.yaml`` (its complete input) and everything the job writes.
The job records its state in ``state.json``, always replaced atomically, so a reader (the
``gridsearch status`` command, possibly on another node over a shared file system) sees
either the previous state or the new one, never half a file. This module is free of torch
and numpy so the orchestration layer can use it on a login node.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CONFIG = "config.yaml"
STATE = "state.json"
METRICS = "metrics.json"
HISTORY = "history.csv"
MODEL = "model.pt"
CHECKPOINT = "checkpoint.pt"
LOG = "job.log"
PLOTS = "plots"
EVAL = "evaluation.npz"

# Values of state.json's "state".
RUNNING = "running"
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"
STATES = (RUNNING, DONE, FAILED, INTERRUPTED)

# Set by the job templates so a job can record which scheduler job ran it, without
# hepae_core knowing any scheduler.
SCHEDULER_ID_ENV = "HEPAE_SCHEDULER_JOB_ID"


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes files readable by their owner only; colleagues sharing a project directory
# on a cluster must be able to read a campaign, so the files get the usual umask modes.
FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory + rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomic write of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Atomic write of JSON; NaN and inf become null so any JSON reader can load it."""
    atomic_write_text(path, json.dumps(_finite(obj), indent=1, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; it is renamed onto ``path`` on success only.

    For writers that want a file name (torch.save, matplotlib, h5py).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def read_json(path: str | Path) -> dict[str, Any] | None:
    """Read a JSON object; None when missing, unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def read_state(job_dir: str | Path) -> dict[str, Any] | None:
    """The job's state.json as a dict, or None when the job never started."""
    return read_json(Path(job_dir) / STATE)


def write_state(job_dir: str | Path, state: str, **fields: Any) -> dict[str, Any]:
    """Replace state.json with ``state`` and ``fields`` merged over the previous record.

    The previous record's fields are kept (attempt, started, host...) so one file tells the
    whole story of the latest attempt.
    """
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    record = read_state(job_dir) or {}
    record.update(fields)
    record["state"] = state
    record["updated"] = now_iso()
    atomic_write_json(Path(job_dir) / STATE, record)
    return record


def start_attempt(job_dir: str | Path) -> dict[str, Any]:
    """Record the start of a new attempt: host, pid, time, scheduler job id, attempt number."""
    previous = read_state(job_dir) or {}
    attempt = int(previous.get("attempt", 0)) + 1
    record = {
        "state": RUNNING,
        "attempt": attempt,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": now_iso(),
        "updated": now_iso(),
        "scheduler_job_id": os.environ.get(SCHEDULER_ID_ENV),
        "epoch": previous.get("epoch", 0) if previous.get("state") == INTERRUPTED else 0,
    }
    atomic_write_json(Path(job_dir) / STATE, record)
    return record
