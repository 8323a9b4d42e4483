"""Run one job directory: ``python -m hepae_core.job DIR [--force]``.

Reads DIR/config.yaml, trains, evaluates and writes the job's files atomically (see
docs/jobdir.md) through one :class:`hepae_core.run.jobrun.JobRun`, the run a bundle member
makes too. The process first takes the job dir's lock (one writer per job dir) and
keeps a heartbeat while it runs. Exit codes (hepae_core.states): 0 done, 1 failed, 2 bad
input, 73 another process runs this job (nothing touched), 75 interrupted (resume me).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hepae_core import jobdir
from hepae_core.data.prepared import Prepared  # noqa: F401
from hepae_core.diskfull import DiskFull, is_disk_full, writing
from hepae_core.run.jobrun import (  # noqa: F401  (re-exported: the old import paths)
    EVAL_SAMPLE,
    JobRun,
    fail,
    flatten_params,
    history_csv,
    record_interrupted,
    write_evaluation,
    write_state,
)
from hepae_core.run.jobrun import say as _say
from hepae_core.run.modelfile import MODEL_FORMAT, load_model, save_model  # noqa: F401
from hepae_core.states import (
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
)

HEARTBEAT_ENV = "HEPAE_HEARTBEAT_S"  # seconds between heartbeats (tests make it short)


def _train_and_evaluate(
    job_dir: Path, cfg: dict[str, Any], fresh: bool, heartbeat: jobdir.Heartbeat, started: float
) -> int:
    """One JobRun, alone: data, training, evaluation and the job's files; the exit code."""
    from hepae_core.training.train import StopFlag

    run = JobRun(job_dir, cfg, heartbeat=heartbeat, fresh=fresh, started=started)
    run.setup()
    run.prepare()
    run.build_trainer()
    stop = StopFlag().install()
    try:
        result = run.train(stop)
    finally:
        stop.restore()
    return run.end(result)


# ----------------------------------------------------------------------- output and entry


class _PipeSafe(io.TextIOBase):
    """A stdout/stderr that goes quiet when its reader has gone (``| head``, closed pipe).

    The job's outcome is in its files; losing the reader of its messages must never turn
    a finished job into a failed one. On a broken pipe the file descriptor is pointed at
    /dev/null, so the interpreter's flush at exit does not fail either.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._broken = False

    def _quiet(self) -> None:
        self._broken = True
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def write(self, text: str) -> int:
        if not self._broken:
            try:
                self._stream.write(text)
            except (BrokenPipeError, ConnectionResetError):
                self._quiet()
        return len(text)

    def flush(self) -> None:
        if not self._broken:
            try:
                self._stream.flush()
            except (BrokenPipeError, ConnectionResetError):
                self._quiet()

    def isatty(self) -> bool:
        return not self._broken and self._stream.isatty()

    def fileno(self) -> int:
        fd: int = self._stream.fileno()
        return fd

    @property
    def encoding(self) -> str:  # type: ignore[override]
        enc: str = self._stream.encoding
        return enc


@contextlib.contextmanager
def _pipe_safe_output() -> Iterator[None]:
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _PipeSafe(sys.stdout), _PipeSafe(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def heartbeat_interval() -> float:
    """Seconds between heartbeats: ``HEPAE_HEARTBEAT_S`` when set (tests), else the default."""
    try:
        value = float(os.environ.get(HEARTBEAT_ENV, ""))
    except ValueError:
        return jobdir.HEARTBEAT_INTERVAL_S
    return value if 0 < value < 86400 else jobdir.HEARTBEAT_INTERVAL_S


def _report_busy(job_dir: Path, busy: jobdir.JobDirBusy) -> None:
    """One line in job.log (and on stderr) saying why this process touched nothing."""
    line = (
        f"gridsearch: another process ({busy.holder}) is running this job; this one exits "
        "without touching its files"
    )
    _say(line)
    log = job_dir / jobdir.LOG
    try:  # under a job script stderr already is job.log: write the line once
        err, st = os.fstat(sys.stderr.fileno()), os.stat(log)
        if (err.st_dev, err.st_ino) == (st.st_dev, st.st_ino):
            return
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
    with contextlib.suppress(OSError), open(log, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def run_job(job_dir: str | Path, force: bool = False) -> int:
    """Run the job in ``job_dir``; returns the exit code (see module docstring)."""
    job_dir = Path(job_dir).resolve()
    with _pipe_safe_output():
        if not (job_dir / jobdir.CONFIG).is_file():
            _say(
                f"error: {job_dir}: no {jobdir.CONFIG} here; a job directory needs one "
                "(gridsearch plan writes them)"
            )
            return EXIT_BAD_INPUT
        try:
            with jobdir.job_lock(job_dir):
                return _run_locked(job_dir, force)
        except jobdir.JobDirBusy as busy:
            _report_busy(job_dir, busy)
            return EXIT_BUSY
        except OSError as exc:  # the lock file cannot be made: nothing was written
            if is_disk_full(exc):
                _say(f"error: {DiskFull(job_dir / jobdir.JOB_LOCK)}")
                return EXIT_FAILED
            _say(f"error: {job_dir}: cannot lock the job directory: {exc.strerror or exc}")
            return EXIT_BAD_INPUT


def _run_locked(job_dir: Path, force: bool) -> int:
    """The job, once this process holds the job dir's lock."""
    from hepae_core.config import load

    previous = jobdir.read_state(job_dir) or {}
    if previous.get("state") == jobdir.DONE and not force:
        _say(f"{job_dir.name}: already done; nothing to do (--force reruns it)")
        return EXIT_OK
    t0 = time.monotonic()
    try:
        if force:
            (job_dir / jobdir.CHECKPOINT).unlink(missing_ok=True)
        with writing(job_dir / jobdir.STATE):
            jobdir.start_attempt(job_dir, heartbeat_interval())
        with jobdir.Heartbeat(job_dir, heartbeat_interval()) as heartbeat:
            cfg = load(job_dir / jobdir.CONFIG)
            write_state(job_dir, jobdir.RUNNING, epochs=cfg["train"]["epochs"])
            return _train_and_evaluate(job_dir, cfg, force, heartbeat, t0)
    except KeyboardInterrupt:
        record_interrupted(job_dir, "SIGINT")
        _say("interrupted (Ctrl-C): resume by running the job again")
        return EXIT_INTERRUPTED
    except Exception as exc:  # one table (jobrun.FAILURES) says how it ends the job
        return fail(job_dir, exc, t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hepae_core.job",
        description="Train and evaluate the autoencoder described by DIR/config.yaml.",
    )
    parser.add_argument("job_dir", type=Path, help="job directory holding config.yaml")
    parser.add_argument("--force", action="store_true", help="rerun a finished job from scratch")
    args = parser.parse_args(argv)
    return run_job(args.job_dir, force=args.force)
