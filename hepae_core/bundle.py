"""Run a bundle of job directories in one process: ``python -m hepae_core.bundle DIR [DIR ...]``.

The unit a scheduler task runs can be a bundle of K job dirs instead of one. Every member
stays a complete, independent job directory (docs/jobdir.md): its own lock, heartbeat,
state.json, checkpoint, history, model and metrics, written exactly as
``python -m hepae_core.job DIR`` writes them. Members whose models have the same layers,
batch size and data shapes are trained as one stack (:mod:`hepae_core.stacked`); the
others one after the other. See docs/bundles.md for the contract the submission
templates rely on:

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
import traceback
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepae_core import jobdir
from hepae_core.errors import (
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    HepaeError,
)


@dataclass
class Member:
    """One job dir of the bundle and how it ended (``code``: its job exit code)."""

    job_dir: Path
    code: int | None = None
    note: str = ""
    cfg: dict[str, Any] | None = None
    steps: Generator | None = None
    trainer: Any = None
    started: float = field(default_factory=time.monotonic)


# ============================================================== the steps of one job
# The per-job steps are hepae_core.job's own (data, evaluation, outputs, metrics), so a
# member's files are those of a single job; only the training loop is the stack's.


def job_steps(
    job_dir: Path, cfg: dict[str, Any], threads: int, cache: dict[str, Any]
) -> Generator[Any, Any, int]:
    """Prepare one job; yield its Trainer; receive its TrainResult; finish; return 0.

    ``cache`` shares loaded jets between members with the same data section.
    """
    import torch

    from hepae_core import job
    from hepae_core.data import load_jets, resolve_source
    from hepae_core.models import describe
    from hepae_core.tensorboard import open_scalars
    from hepae_core.train import pick_device

    tcfg = cfg["train"]
    device = pick_device(tcfg["device"])
    seed = cfg["seed"]
    name = job_dir.name
    key = json.dumps(
        [cfg["data"], str(resolve_source(cfg["data"]["source"], job_dir))], sort_keys=True
    )
    if key not in cache:
        cache[key] = load_jets(cfg, job_dir)
    data = job._prepare_data(job_dir, cfg, jets=cache[key])

    scalars = open_scalars(job_dir, cfg)  # refuses a missing optional extra before training
    torch.manual_seed(seed)  # the initial weights come from it, as in a single job

    def after_epoch(rec: dict[str, float]) -> None:
        if scalars is not None:
            scalars(rec)

    trainer = job._build_trainer(job_dir, cfg, data, device, after_epoch, stream=_Prefixed(name))
    if trainer.resume():
        _say(
            name, f"resuming from {jobdir.CHECKPOINT}: epoch {trainer.epoch}, batch {trainer.batch}"
        )
    n_inputs = data.n_inputs or len(data.variables)
    _say(name, f"{describe(cfg['model'], n_inputs)} on {data.counts['train_jets']} jets")

    try:
        result = yield trainer
    finally:
        if scalars is not None:
            scalars.close()

    if result.best_epoch == 0:
        raise FloatingPointError("no epoch produced a finite validation loss")
    best, test_loss, metrics, x_eval, out = job._evaluate(job_dir, cfg, data, device)
    job._write_outputs(job_dir, cfg, data, result.history, x_eval, out)
    record = job._metrics(cfg, data, result, best, test_loss, metrics, device, threads)
    record["attempts"] = (jobdir.read_state(job_dir) or {}).get("attempt", 1)
    jobdir.atomic_write_json(job_dir / jobdir.METRICS, record)
    jobdir.write_state(job_dir, jobdir.DONE, finished=jobdir.now_iso(), exit_code=EXIT_OK)
    jobdir.retire_checkpoint(job_dir)  # kept as final.pt for gridsearch promote
    _say(name, f"done: best val loss {result.best_val_loss:.4e} at epoch {result.best_epoch}")
    return EXIT_OK


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


def _record_failure(m: Member, kind: str, reason: str, code: int) -> None:
    jobdir.write_state(
        m.job_dir,
        jobdir.FAILED,
        error_kind=kind,
        reason=reason,
        exit_code=code,
        finished=jobdir.now_iso(),
        seconds=round(time.monotonic() - m.started, 1),
    )
    m.code = code
    m.note = f"failed: {reason}"


def _fail(m: Member, exc: BaseException) -> None:
    """Record an exception as the member's failure, as a single job records it."""
    if isinstance(exc, HepaeError):
        kind = getattr(exc, "error_kind", "bad_input")  # stage1_not_done: waits on stage 1
        _record_failure(m, kind, str(exc), exc.exit_code)
        _say(m.job_dir.name, f"error: {exc}")
        return
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
    kind = "nan" if isinstance(exc, FloatingPointError) else "python_error"
    _record_failure(m, kind, reason, EXIT_FAILED)
    traceback.print_exception(exc)
    _say(m.job_dir.name, f"error: job failed: {reason}")


def _interrupted(m: Member, signal_name: str | None, trained: bool = True) -> None:
    epoch = m.trainer.epoch if m.trainer is not None else None
    fields = {"signal": signal_name} | ({"epoch": epoch} if epoch is not None else {})
    jobdir.write_state(m.job_dir, jobdir.INTERRUPTED, **fields)
    m.code = EXIT_INTERRUPTED
    done = ", checkpoint written" if trained else " before its turn"
    m.note = f"interrupted by {signal_name}{done}"


def _finish(m: Member, result: Any) -> None:
    try:
        m.steps.send(result)
    except StopIteration as done:
        m.code = done.value
        m.note = "done"
    except Exception as exc:
        _fail(m, exc)


def bundle_threads(cfgs: list[dict[str, Any]]) -> int:
    """Threads for the bundle: the task's allocation, lowered to what every member asks.

    The allocation is ``HEPAE_THREADS`` (else ``SLURM_CPUS_PER_TASK``, ``OMP_NUM_THREADS``,
    the affinity mask), never more than the CPUs this process may use; a member's
    ``train.threads`` can lower it but never raise it above the allocation.
    """
    from hepae_core.train import pick_threads

    allocation = pick_threads(None)
    asked = [c["train"]["threads"] for c in cfgs]
    if asked and all(asked):
        return max(1, min(allocation, max(asked)))
    return allocation


def run_bundle(dirs: list[str | Path], max_stack: int | None = None) -> int:
    """Run the job dirs as one bundle; returns the bundle's exit code (module docstring).

    ``max_stack`` caps the members per stack (1: no stacking); by default
    :func:`hepae_core.stacked.stack_limit` picks it from the model and batch size.
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

    from hepae_core.train import StopFlag

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
                jobdir.start_attempt(m.job_dir)
                held.enter_context(jobdir.Heartbeat(m.job_dir))
                try:
                    m.cfg = load(m.job_dir / jobdir.CONFIG)
                except HepaeError as exc:
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

    from hepae_core.stacked import StackedTrainer, group_stackable

    threads = bundle_threads([m.cfg for m in live])
    torch.set_num_threads(threads)
    cache: dict[str, Any] = {}
    ready: list[Member] = []
    for m in live:
        m.steps = job_steps(m.job_dir, m.cfg, threads, cache)
        try:
            m.trainer = next(m.steps)
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
                    _fail(m, outcome.error)
                elif outcome.state == "interrupted":
                    _interrupted(m, m.trainer.result.signal_name)
                else:
                    _finish(m, m.trainer.result)
            continue
        m = group_members[0]
        try:
            result = m.trainer.run(stop)
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


if __name__ == "__main__":
    sys.exit(main())
