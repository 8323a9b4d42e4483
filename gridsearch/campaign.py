"""The campaign directory (docs/campaign.md): its files, the lock and the ledger.

A campaign is a directory made by ``gridsearch plan``; every other command opens it with
:func:`open_campaign`, which refuses a directory that is not one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gridsearch.errors import GridsearchError
from hepae_core.jobdir import atomic_write_text, now_iso

CAMPAIGN = "campaign.json"
SPACE = "space.yaml"
MANIFEST = "manifest.json"
LEDGER = "ledger.jsonl"
LOCK = ".lock"
JOBS = "jobs"
SUBMIT = "submit"
SUMMARY = "summary"
HISTORY = "history"


@dataclass
class Campaign:
    """An opened campaign directory."""

    root: Path

    @property
    def jobs_dir(self) -> Path:
        return self.root / JOBS

    def job_dir(self, job_id: str) -> Path:
        return self.root / JOBS / job_id

    def info(self) -> dict[str, Any]:
        """campaign.json."""
        return _read_json(self.root / CAMPAIGN, "campaign.json")

    def manifest(self) -> dict[str, Any]:
        """manifest.json: name and the list of jobs."""
        path = self.root / MANIFEST
        if not path.exists():
            raise GridsearchError(
                message="has no manifest.json: planning did not finish; run 'gridsearch "
                "plan' again",
                source=str(self.root),
            )
        data = _read_json(path, "manifest.json")
        if not isinstance(data.get("jobs"), list):
            raise GridsearchError(message="has no 'jobs' list; plan again", source=str(path))
        return data

    def ledger(self) -> list[dict[str, Any]]:
        """All submission records, oldest first; a torn last line is ignored."""
        return read_ledger(self.root / LEDGER)

    def append_ledger(self, record: dict[str, Any]) -> None:
        """Append one submission record (one line, flushed to disk)."""
        line = json.dumps(record, sort_keys=True) + "\n"
        fd = os.open(self.root / LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def lock(self, what: str, wait_s: float = 30.0) -> Iterator[None]:
        """Hold the campaign lock while writing; see :func:`campaign_lock`."""
        with campaign_lock(self.root, what, wait_s):
            yield


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Replace manifest.json atomically, one job per line: readable, diffable, quick."""
    header = {k: v for k, v in manifest.items() if k != "jobs"}
    head = json.dumps(header, sort_keys=True)[:-1]
    sep = ", " if header else ""
    rows = ",\n  ".join(json.dumps(j, sort_keys=True) for j in manifest.get("jobs", []))
    atomic_write_text(root / MANIFEST, f'{head}{sep}"jobs": [\n  {rows}\n]}}\n')


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise GridsearchError(message=f"{what} is missing", source=str(path.parent)) from None
    except (OSError, ValueError) as exc:
        raise GridsearchError(
            message=f"cannot be read ({exc}); restore it", source=str(path)
        ) from None
    if not isinstance(data, dict):
        raise GridsearchError(message="is not a JSON object; restore it", source=str(path))
    return data


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The records of a ledger file; lines that do not parse (a torn write) are skipped."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def is_campaign(path: Path) -> bool:
    return (path / CAMPAIGN).is_file()


def open_campaign(path: str | Path = ".") -> Campaign:
    """Open an existing campaign directory, or raise saying why it is not one."""
    root = Path(path)
    if not root.exists():
        raise GridsearchError(
            message="no such directory; make a campaign with 'gridsearch plan space.yaml -o DIR'",
            source=str(root),
        )
    if not root.is_dir():
        raise GridsearchError(message="is not a directory", source=str(root))
    if not is_campaign(root):
        raise GridsearchError(
            message="is not a campaign directory (no campaign.json); pass the directory "
            "'gridsearch plan' made, or make one with 'gridsearch plan space.yaml -o DIR'",
            source=str(root),
        )
    return Campaign(root.resolve())


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another process"
    if not isinstance(info, dict) or not info:
        return "another process"
    return (
        f"'gridsearch {info.get('what', '?')}' (pid {info.get('pid', '?')} on "
        f"{info.get('host', '?')}, since {info.get('since', '?')})"
    )


def lock_holder(root: Path) -> str | None:
    """Who holds the campaign lock now, or None when it is free."""
    path = root / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return _holder(path)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def campaign_lock(root: Path, what: str, wait_s: float = 30.0) -> Iterator[None]:
    """An exclusive lock on ``root/.lock`` (flock): the second taker waits, then refuses.

    The lock file is never removed; the kernel drops the lock when the holder exits, so a
    crashed process never leaves a campaign locked.
    """
    path = root / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise GridsearchError(
                        message=f"is busy: {_holder(path)} is writing to it; wait for it to finish "
                        "and try again",
                        source=str(root),
                    ) from None
                time.sleep(0.05)
        info = {"what": what, "pid": os.getpid(), "host": socket.gethostname(), "since": now_iso()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def parse_time(text: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 time, or None."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
