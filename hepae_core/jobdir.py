"""The job directory contract: file names, the state file, and atomic writes.

A job directory holds ``config.yaml`` (its complete input) and everything the job writes.
The job records its state in ``state.json``, always replaced atomically, so a reader (the
``gridsearch status`` command, possibly on another node over a shared file system) sees
either the previous state or the new one, never half a file. This module is free of torch
and numpy so the orchestration layer can use it on a login node.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The job-dir file names are the contract's (hepae_core.contract), re-exported here.
from hepae_core.contract import (  # noqa: F401 (re-exported file names)
    CHECKPOINT,
    CONFIG,
    EVAL,
    EXIT_BUSY,
    FINAL_CHECKPOINT,
    HEARTBEAT,
    HISTORY,
    JOB_LOCK,
    LOG,
    METRICS,
    MODEL,
    PLOTS,
    PROMOTION,
    SCHEDULER_ID_ENV,
    STAGE1_CHOICE,
    STATE,
    WRITTEN_BY_JOB,
    JobState,
)

# Values of state.json's "state": the words of the states a job writes itself.
RUNNING = JobState.RUNNING.word
DONE = JobState.DONE.word
FAILED = JobState.FAILED.word
INTERRUPTED = JobState.INTERRUPTED.word
STATES = tuple(s.word for s in WRITTEN_BY_JOB)

#: Seconds between heartbeats of a running job (also touched at every epoch's end).
HEARTBEAT_INTERVAL_S = 30.0


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


def start_attempt(job_dir: str | Path, heartbeat_s: float | None = None) -> dict[str, Any]:
    """Record the start of a new attempt: host, pid, time, scheduler job id, attempt number.

    ``heartbeat_s`` (the interval the job's heartbeat will beat at) lets ``status`` judge
    silence by this job's own pace.
    """
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
    if heartbeat_s is not None:
        record["heartbeat_s"] = heartbeat_s
    atomic_write_json(Path(job_dir) / STATE, record)
    return record


# ----------------------------------------------------------------------------- heartbeat


def touch_heartbeat(job_dir: str | Path) -> None:
    """Mark the job alive now: create ``heartbeat`` or bump its mtime."""
    path = Path(job_dir) / HEARTBEAT
    try:
        os.utime(path)
    except FileNotFoundError:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
        os.close(fd)


def heartbeat_age(job_dir: str | Path, now: float | None = None) -> float | None:
    """Seconds since the job's last heartbeat, or None when it never beat."""
    try:
        mtime = os.stat(Path(job_dir) / HEARTBEAT).st_mtime
    except OSError:
        return None
    return max(0.0, (time.time() if now is None else now) - mtime)


class Heartbeat:
    """Touch the job dir's heartbeat every ``interval_s`` from a daemon thread.

    The thread dies with the process, so a killed job stops beating at once; ``status``
    tells a slow job from a dead one by this file. Errors (a full disk) never stop the
    job: a missed beat only makes the job look silent.
    """

    def __init__(self, job_dir: str | Path, interval_s: float = HEARTBEAT_INTERVAL_S) -> None:
        self.job_dir = Path(job_dir)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        """Touch the heartbeat now (the training loop calls this every epoch)."""
        with contextlib.suppress(OSError):
            touch_heartbeat(self.job_dir)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


# ----------------------------------------------------------------------------- the lock


class JobDirBusy(Exception):
    """Another process holds the job dir's lock; this one must touch nothing."""

    exit_code = EXIT_BUSY

    def __init__(self, job_dir: Path, holder: str) -> None:
        self.job_dir = job_dir
        self.holder = holder
        super().__init__(
            f"{job_dir}: another process ({holder}) is running this job; this one exits "
            "without touching its files"
        )


def _lock_info(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "unknown"
    if not isinstance(info, dict) or not info:
        return "unknown"
    return (
        f"pid {info.get('pid', '?')} on {info.get('host', '?')}, scheduler job "
        f"{info.get('scheduler_job_id') or '-'}, since {info.get('since', '?')}"
    )


@contextlib.contextmanager
def job_lock(job_dir: str | Path) -> Iterator[None]:
    """Hold the job dir's exclusive lock (flock on ``.lock``) for the whole run.

    Raises :class:`JobDirBusy` at once when another process holds it. The kernel drops
    the lock when the holder dies (kill -9 included), so a crash never leaves a job dir
    locked. The lock file holds who took it, for the message of the next taker.
    """
    job_dir = Path(job_dir)
    path = job_dir / JOB_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise JobDirBusy(job_dir, _lock_info(path)) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": now_iso(),
            "scheduler_job_id": os.environ.get(SCHEDULER_ID_ENV),
        }
        with contextlib.suppress(OSError):  # a full disk must not stop the job here
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def flock_holder(path: str | Path, describe: Callable[[Path], str]) -> str | None:
    """``describe(path)`` when another process holds an flock on ``path``; None when free.

    Only trustworthy where flock is coherent between the asking and the holding host
    (the same machine; most cluster file systems, but not every NFS setup).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return describe(path)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def job_lock_holder(job_dir: str | Path) -> str | None:
    """Who holds the job dir's lock now (``pid ... on host``), or None when it is free."""
    return flock_holder(Path(job_dir) / JOB_LOCK, _lock_info)


def retire_checkpoint(job_dir: str | Path) -> None:
    """A job is done: its checkpoint becomes ``final.pt`` (no longer resumed by a rerun,
    kept for ``gridsearch promote``)."""
    src = Path(job_dir) / CHECKPOINT
    with contextlib.suppress(FileNotFoundError):
        os.replace(src, Path(job_dir) / FINAL_CHECKPOINT)
