"""One run of one job directory: :class:`JobRun`, shared by the single job and the bundle.

``python -m hepae_core.job DIR`` (hepae_core.job) runs one JobRun; ``python -m
hepae_core.bundle DIR...`` (hepae_core.bundle) runs one per member and may train several of
their Trainers as one stack. Either way a job dir goes through the same steps, writes the
same files through the same writers and ends in the same words (docs/jobdir.md):

1. :meth:`JobRun.setup` - threads, device, the seed (before any model is built);
2. :meth:`JobRun.prepare` - the data (:mod:`hepae_core.data.prepared`, or
   :func:`hepae_core.training.two_stage.prepare` for grouped and two-stage models);
3. :meth:`JobRun.build_trainer` - the model and its Trainer (model.pt on each best epoch,
   history.csv and state.json each epoch), resumed from checkpoint.pt when there is one;
4. training - :meth:`JobRun.train` alone, or the bundle's stack;
5. :meth:`JobRun.end` - :meth:`JobRun.finish` (evaluation, evaluation.npz, plots,
   metrics.json, state ``done``) or :meth:`JobRun.interrupted`;
6. :func:`fail` - any exception, through the one table :data:`FAILURES` of
   ``error_kind`` / exit code / whether a traceback helps.

Every file goes through :func:`write_json` / :func:`write_text` / :func:`write_state` (or
``train.save_tensors`` for model.pt and checkpoints): atomic (temp + rename), and a full
disk raises :class:`~hepae_core.diskfull.DiskFull` naming the file, recorded as
``disk_full``.
"""

from __future__ import annotations

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
from typing import TYPE_CHECKING, Any

from hepae_core import jobdir, yamlio
from hepae_core.data.prepared import Prepared, prepare_jets
from hepae_core.diskfull import DiskFull, is_disk_full, writing
from hepae_core.errors import HepaeError
from hepae_core.run.modelfile import load_model, save_model
from hepae_core.states import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

if TYPE_CHECKING:  # numpy and torch are imported where a step needs them
    import numpy as np
    import torch

    from hepae_core.training.train import Trainer, TrainResult

EVAL_SAMPLE = 50_000  # test jets kept in evaluation.npz for the summary plots


def say(text: str) -> None:
    """One line for the user (job.log under a scheduler)."""
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------- the job dir's writers


def write_state(job_dir: Path, state: str, **fields: Any) -> None:
    """state.json, atomically; a full disk raises DiskFull naming it."""
    with writing(Path(job_dir) / jobdir.STATE):
        jobdir.write_state(job_dir, state, **fields)


def write_text(path: Path, text: str) -> None:
    """A text file, atomically; a full disk raises DiskFull naming it."""
    with writing(path):
        jobdir.atomic_write_text(path, text)


def write_json(path: Path, obj: Any) -> None:
    """A JSON file, atomically; a full disk raises DiskFull naming it."""
    with writing(path):
        jobdir.atomic_write_json(path, obj)


def write_evaluation(
    job_dir: Path, inputs: np.ndarray, outputs: np.ndarray, variables: list[str], kinds: list[str]
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


# ------------------------------------------------------------------------- failures


@dataclass(frozen=True)
class Failure:
    """How an exception ends a job: state.json's ``error_kind`` and ``reason``, the exit
    code, the line for the user, and whether a traceback is printed (unexpected errors)."""

    kind: str
    reason: str
    exit_code: int
    message: str
    traceback: bool = False


def _user_error(exc: BaseException, job_dir: Path) -> Failure:
    # stage1_not_done (a stage-2 job waiting on stage 1) has its own kind; others bad_input
    kind = getattr(exc, "error_kind", "bad_input")
    return Failure(kind, str(exc), exc.exit_code, f"error: {exc}")  # type: ignore[attr-defined]


def _disk_full(exc: BaseException, job_dir: Path) -> Failure:
    full = exc if isinstance(exc, DiskFull) else DiskFull(_filename(exc, job_dir))
    return Failure(full.error_kind, str(full), full.exit_code, f"error: {full}")


def _diverged(exc: BaseException, job_dir: Path) -> Failure:
    reason = _one_line(exc)
    return Failure("nan", reason, EXIT_FAILED, f"error: job failed: {reason}")


def _python_error(exc: BaseException, job_dir: Path) -> Failure:
    reason = _one_line(exc)
    return Failure("python_error", reason, EXIT_FAILED, f"error: job failed: {reason}", True)


#: The one failure table, first match wins: (which exceptions, how they end the job).
#: A diverging training (non-finite loss, or no epoch with a finite validation loss)
#: is ``nan``, alone and in a bundle alike (docs/jobdir.md, docs/bundles.md).
FAILURES: tuple[tuple[Callable[[BaseException], bool], Callable[..., Failure]], ...] = (
    (lambda e: isinstance(e, HepaeError), _user_error),
    (is_disk_full, _disk_full),
    (lambda e: isinstance(e, FloatingPointError), _diverged),
    (lambda e: True, _python_error),
)


def failure_of(exc: BaseException, job_dir: Path) -> Failure:
    """The row of :data:`FAILURES` that ``exc`` matches, filled in."""
    for matches, describe in FAILURES:
        if matches(exc):
            return describe(exc, job_dir)
    raise AssertionError("the last row matches everything")  # pragma: no cover


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


def _filename(exc: BaseException, job_dir: Path) -> str:
    """The file an OSError names, else the job dir."""
    name = getattr(exc, "filename", None) or getattr(exc.__context__, "filename", None)
    return str(name or job_dir)


def fail(
    job_dir: Path,
    exc: BaseException,
    started: float,
    tell: Callable[[str], None] = say,
) -> int:
    """Record ``exc`` as the job's failure (state.json), tell the user; returns the exit code."""
    f = failure_of(exc, job_dir)
    record_failure(job_dir, f.kind, f.reason, f.exit_code, started)
    if f.traceback:
        traceback.print_exception(exc)
    tell(f.message)
    return f.exit_code


def record_failure(job_dir: Path, kind: str, reason: str, code: int, started: float) -> None:
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
        "seconds": round(time.monotonic() - started, 1),
        "epoch": previous.get("epoch") or 0,
        "epochs": previous.get("epochs") or configured_epochs(job_dir),
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
        say(f"error: {jobdir.STATE} could not be updated either (the disk is full)")


def configured_epochs(job_dir: Path) -> int:
    """train.epochs of the job's config as far as it can be read, else the default."""
    from hepae_core.config import SCHEMA

    try:
        raw, _, _ = yamlio.load(job_dir / jobdir.CONFIG)
        epochs = raw["train"]["epochs"]
        if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0:
            return epochs
    except Exception:  # an unreadable config: the default is the best guess
        pass
    default: int = SCHEMA["train"]["epochs"].default
    return default


def record_interrupted(job_dir: Path, signal_name: str | None, epoch: int | None = None) -> None:
    """state.json says ``interrupted`` (by ``signal_name``; at ``epoch`` when known)."""
    fields: dict[str, Any] = {"signal": signal_name}
    if epoch is not None:
        fields["epoch"] = epoch
    write_state(job_dir, jobdir.INTERRUPTED, **fields)


# ------------------------------------------------------------------------- the run


class JobRun:
    """One run of the job in ``job_dir`` (config ``cfg`` already loaded and checked).

    Parameters
    ----------
    tell
        Where the run's lines go (a bundle prefixes them with the member's name).
    stream
        The per-epoch progress stream (None: stderr, a bar on a terminal).
    heartbeat
        Beaten at each epoch's end.
    fresh
        Ignore checkpoint.pt (``--force``).
    """

    def __init__(
        self,
        job_dir: Path,
        cfg: dict[str, Any],
        *,
        tell: Callable[[str], None] = say,
        stream: Any = None,
        heartbeat: jobdir.Heartbeat | None = None,
        fresh: bool = False,
        started: float | None = None,
    ) -> None:
        self.job_dir = Path(job_dir)
        self.cfg = cfg
        self.tell = tell
        self.stream = stream
        self.heartbeat = heartbeat
        self.fresh = fresh
        self.started = time.monotonic() if started is None else started
        self.device: Any = None
        self.threads = 1
        self.data: Prepared | None = None
        self.trainer: Any = None
        self.scalars: Any = None

    # 1 ------------------------------------------------------------------------ setup
    def setup(self, threads: int | None = None) -> None:
        """Threads (``threads``, else the job's own choice), device and the seed.

        Seeded before the data and any model: a model's initial weights come from it.
        """
        import torch

        from hepae_core.training.train import pick_device, pick_threads

        if threads is None:
            threads = pick_threads(self.cfg["train"]["threads"])
            torch.set_num_threads(threads)
        self.threads = threads
        self.device = pick_device(self.cfg["train"]["device"])
        torch.manual_seed(self.cfg["seed"])

    # 2 ---------------------------------------------------------------------- prepare
    def prepare(self, jets: Any = None) -> Prepared:
        """Read, cut, split and normalise the jets (``jets``: already read, a bundle's)."""
        from hepae_core.config import group_of

        if group_of(self.cfg) is not None:
            from hepae_core.training.two_stage import prepare

            self.data = prepare(self.job_dir, self.cfg)
        else:
            self.data = prepare_jets(self.job_dir, self.cfg, jets)
        return self.data

    @property
    def prepared(self) -> Prepared:
        """The data of :meth:`prepare` (which every later step follows)."""
        assert self.data is not None, "JobRun.prepare comes before this step"
        return self.data

    # 3 ---------------------------------------------------------------- build trainer
    def build_trainer(self) -> Trainer:
        """The model and its Trainer, resumed from checkpoint.pt unless ``fresh``.

        The best model goes to model.pt, each epoch to history.csv and state.json; the
        heartbeat and TensorBoard (refused before training when its extra is missing)
        follow each epoch.
        """
        import torch

        from hepae_core.training.models import build_model, describe
        from hepae_core.training.tensorboard import open_scalars
        from hepae_core.training.train import Trainer, progress_printer

        cfg, data, job_dir, device = self.cfg, self.prepared, self.job_dir, self.device
        tcfg = cfg["train"]
        self.scalars = open_scalars(job_dir, cfg)
        model = build_model(cfg["model"], data.width).to(device)
        report = progress_printer(tcfg["epochs"], stream=self.stream)

        def on_best(epoch: int, val_loss: float) -> None:
            extra = {**(data.model_extra or {}), **trainer.model_extra()} or data.model_extra
            save_model(job_dir / jobdir.MODEL, model, cfg, data.norm, epoch, val_loss,
                       extra)  # fmt: skip

        def on_epoch(rec: dict[str, float]) -> None:
            write_text(job_dir / jobdir.HISTORY, history_csv(trainer.result.history))
            write_state(
                job_dir,
                jobdir.RUNNING,
                epoch=int(rec["epoch"]),
                epochs=tcfg["epochs"],
                train_loss=rec["train_loss"],
                val_loss=rec["val_loss"],
                jets_per_s=rec["jets_per_s"],  # its own rate, as if alone (status --watch)
                stack_size=rec.get("stack_size", 1),
            )
            if self.heartbeat is not None:
                self.heartbeat.beat()
            if self.scalars is not None:
                self.scalars(rec)
            report(rec)

        def tensor(x: np.ndarray | None) -> torch.Tensor | None:
            return None if x is None else torch.from_numpy(x).to(device)

        trainer = Trainer(
            model,
            torch.from_numpy(data.x_train).to(device),
            torch.from_numpy(data.x_val).to(device),
            tcfg,
            cfg["seed"],
            job_dir / jobdir.CHECKPOINT,
            on_best=on_best,
            on_epoch=on_epoch,
            m_train=tensor(data.m_train),
            m_val=tensor(data.m_val),
            norm=data.norm,  # train.augment works in physical units
        )
        self.trainer = trainer
        if not self.fresh and trainer.resume():
            self.tell(
                f"resuming from {jobdir.CHECKPOINT}: epoch {trainer.epoch}, batch {trainer.batch}"
            )
        self.tell(
            f"training {describe(cfg['model'], data.width)} on {data.counts['train_jets']} "
            f"jets, {device.type}, {self.threads} thread(s)"
        )
        return trainer

    # 4 ------------------------------------------------------------------------ train
    def train(self, stop: Any) -> TrainResult:
        """Train alone until done or ``stop`` (a StopFlag) is set; returns the TrainResult."""
        try:
            result: TrainResult = self.trainer.run(stop)
            return result
        finally:
            self.close()

    def close(self) -> None:
        """Close what training opened (TensorBoard); called once training has ended."""
        if self.scalars is not None:
            self.scalars.close()
            self.scalars = None

    # 5 -------------------------------------------------------------------------- end
    def end(self, result: Any) -> int:
        """How a training that returned ends: interrupted, or finished; the exit code."""
        if result.interrupted:
            return self.interrupted(result.signal_name)
        return self.finish(result)

    def interrupted(self, signal_name: str | None, trained: bool = True) -> int:
        """state.json ``interrupted`` (the checkpoint is written by the trainer); 75."""
        epoch = self.trainer.epoch if self.trainer is not None else None
        record_interrupted(self.job_dir, signal_name, epoch)
        if trained:
            self.tell(f"interrupted by {signal_name}: checkpoint written")
        return EXIT_INTERRUPTED

    def evaluate(self) -> tuple[Any, float, dict[str, Any], np.ndarray, np.ndarray]:
        """The best model on the test jets: (model, test loss, metrics, inputs, outputs)."""
        import numpy as np
        import torch

        from hepae_core.config import residual_kinds
        from hepae_core.evaluation.baseline_cache import campaign_cache_dir
        from hepae_core.evaluation.evaluate import evaluate
        from hepae_core.training.train import evaluate_loss

        cfg, data, job_dir, device = self.cfg, self.prepared, self.job_dir, self.device
        best, _, payload = load_model(job_dir / jobdir.MODEL, allow_grouped=True)
        best = best.to(device)
        mask = None if data.m_test is None else torch.from_numpy(data.m_test).to(device)
        test_loss = evaluate_loss(best, torch.from_numpy(data.x_test_norm).to(device), mask)
        kinds = residual_kinds(cfg)
        ecfg = cfg["evaluate"]
        if data.group is not None:  # grouped and two-stage models
            from hepae_core.training.two_stage import evaluate_prepared

            metrics, x_eval, out = evaluate_prepared(data, best, kinds, ecfg, device)
        else:
            x_eval = data.x_test_phys[slice(0, ecfg["max_jets"])]
            metrics, out = evaluate(
                best, data.norm, x_eval, kinds, cfg["model"]["latent"], device,
                ecfg["timing_jets"], x_train=data.x_train_phys, baselines=ecfg["baselines"],
                bits=tuple(ecfg["bits"]), pca_components=ecfg["pca_components"],
                model_bytes=(job_dir / jobdir.MODEL).stat().st_size,
                baseline_cache=campaign_cache_dir(job_dir),
            )  # fmt: skip
            from hepae_core.training.rate_model import job_rate_metrics  # train.rate_lambda > 0

            kind_list = [kinds[v] for v in data.variables]
            metrics.update(job_rate_metrics(payload, best, data.norm, x_eval, kind_list, device))
        for var in ecfg["round"]:
            j = data.variables.index(var)
            out[:, j] = np.round(out[:, j])
        return best, test_loss, metrics, x_eval, out

    def write_outputs(
        self, history: list[dict[str, float]], x_eval: np.ndarray, out: np.ndarray
    ) -> None:
        """evaluation.npz and, when asked for, the job's plots."""
        from hepae_core.config import residual_kinds
        from hepae_core.evaluation import plots
        from hepae_core.evaluation.residuals import residuals

        cfg, data, job_dir = self.cfg, self.prepared, self.job_dir
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

    def metrics(
        self, result: TrainResult, best: Any, test_loss: float, metrics: dict[str, Any]
    ) -> dict[str, Any]:
        """The flat metrics.json record (docs/metrics.md)."""
        import torch

        from hepae_core.training.models import count_parameters

        cfg, data = self.cfg, self.prepared
        last = result.history[-1]
        return {
            "schema_version": 1,
            "status": jobdir.DONE,
            "name": cfg.get("name"),
            **flatten_params(cfg),
            "n_inputs": data.width,
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
            "device": self.device.type,
            "threads": self.threads,
            "torch_version": torch.__version__,
            **metrics,
        }

    def finish(self, result: Any) -> int:
        """Evaluate the best model and write the job's files; state ``done``; 0.

        A training without one epoch of finite validation loss diverged (``nan``).
        """
        if result.best_epoch == 0:
            raise FloatingPointError("no epoch produced a finite validation loss")
        best, test_loss, metrics, x_eval, out = self.evaluate()
        self.write_outputs(result.history, x_eval, out)
        record = self.metrics(result, best, test_loss, metrics)
        record["attempts"] = (jobdir.read_state(self.job_dir) or {}).get("attempt", 1)
        write_json(self.job_dir / jobdir.METRICS, record)
        write_state(self.job_dir, jobdir.DONE, finished=jobdir.now_iso(), exit_code=EXIT_OK)
        jobdir.retire_checkpoint(self.job_dir)  # kept as final.pt for gridsearch promote
        self.tell(
            f"done: best val loss {result.best_val_loss:.4e} at epoch {result.best_epoch}; "
            f"pt width {metrics.get('ae.pt.width', float('nan')):.3e}"
        )
        return EXIT_OK

    # 6 ------------------------------------------------------------------------- fail
    def fail(self, exc: BaseException) -> int:
        """Record ``exc`` as this job's failure (:data:`FAILURES`); the exit code."""
        self.close()
        return fail(self.job_dir, exc, self.started, self.tell)
