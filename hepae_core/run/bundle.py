"""Run a bundle of job directories in one process: ``python -m hepae_core.bundle DIR [DIR ...]``.

The unit a scheduler task runs can be a bundle of K job dirs instead of one. Every member
stays a complete, independent job directory (docs/jobdir.md): its own lock, heartbeat,
state.json, checkpoint, history, model and metrics, written exactly as
``python -m hepae_core.job DIR`` writes them: each member is a
:class:`hepae_core.run.jobrun.JobRun`, the single job's run. Members whose models have the
same layers, batch size and data shapes are trained as one stack
(:mod:`hepae_core.training.stacked`); the others one after the other. See docs/bundles.md for
the contract the submission templates rely on:

- a member whose dir is locked by another process is skipped and not touched;
- a finished member (state done) is skipped, never rerun;
- SIGTERM/SIGUSR1 reach every member: all checkpoint and the bundle exits 75;
- exit code 75 if any member was interrupted, else 1 if any failed (bad input
  included), else 0 (done, already done, or busy elsewhere).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepae_core import jobdir
from hepae_core.diskfull import writing
from hepae_core.errors import (
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
)
from hepae_core.run.jobrun import JobRun, fail, failure_of, record_interrupted


@dataclass
class Member:
    """One job dir of the bundle and how it ended (``code``: its job exit code)."""

    job_dir: Path
    code: int | None = None
    note: str = ""
    cfg: dict[str, Any] | None = None
    run: JobRun | None = None
    heartbeat: jobdir.Heartbeat | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def config(self) -> dict[str, Any]:
        """The loaded config of a member that runs (``cfg`` is None only for skipped ones)."""
        assert self.cfg is not None, "the config of a member that runs is loaded"
        return self.cfg

    @property
    def job_run(self) -> JobRun:
        """The JobRun of a prepared member."""
        assert self.run is not None, "prepare_member comes first"
        return self.run

    @property
    def trainer(self) -> Any:
        return self.run.trainer if self.run is not None else None


# ============================================================== the steps of one job
# Each member is a hepae_core.run.jobrun.JobRun, the very run of a single job (data, trainer,
# evaluation, files, failures); only the training loop may be the stack's.


def prepare_member(m: Member, threads: int, cache: dict[str, Any]) -> None:
    """Set up, prepare and build the Trainer of one member (``m.run``).

    ``cache`` shares loaded jets between members with the same data section.
    """
    from hepae_core.data.jets import load_jets, resolve_source

    cfg, job_dir = m.config, m.job_dir
    name = job_dir.name
    m.run = run = JobRun(
        job_dir,
        cfg,
        tell=lambda text: _say(name, text),
        stream=_Prefixed(name),
        heartbeat=m.heartbeat,
        started=m.started,
    )
    run.setup(threads)
    key = json.dumps(
        [cfg["data"], str(resolve_source(cfg["data"]["source"], job_dir))], sort_keys=True
    )
    if key not in cache:
        cache[key] = load_jets(cfg, job_dir)
    run.prepare(jets=cache[key])
    run.build_trainer()


# =========================================================================== end of steps


class _Prefixed:
    """A stream for the per-epoch log lines of one member, prefixed with its dir name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def isatty(self) -> bool:  # one line per epoch, never a progress bar, in a bundle
        return False

    def write(self, text: str) -> None:
        if text.strip():
            sys.stderr.write(f"[{self.name}] {text.rstrip()}\n")

    def flush(self) -> None:
        sys.stderr.flush()


def _say(name: str, text: str) -> None:
    print(f"[{name}] {text}", file=sys.stderr, flush=True)


def _fail(m: Member, exc: BaseException) -> None:
    """Record an exception as the member's failure, as a single job records it."""
    if m.run is not None:
        m.code = m.run.fail(exc)
    else:
        m.code = fail(m.job_dir, exc, m.started, lambda text: _say(m.job_dir.name, text))
    m.note = f"failed: {failure_of(exc, m.job_dir).reason}"


def _interrupted(m: Member, signal_name: str | None, trained: bool = True) -> None:
    if m.run is not None:
        m.run.close()
    epoch = m.trainer.epoch if m.trainer is not None else None
    try:
        record_interrupted(m.job_dir, signal_name, epoch)
    except Exception as exc:  # a full disk: the member failed, the others go on
        _fail(m, exc)
        return
    m.code = EXIT_INTERRUPTED
    done = ", checkpoint written" if trained else " before its turn"
    m.note = f"interrupted by {signal_name}{done}"


def _finish(m: Member, result: Any) -> None:
    m.job_run.close()
    try:
        m.code = m.job_run.finish(result)
        m.note = "done"
    except Exception as exc:
        _fail(m, exc)


def bundle_threads(cfgs: list[dict[str, Any]]) -> int:
    """Threads for the bundle: the task's allocation, lowered to what every member asks.

    The allocation is ``HEPAE_THREADS`` (else ``SLURM_CPUS_PER_TASK``, ``OMP_NUM_THREADS``,
    the affinity mask), never more than the CPUs this process may use; a member's
    ``train.threads`` can lower it but never raise it above the allocation.
    """
    from hepae_core.training.train import pick_threads

    allocation: int = pick_threads(None)
    asked: list[int] = [c["train"]["threads"] for c in cfgs]
    if asked and all(asked):
        return max(1, min(allocation, max(asked)))
    return allocation


def run_bundle(dirs: list[str | Path], max_stack: int | None = None) -> int:
    """Run the job dirs as one bundle; returns the bundle's exit code (module docstring).

    ``max_stack`` caps the members per stack (1: no stacking); by default
    :func:`hepae_core.training.stacked.stack_limit` picks it from the model and batch size.
    """
    from hepae_core.config import load

    members: list[Member] = []
    seen: set[Path] = set()
    for d in dirs:
        path = Path(d).resolve()
        if path in seen:
            continue
        seen.add(path)
        members.append(Member(path))

    from hepae_core.training.train import StopFlag

    stop = StopFlag().install()
    try:
        with contextlib.ExitStack() as held:
            live: list[Member] = []
            for m in members:
                if not (m.job_dir / jobdir.CONFIG).is_file():
                    m.code = EXIT_BAD_INPUT
                    m.note = f"error: {m.job_dir}: no {jobdir.CONFIG} here (not a job directory)"
                    continue
                try:
                    held.enter_context(jobdir.job_lock(m.job_dir))
                except jobdir.JobDirBusy as exc:
                    m.code, m.note = EXIT_BUSY, f"skipped: {exc.holder} runs it"
                    continue
                previous = jobdir.read_state(m.job_dir) or {}
                if previous.get("state") == jobdir.DONE:
                    m.code, m.note = EXIT_OK, "already done; skipped"
                    continue
                try:
                    with writing(m.job_dir / jobdir.STATE):
                        jobdir.start_attempt(m.job_dir)
                    m.heartbeat = held.enter_context(jobdir.Heartbeat(m.job_dir))
                    m.cfg = load(m.job_dir / jobdir.CONFIG)
                except Exception as exc:  # bad config, full disk: this member fails alone
                    _fail(m, exc)
                    continue
                live.append(m)
            if live:
                try:
                    _train(live, stop, max_stack)
                except Exception as exc:  # a fault of the bundle itself: no member hangs
                    for m in live:
                        if m.code is None:
                            _fail(m, exc)
    except KeyboardInterrupt:
        for m in members:
            if m.code is None:
                _interrupted(m, "SIGINT")
                m.note = "interrupted (Ctrl-C): run the bundle again to resume"
    finally:
        stop.restore()
    return _summary(members)


def _train(live: list[Member], stop: Any, max_stack: int | None = None) -> None:
    """Prepare every member, then train the stacks and the lone members."""
    import torch

    from hepae_core.training.stacked import StackedTrainer, group_stackable

    threads = bundle_threads([m.config for m in live])
    torch.set_num_threads(threads)
    cache: dict[str, Any] = {}
    ready: list[Member] = []
    for m in live:
        try:
            prepare_member(m, threads, cache)
        except Exception as exc:
            _fail(m, exc)
            continue
        ready.append(m)
    cache.clear()
    groups, alone = group_stackable([m.trainer for m in ready], max_stack)
    for i, reason in alone.items():
        _say(ready[i].job_dir.name, f"trained alone: {reason}")
    print(
        f"bundle: {len(ready)} job(s) in {len(groups)} training(s) "
        f"({', '.join(str(len(g)) for g in groups)} model(s) each), {threads} thread(s)",
        file=sys.stderr,
        flush=True,
    )
    for group in groups:
        group_members = [ready[i] for i in group]
        if stop:  # the walltime came before this group's turn: nothing was trained
            for m in group_members:
                _interrupted(m, stop.signal_name, trained=False)
            continue
        if len(group_members) > 1:
            outcomes = StackedTrainer([m.trainer for m in group_members]).run(stop)
            for m, outcome in zip(group_members, outcomes, strict=True):
                if outcome.state == "failed":
                    assert outcome.error is not None  # a failed outcome carries its error
                    _fail(m, outcome.error)
                elif outcome.state == "interrupted":
                    _interrupted(m, m.trainer.result.signal_name)
                else:
                    _finish(m, m.trainer.result)
            continue
        m = group_members[0]
        try:
            result = m.job_run.train(stop)
        except Exception as exc:
            _fail(m, exc)
            continue
        if result.interrupted:
            _interrupted(m, result.signal_name)
        else:
            _finish(m, result)


def _summary(members: list[Member]) -> int:
    for m in members:
        print(f"bundle: {m.job_dir.name}: {m.note}", file=sys.stderr, flush=True)
    codes = [m.code for m in members]
    if EXIT_INTERRUPTED in codes:
        return EXIT_INTERRUPTED
    if any(c not in (EXIT_OK, EXIT_BUSY) for c in codes):
        return EXIT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hepae_core.bundle",
        description="Train and evaluate several job directories in one process; same-shape "
        "models are trained as one stack.",
    )
    parser.add_argument("job_dirs", nargs="*", type=Path, help="job directories")
    parser.add_argument(
        "--list",
        type=Path,
        metavar="FILE",
        help="a file with one job directory per line (added to JOB_DIRS)",
    )
    parser.add_argument(
        "--max-stack",
        type=int,
        metavar="N",
        help="at most N models per stack (1: train every job alone); default: chosen from "
        "the model and batch size so that a stack stays within the CPU's caches",
    )
    args = parser.parse_args(argv)
    if args.max_stack is not None and args.max_stack < 1:
        parser.error("--max-stack must be 1 or more")
    dirs = list(args.job_dirs)
    if args.list is not None:
        try:
            lines = args.list.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            print(f"error: {args.list}: cannot be read: {exc.strerror}", file=sys.stderr)
            return 2
        dirs.extend(Path(line.strip()) for line in lines if line.strip())
    if not dirs:
        parser.error("give at least one job directory (or --list FILE)")
    return run_bundle(dirs, args.max_stack)
