"""Run one job directory: ``python -m hepae_core.job DIR [--force]``.

Reads DIR/config.yaml, trains, evaluates and writes the job's files atomically (see
docs/jobdir.md). The process first takes the job dir's lock (one writer per job dir) and
keeps a heartbeat while it runs. Exit codes (hepae_core.states): 0 done, 1 failed, 2 bad
input, 73 another process runs this job (nothing touched), 75 interrupted (resume me).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hepae_core import jobdir, yamlio
from hepae_core.diskfull import DiskFull, is_disk_full, writing
from hepae_core.errors import HepaeError
from hepae_core.states import (
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
)

EVAL_SAMPLE = 50_000  # test jets kept in evaluation.npz for the summary plots
MODEL_FORMAT = "hepae-model-1"
HEARTBEAT_ENV = "HEPAE_HEARTBEAT_S"  # seconds between heartbeats (tests make it short)


def flatten_params(cfg: dict[str, Any]) -> dict[str, Any]:
    """``param.<section>.<key>`` for every setting; lists joined with '-', maps as JSON."""
    out: dict[str, Any] = {}
    for section, value in cfg.items():
        if section == "name":  # a label, not a parameter; metrics.json has it as "name"
            continue
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for key, v in items:
            name = f"param.{section}" + (f".{key}" if key else "")
            if isinstance(v, list):
                v = "-".join(str(x) for x in v)
            elif isinstance(v, dict):
                v = json.dumps(v, sort_keys=True)
            out[name] = v
    return out


def history_csv(history: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    fields = ["epoch", "train_loss", "val_loss", "lr", "seconds", "jets_per_s"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()


def save_model(
    path: Path,
    model,
    cfg: dict[str, Any],
    norm,
    epoch: int,
    val_loss: float,
    extra: dict[str, Any] | None = None,
) -> None:
    """The model with everything needed to use it: architecture, normalisation, variables.

    ``extra`` adds the keys of grouped and two-stage models (``group``, ``n_inputs``,
    ``stage1``, ``feature_normalisation``; see hepae_core.two_stage).
    """
    from hepae_core.train import save_tensors

    payload = {
        "format": MODEL_FORMAT,
        "model_config": cfg["model"],
        "variables": list(norm.variables),
        "normalisation": norm.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": epoch,
        "val_loss": val_loss,
        **(extra or {}),
    }
    save_tensors(path, payload)


def write_evaluation(
    job_dir: Path, inputs, outputs, variables: list[str], kinds: list[str]
) -> None:
    """evaluation.npz: test jets in and out (physical units), for the summary plots."""
    import numpy as np

    path = job_dir / jobdir.EVAL
    with writing(path), jobdir.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            inputs=inputs,
            outputs=outputs,
            variables=np.array(variables),
            residual_kinds=np.array(kinds),
        )


def load_model(path: str | Path, allow_grouped: bool = False):
    """Load a saved model: returns (model in eval mode, normaliser, payload).

    Grouped and two-stage models (several jets per input) are refused unless
    ``allow_grouped``: code that feeds one jet at a time cannot use them.
    """
    import torch

    from hepae_core.models import build_model
    from hepae_core.normalise import Normaliser

    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != MODEL_FORMAT:
        raise HepaeError(source=str(path), key=None, message="is not a model saved by hepae_core")
    if payload.get("group") and not allow_grouped:
        raise HepaeError(
            source=str(path),
            key="data.group",
            message="is a grouped (collective) model taking several jets per input; this "
            "command handles one jet per input (see docs/collective.md)",
        )
    model = build_model(payload["model_config"], payload.get("n_inputs", len(payload["variables"])))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, Normaliser.from_dict(payload["normalisation"]), payload


# --------------------------------------------------------------------- writing the job dir


def _write_state(job_dir: Path, state: str, **fields: Any) -> None:
    """state.json, atomically; a full disk raises DiskFull naming it."""
    with writing(job_dir / jobdir.STATE):
        jobdir.write_state(job_dir, state, **fields)


def _write_text(path: Path, text: str) -> None:
    with writing(path):
        jobdir.atomic_write_text(path, text)


def _write_json(path: Path, obj: Any) -> None:
    with writing(path):
        jobdir.atomic_write_json(path, obj)


def _record_failure(job_dir: Path, kind: str, reason: str, code: int, t0: float) -> None:
    """Mark the attempt failed; on a full disk, overwrite state.json in place as a last resort.

    The atomic write needs room for a second copy; rewriting the existing file in place
    reuses its blocks, so the record still says what happened. ``epoch``/``epochs`` are
    always present, so status never shows ``0/None``.
    """
    previous = jobdir.read_state(job_dir) or {}
    fields: dict[str, Any] = {
        "error_kind": kind,
        "reason": reason,
        "exit_code": code,
        "finished": jobdir.now_iso(),
        "seconds": round(time.monotonic() - t0, 1),
        "epoch": previous.get("epoch") or 0,
        "epochs": previous.get("epochs") or _configured_epochs(job_dir),
    }
    try:
        jobdir.write_state(job_dir, jobdir.FAILED, **fields)
        return
    except OSError as exc:
        if not is_disk_full(exc):
            raise
    record = {**previous, **fields, "state": jobdir.FAILED, "updated": jobdir.now_iso()}
    data = (json.dumps(record, sort_keys=True) + "\n").encode()
    try:
        fd = os.open(job_dir / jobdir.STATE, os.O_WRONLY)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)
    except OSError:
        _say(f"error: {jobdir.STATE} could not be updated either (the disk is full)")


def _configured_epochs(job_dir: Path) -> int:
    """train.epochs of the job's config as far as it can be read, else the default."""
    from hepae_core.config import SCHEMA

    try:
        raw, _, _ = yamlio.load(job_dir / jobdir.CONFIG)
        epochs = raw["train"]["epochs"]
        if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0:
            return epochs
    except Exception:  # an unreadable config: the default is the best guess
        pass
    return SCHEMA["train"]["epochs"].default


# ----------------------------------------------------------------------- the job's steps


@dataclass
class Prepared:
    """The job's data after reading, cutting, splitting and normalising."""

    variables: list[str]
    norm: Any
    x_train: Any  # normalised, finite
    x_train_phys: Any  # the training jets in physical units (baseline quantiser ranges)
    x_val: Any
    x_test_phys: Any  # physical units, rows whose normalised values are finite
    x_test_norm: Any
    counts: dict[str, Any]
    # grouped and two-stage jobs (hepae_core.two_stage): flattened groups, masks of the
    # real slots, the model's input width and what model.pt must carry
    n_inputs: int | None = None
    m_train: Any = None
    m_val: Any = None
    m_test: Any = None
    grouped: Any = None
    model_extra: dict[str, Any] | None = None


def _setup_torch(cfg: dict[str, Any]):
    """Threads, device and the seed, before any model is built."""
    import torch

    from hepae_core.train import pick_device, pick_threads

    threads = pick_threads(cfg["train"]["threads"])
    torch.set_num_threads(threads)
    device = pick_device(cfg["train"]["device"])
    torch.manual_seed(cfg["seed"])  # before the model is built: its initial weights come from it
    return device, threads


def _prepare_data(job_dir: Path, cfg: dict[str, Any], jets: Any = None) -> Prepared:
    """Read, cut, split and normalise the jets; drop those outside the normalisation's domain.

    ``jets`` (what ``load_jets`` returned for this data section) lets a bundle read a
    sample once for all its members.
    """
    import numpy as np

    from hepae_core.config import group_of

    if group_of(cfg) is not None:
        from hepae_core.two_stage import prepare

        return prepare(job_dir, cfg)

    from hepae_core.data import load_jets, split
    from hepae_core.normalise import Normaliser

    if jets is None:
        jets = load_jets(cfg, job_dir)
    counts = dict(jets.counts)
    parts = split(
        len(jets.values), cfg["data"]["test_fraction"], cfg["train"]["val_fraction"], cfg["seed"]
    )
    norm = Normaliser.fit(cfg["normalisation"]["kind"], jets.variables, jets.values[parts.train])

    def normalised(rows: np.ndarray) -> np.ndarray:
        x = norm.forward(jets.values[rows])
        for var, n_bad in norm.domain_errors.items():
            counts[f"norm_domain_errors.{var}"] = counts.get(f"norm_domain_errors.{var}", 0) + n_bad
        return x

    # Jets outside a normalisation formula's domain cannot be normalised: drop them, and
    # count them in the metrics.
    x_train, x_val, x_test_norm = (
        normalised(rows) for rows in (parts.train, parts.val, parts.test)
    )
    ok_test = np.isfinite(x_test_norm).all(axis=1)
    x_test_phys, x_test_norm = jets.values[parts.test][ok_test], x_test_norm[ok_test]
    x_train = x_train[np.isfinite(x_train).all(axis=1)]
    x_val = x_val[np.isfinite(x_val).all(axis=1)]
    counts["norm_domain_errors"] = sum(
        v for k, v in counts.items() if k.startswith("norm_domain_errors.")
    )
    counts.update(train_jets=len(x_train), val_jets=len(x_val), test_jets=len(x_test_phys))
    return Prepared(
        jets.variables,
        norm,
        x_train,
        jets.values[parts.train],
        x_val,
        x_test_phys,
        x_test_norm,
        counts,
    )


def _build_trainer(
    job_dir: Path,
    cfg: dict[str, Any],
    data: Prepared,
    device,
    after_epoch: Callable[[dict[str, float]], None],
    stream=None,
):
    """The job's model and Trainer: the best model goes to model.pt, each epoch to
    history.csv and state.json, then ``after_epoch(rec)``. The single job and every member
    of a bundle train through this, so their files are the same."""
    import torch

    from hepae_core.models import build_model
    from hepae_core.train import Trainer, progress_printer

    tcfg = cfg["train"]
    model = build_model(cfg["model"], data.n_inputs or len(data.variables)).to(device)
    report = progress_printer(tcfg["epochs"], stream=stream)

    def on_best(epoch: int, val_loss: float) -> None:
        save_model(job_dir / jobdir.MODEL, model, cfg, data.norm, epoch, val_loss, data.model_extra)

    def on_epoch(rec: dict[str, float]) -> None:
        _write_text(job_dir / jobdir.HISTORY, history_csv(trainer.result.history))
        _write_state(
            job_dir,
            jobdir.RUNNING,
            epoch=int(rec["epoch"]),
            epochs=tcfg["epochs"],
            train_loss=rec["train_loss"],
            val_loss=rec["val_loss"],
        )
        after_epoch(rec)
        report(rec)

    def tensor(x):
        return None if x is None else torch.from_numpy(x).to(device)

    trainer = Trainer(
        model,
        tensor(data.x_train),
        tensor(data.x_val),
        tcfg,
        cfg["seed"],
        job_dir / jobdir.CHECKPOINT,
        on_best=on_best,
        on_epoch=on_epoch,
        m_train=tensor(data.m_train),
        m_val=tensor(data.m_val),
    )
    return trainer


def _train(
    job_dir: Path,
    cfg: dict[str, Any],
    data: Prepared,
    device,
    threads: int,
    fresh: bool,
    heartbeat: jobdir.Heartbeat,
):
    """Train (resuming from the checkpoint unless ``fresh``); returns (trainer, result)."""
    from hepae_core.models import describe
    from hepae_core.tensorboard import open_scalars
    from hepae_core.train import StopFlag

    scalars = open_scalars(job_dir, cfg)  # refuses a missing optional extra before training
    stop = StopFlag().install()

    def after_epoch(rec: dict[str, float]) -> None:
        heartbeat.beat()
        if scalars is not None:
            scalars(rec)

    trainer = _build_trainer(job_dir, cfg, data, device, after_epoch)
    if not fresh and trainer.resume():
        _say(f"resuming from {jobdir.CHECKPOINT}: epoch {trainer.epoch}, batch {trainer.batch}")
    _say(
        f"training {describe(cfg['model'], data.n_inputs or len(data.variables))} on "
        f"{data.counts['train_jets']} jets, "
        f"{device.type}, {threads} thread(s)"
    )
    try:
        result = trainer.run(stop)
    finally:
        stop.restore()
        if scalars is not None:
            scalars.close()
    return trainer, result


def _evaluate(job_dir: Path, cfg: dict[str, Any], data: Prepared, device):
    """The best model on the test jets: (model, test loss, metrics, inputs, outputs)."""
    import numpy as np
    import torch

    from hepae_core.config import residual_kinds
    from hepae_core.evaluate import evaluate
    from hepae_core.train import evaluate_loss

    best, _, _ = load_model(job_dir / jobdir.MODEL, allow_grouped=True)
    best = best.to(device)
    mask = None if data.m_test is None else torch.from_numpy(data.m_test).to(device)
    test_loss = evaluate_loss(best, torch.from_numpy(data.x_test_norm).to(device), mask)
    kinds = residual_kinds(cfg)
    if data.grouped is not None:
        from hepae_core.two_stage import choice_metrics, evaluate_grouped

        g = data.grouped
        g.codec.model, g.codec.device = best, device
        if g.codec.stage1 is not None:
            g.codec.stage1 = g.codec.stage1.to(device)
        metrics, x_eval, out = evaluate_grouped(
            g.codec, data.x_test_phys, g.test_rows, g.train_rows, kinds, cfg["evaluate"],
            stage1=g.codec.stage1,
        )  # fmt: skip
        if g.stage1 is not None:
            metrics.update(choice_metrics(g.stage1))
        for var in cfg["evaluate"]["round"]:
            j = data.variables.index(var)
            out[:, j] = np.round(out[:, j])
        return best, test_loss, metrics, x_eval, out
    x_eval = data.x_test_phys[slice(0, cfg["evaluate"]["max_jets"])]
    ecfg = cfg["evaluate"]
    metrics, out = evaluate(
        best, data.norm, x_eval, kinds, cfg["model"]["latent"], device, ecfg["timing_jets"],
        x_train=data.x_train_phys, baselines=ecfg["baselines"], bits=tuple(ecfg["bits"]),
        pca_components=ecfg["pca_components"],
        model_bytes=(job_dir / jobdir.MODEL).stat().st_size,
    )  # fmt: skip
    for var in cfg["evaluate"]["round"]:
        j = data.variables.index(var)
        out[:, j] = np.round(out[:, j])
    return best, test_loss, metrics, x_eval, out


def _write_outputs(
    job_dir: Path, cfg: dict[str, Any], data: Prepared, history, x_eval, out
) -> None:
    """evaluation.npz and, when asked for, the job's plots."""
    from hepae_core import plots
    from hepae_core.config import residual_kinds
    from hepae_core.residuals import residuals

    kinds = residual_kinds(cfg)
    kind_list = [kinds[v] for v in data.variables]
    sample = slice(0, EVAL_SAMPLE)
    write_evaluation(job_dir, x_eval[sample], out[sample], data.variables, kind_list)
    if not cfg["evaluate"]["plots"]:
        return
    plot_dir = job_dir / jobdir.PLOTS
    with writing(plot_dir):
        plot_dir.mkdir(exist_ok=True)
    title = cfg.get("name") or job_dir.name
    with writing(plot_dir / "loss.png"):
        plots.loss_curves(history, plot_dir / "loss.png", title)
    with writing(plot_dir / "input_vs_output.png"):
        plots.input_vs_output(
            x_eval[sample], out[sample], data.variables, plot_dir / "input_vs_output.png"
        )
    with writing(plot_dir / "residuals.png"):
        plots.residual_histograms(
            residuals(x_eval, out, kind_list),
            data.variables,
            kind_list,
            plot_dir / "residuals.png",
        )


def _metrics(cfg, data: Prepared, result, best, test_loss, metrics, device, threads) -> dict:
    """The flat metrics.json record (docs/metrics.md)."""
    import torch

    from hepae_core.models import count_parameters

    last = result.history[-1]
    return {
        "schema_version": 1,
        "status": jobdir.DONE,
        "name": cfg.get("name"),
        **flatten_params(cfg),
        "n_inputs": data.n_inputs or len(data.variables),
        "latent": cfg["model"]["latent"],
        "n_params": count_parameters(best),
        "variables": ",".join(data.variables),
        **data.counts,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "final_train_loss": last["train_loss"],
        "final_val_loss": last["val_loss"],
        "test_loss": test_loss,
        "early_stopped": result.early_stopped,
        "train_time_s": result.train_time_s,
        "train_jets_per_s": result.jets_per_s,
        "stack_size": result.stack_size,
        "stack_jets_per_s": result.stack_jets_per_s,
        "device": device.type,
        "threads": threads,
        "torch_version": torch.__version__,
        **metrics,
    }


def _train_and_evaluate(
    job_dir: Path, cfg: dict[str, Any], fresh: bool, heartbeat: jobdir.Heartbeat
) -> int:
    """Data, training, evaluation and the job's files; returns the exit code."""
    device, threads = _setup_torch(cfg)
    data = _prepare_data(job_dir, cfg)
    trainer, result = _train(job_dir, cfg, data, device, threads, fresh, heartbeat)
    if result.interrupted:
        _write_state(job_dir, jobdir.INTERRUPTED, signal=result.signal_name, epoch=trainer.epoch)
        _say(f"interrupted by {result.signal_name}: checkpoint written")
        return EXIT_INTERRUPTED
    if result.best_epoch == 0:
        raise FloatingPointError("no epoch produced a finite validation loss")
    best, test_loss, metrics, x_eval, out = _evaluate(job_dir, cfg, data, device)
    _write_outputs(job_dir, cfg, data, result.history, x_eval, out)
    record = _metrics(cfg, data, result, best, test_loss, metrics, device, threads)
    record["attempts"] = (jobdir.read_state(job_dir) or {}).get("attempt", 1)
    _write_json(job_dir / jobdir.METRICS, record)
    _write_state(job_dir, jobdir.DONE, finished=jobdir.now_iso(), exit_code=EXIT_OK)
    jobdir.retire_checkpoint(job_dir)  # kept as final.pt for gridsearch promote
    _say(
        f"done: best val loss {result.best_val_loss:.4e} at epoch {result.best_epoch}; "
        f"pt width {metrics.get('ae.pt.width', float('nan')):.3e}"
    )
    return EXIT_OK


# ----------------------------------------------------------------------- output and entry


class _PipeSafe(io.TextIOBase):
    """A stdout/stderr that goes quiet when its reader has gone (``| head``, closed pipe).

    The job's outcome is in its files; losing the reader of its messages must never turn
    a finished job into a failed one. On a broken pipe the file descriptor is pointed at
    /dev/null, so the interpreter's flush at exit does not fail either.
    """

    def __init__(self, stream) -> None:
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
        return self._stream.fileno()

    @property
    def encoding(self):  # type: ignore[override]
        return self._stream.encoding


@contextlib.contextmanager
def _pipe_safe_output():
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _PipeSafe(sys.stdout), _PipeSafe(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _say(text: str) -> None:
    """One line for the user (job.log under a scheduler)."""
    print(text, file=sys.stderr, flush=True)


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
            _write_state(job_dir, jobdir.RUNNING, epochs=cfg["train"]["epochs"])
            return _train_and_evaluate(job_dir, cfg, fresh=force, heartbeat=heartbeat)
    except HepaeError as exc:
        kind = getattr(exc, "error_kind", "bad_input")  # stage1_not_done: waits on stage 1
        _record_failure(job_dir, kind, str(exc), exc.exit_code, t0)
        _say(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        jobdir.write_state(job_dir, jobdir.INTERRUPTED, signal="SIGINT")
        _say("interrupted (Ctrl-C): resume by running the job again")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if is_disk_full(exc):
            full = exc if isinstance(exc, DiskFull) else DiskFull(_filename(exc, job_dir))
            _record_failure(job_dir, full.error_kind, str(full), full.exit_code, t0)
            _say(f"error: {full}")
            return full.exit_code
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        _record_failure(job_dir, "python_error", reason, EXIT_FAILED, t0)
        traceback.print_exc()
        _say(f"error: job failed: {reason}")
        return EXIT_FAILED


def _filename(exc: BaseException, job_dir: Path) -> str:
    """The file an OSError names, else the job dir."""
    name = getattr(exc, "filename", None) or getattr(exc.__context__, "filename", None)
    return str(name or job_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hepae_core.job",
        description="Train and evaluate the autoencoder described by DIR/config.yaml.",
    )
    parser.add_argument("job_dir", type=Path, help="job directory holding config.yaml")
    parser.add_argument("--force", action="store_true", help="rerun a finished job from scratch")
    args = parser.parse_args(argv)
    return run_job(args.job_dir, force=args.force)


if __name__ == "__main__":
    sys.exit(main())
