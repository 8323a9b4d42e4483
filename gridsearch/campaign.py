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
from hepae_core.jobdir import atomic_write_text, flock_holder, now_iso

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

    @property
    def submit_root(self) -> Path:
        return self.root / SUBMIT

    def submit_dir(self, submission: str) -> Path:
        """The directory of one submission's files (made by the backend, not here)."""
        return self.root / SUBMIT / submission

    def relative(self, path: Path) -> str:
        """``path`` relative to the campaign root, as the ledger and manifest store it."""
        return Path(path).absolute().relative_to(self.root).as_posix()

    def job_indices(self) -> dict[str, int]:
        """Job id -> campaign index (the task index every backend uses), from the manifest."""
        return {str(j["id"]): int(j.get("index", i)) for i, j in enumerate(self.manifest()["jobs"])}

    def intended_jobs(self) -> dict[str, tuple[str, float]]:
        """Job id -> (submission id, its time in epoch seconds) for the jobs of submissions
        whose scheduler was called (or about to be) and whose outcome is not recorded: the
        scheduler may hold them, so they are in flight, never ``planned``, until a
        state.json newer than that time says otherwise or ``gridsearch adopt`` records it.
        """
        out: dict[str, tuple[str, float]] = {}
        for rec in self.submissions():
            if rec.get("outcome") != "intended" or rec.get("dry_run"):
                continue
            when = parse_time(rec.get("time")) or 0.0
            indices = rec.get("indices")
            for value in indices.values() if isinstance(indices, dict) else []:
                for job_id in value if isinstance(value, list) else [value]:  # a bundle: a list
                    out[str(job_id)] = (str(rec.get("submission")), when)
        return out

    def submission(self, submission: str) -> dict[str, Any] | None:
        """The merged ledger record of one submission, or None."""
        for rec in self.submissions():
            if rec.get("submission") == submission:
                return rec
        return None

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
        """All ledger lines, oldest first; torn lines are skipped (see :func:`read_ledger`)."""
        return read_ledger(self.root / LEDGER)

    def submissions(self) -> list[dict[str, Any]]:
        """One merged record per submission, oldest first (see :func:`merge_submissions`)."""
        return merge_submissions(self.ledger())

    def append_ledger(self, record: dict[str, Any]) -> None:
        """Append one record to ledger.jsonl as one whole line; see :func:`append_record`."""
        append_record(self.root / LEDGER, record)

    def record_intent(self, submission: str, **fields: Any) -> dict[str, Any]:
        """Write-ahead: record a submission about to be handed to the scheduler.

        Written (and fsync-ed) BEFORE the scheduler is called, so a crash, a full disk or a
        kill between the scheduler's acceptance and the completion record can never make
        status call the jobs planned. ``fields`` should hold at least ``kind``, ``site``,
        ``dir`` and ``indices`` (campaign index -> job id).
        """
        rec = {"event": INTENT, "submission": submission, "time": now_iso(), **fields}
        self.append_ledger(rec)
        return rec

    def record_outcome(self, submission: str, event: str, **fields: Any) -> dict[str, Any]:
        """Complete a submission: ``event`` is SUBMITTED (with ``scheduler_ids`` and ``tasks``,
        task id -> job id) or REFUSED (the scheduler queued nothing; with ``reason``)."""
        if event not in (SUBMITTED, REFUSED):
            raise ValueError(f"unknown ledger event {event!r}")
        rec = {"event": event, "submission": submission, "recorded": now_iso(), **fields}
        self.append_ledger(rec)
        return rec

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


# Ledger events (docs/campaign.md). A record without "event" is a complete submission
# written before the ledger was write-ahead.
INTENT = "intent"  # about to call the scheduler: the jobs may be queued from now on
SUBMITTED = "submitted"  # the scheduler accepted: scheduler_ids and tasks
REFUSED = "refused"  # the scheduler queued nothing


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to a JSON-lines file as one whole, fsync-ed line.

    The line always starts on a fresh line (a torn last line left by a crash gets its line
    break first, so the new record never glues onto it). A short write (a full disk) is
    undone by truncating back to the old size and raised as OSError: a record is either
    there whole or not at all.
    """
    data = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            written = 0
            while written < len(data):
                n = os.write(fd, data[written:])
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += n
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def _parse_line(line: bytes) -> dict[str, Any] | None:
    """A ledger line as a dict; a torn record glued before a whole one yields the whole one."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = line.decode("utf-8", errors="replace")
    text = text.strip()
    if not text:
        return None
    start = 0
    while start != -1:
        try:
            rec = json.loads(text[start:])
        except ValueError:
            start = text.find('{"', start + 1)
            continue
        return rec if isinstance(rec, dict) else None
    return None


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The records of a ledger file, oldest first.

    A torn line (a write cut short) is skipped without losing the record after it, even when
    that record was glued onto the torn one by an older writer.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return []
    out = []
    for line in data.split(b"\n"):
        rec = _parse_line(line)
        if rec is not None:
            out.append(rec)
    return out


def merge_submissions(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per submission id, oldest first: the intent merged with its outcome.

    Each merged record has ``outcome``: ``"intended"`` (the scheduler was called, or was
    about to be, and no outcome was recorded: its jobs may be queued), ``"submitted"`` or
    ``"refused"``. Records without ``event`` (older ledgers) are complete submissions.
    """
    merged: dict[str, dict[str, Any]] = {}
    for rec in records:
        sub = rec.get("submission")
        if not isinstance(sub, str):
            continue
        event = rec.get("event")
        cur = merged.setdefault(sub, {"outcome": INTENT if event == INTENT else SUBMITTED})
        cur.update({k: v for k, v in rec.items() if k != "event"})
        if event == INTENT:
            cur.setdefault("outcome", INTENT)
        elif event in (SUBMITTED, REFUSED):
            cur["outcome"] = event
        else:
            cur["outcome"] = SUBMITTED
    for rec in merged.values():
        if rec["outcome"] == INTENT:
            rec["outcome"] = "intended"
    return list(merged.values())


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
    return flock_holder(root / LOCK, _holder)


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
