"""Run one job directory: ``python -m hepae_core.job DIR [--force]``.

Reads DIR/config.yaml, trains, evaluates and writes the job's files atomically (see
docs/jobdir.md). Exit codes: 0 done, 1 failed, 2 bad input, 75 interrupted (resume me).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from hepae_core import jobdir
from hepae_core.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    HepaeError,
)

EVAL_SAMPLE = 50_000  # test jets kept in evaluation.npz for the summary plots
MODEL_FORMAT = "hepae-model-1"


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


def save_model(path: Path, model, cfg: dict[str, Any], norm, epoch: int, val_loss: float) -> None:
    """The model with everything needed to use it: architecture, normalisation, variables."""
    import torch

    payload = {
        "format": MODEL_FORMAT,
        "model_config": cfg["model"],
        "variables": list(norm.variables),
        "normalisation": norm.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": epoch,
        "val_loss": val_loss,
    }
    with jobdir.atomic_path(path) as tmp:
        torch.save(payload, tmp)


def write_evaluation(
    job_dir: Path, inputs, outputs, variables: list[str], kinds: list[str]
) -> None:
    """evaluation.npz: test jets in and out (physical units), for the summary plots."""
    import numpy as np

    with jobdir.atomic_path(job_dir / jobdir.EVAL) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            inputs=inputs,
            outputs=outputs,
            variables=np.array(variables),
            residual_kinds=np.array(kinds),
        )


def load_model(path: str | Path):
    """Load a saved model: returns (model in eval mode, normaliser, payload)."""
    import torch

    from hepae_core.models import build_model
    from hepae_core.normalise import Normaliser

    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != MODEL_FORMAT:
        raise HepaeError(source=str(path), key=None, message="is not a model saved by hepae_core")
    model = build_model(payload["model_config"], len(payload["variables"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, Normaliser.from_dict(payload["normalisation"]), payload


def _train_and_evaluate(job_dir: Path, cfg: dict[str, Any], fresh: bool) -> int:
    import numpy as np
    import torch

    from hepae_core import plots
    from hepae_core.config import residual_kinds
    from hepae_core.data import load_jets, split
    from hepae_core.evaluate import evaluate
    from hepae_core.models import build_model, count_parameters, describe
    from hepae_core.normalise import Normaliser
    from hepae_core.residuals import residuals
    from hepae_core.train import (
        StopFlag,
        Trainer,
        pick_device,
        pick_threads,
        progress_printer,
    )

    tcfg = cfg["train"]
    threads = pick_threads(tcfg["threads"])
    torch.set_num_threads(threads)
    device = pick_device(tcfg["device"])
    seed = cfg["seed"]
    torch.manual_seed(seed)  # before the model is built: its initial weights come from it
    stop = StopFlag().install()

    jets = load_jets(cfg, job_dir)
    counts = dict(jets.counts)
    parts = split(len(jets.values), cfg["data"]["test_fraction"], tcfg["val_fraction"], seed)
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

    model = build_model(cfg["model"], len(jets.variables)).to(device)
    xt = torch.from_numpy(x_train).to(device)
    xv = torch.from_numpy(x_val).to(device)
    report = progress_printer(tcfg["epochs"])
    history_path = job_dir / jobdir.HISTORY

    def on_best(epoch: int, val_loss: float) -> None:
        save_model(job_dir / jobdir.MODEL, model, cfg, norm, epoch, val_loss)

    def on_epoch(rec: dict[str, float]) -> None:
        jobdir.atomic_write_text(history_path, history_csv(trainer.result.history))
        jobdir.write_state(
            job_dir,
            jobdir.RUNNING,
            epoch=int(rec["epoch"]),
            epochs=tcfg["epochs"],
            train_loss=rec["train_loss"],
            val_loss=rec["val_loss"],
        )
        report(rec)

    trainer = Trainer(
        model, xt, xv, tcfg, seed, job_dir / jobdir.CHECKPOINT, on_best=on_best, on_epoch=on_epoch
    )
    if not fresh and trainer.resume():
        print(
            f"resuming from {jobdir.CHECKPOINT}: epoch {trainer.epoch}, batch {trainer.batch}",
            file=sys.stderr,
        )
    print(
        f"training {describe(cfg['model'], len(jets.variables))} on {len(x_train)} jets, "
        f"{device.type}, {threads} thread(s)",
        file=sys.stderr,
        flush=True,
    )
    result = trainer.run(stop)
    stop.restore()
    if result.interrupted:
        jobdir.write_state(
            job_dir, jobdir.INTERRUPTED, signal=result.signal_name, epoch=trainer.epoch
        )
        print(f"interrupted by {result.signal_name}: checkpoint written", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.best_epoch == 0:
        raise FloatingPointError("no epoch produced a finite validation loss")

    best, _, _ = load_model(job_dir / jobdir.MODEL)
    best = best.to(device)
    from hepae_core.train import evaluate_loss

    test_loss = evaluate_loss(best, torch.from_numpy(x_test_norm).to(device))
    kinds = residual_kinds(cfg)
    eval_rows = slice(0, cfg["evaluate"]["max_jets"])
    x_eval = x_test_phys[eval_rows]
    ecfg = cfg["evaluate"]
    metrics, out = evaluate(
        best, norm, x_eval, kinds, cfg["model"]["latent"], device, ecfg["timing_jets"],
        x_train=jets.values[parts.train], baselines=ecfg["baselines"], bits=tuple(ecfg["bits"]),
        pca_components=ecfg["pca_components"],
    )  # fmt: skip
    for var in cfg["evaluate"]["round"]:
        if var in jets.variables:
            j = jets.variables.index(var)
            out[:, j] = np.round(out[:, j])

    kind_list = [kinds[v] for v in jets.variables]
    sample = slice(0, EVAL_SAMPLE)
    write_evaluation(job_dir, x_eval[sample], out[sample], jets.variables, kind_list)
    if cfg["evaluate"]["plots"]:
        plot_dir = job_dir / jobdir.PLOTS
        plot_dir.mkdir(exist_ok=True)
        title = cfg.get("name") or job_dir.name
        plots.loss_curves(result.history, plot_dir / "loss.png", title)
        plots.input_vs_output(
            x_eval[sample], out[sample], jets.variables, plot_dir / "input_vs_output.png"
        )
        plots.residual_histograms(
            residuals(x_eval, out, kind_list), jets.variables, kind_list, plot_dir / "residuals.png"
        )

    state = jobdir.read_state(job_dir) or {}
    last = result.history[-1]
    all_metrics: dict[str, Any] = {
        "schema_version": 1,
        "status": jobdir.DONE,
        "name": cfg.get("name"),
        **flatten_params(cfg),
        "n_inputs": len(jets.variables),
        "latent": cfg["model"]["latent"],
        "n_params": count_parameters(best),
        "variables": ",".join(jets.variables),
        **{k: v for k, v in counts.items()},
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "final_train_loss": last["train_loss"],
        "final_val_loss": last["val_loss"],
        "test_loss": test_loss,
        "early_stopped": result.early_stopped,
        "train_time_s": result.train_time_s,
        "train_jets_per_s": result.jets_per_s,
        "device": device.type,
        "threads": threads,
        "torch_version": torch.__version__,
        "attempts": state.get("attempt", 1),
        **metrics,
    }
    jobdir.atomic_write_json(job_dir / jobdir.METRICS, all_metrics)
    jobdir.write_state(job_dir, jobdir.DONE, finished=jobdir.now_iso(), exit_code=EXIT_OK)
    (job_dir / jobdir.CHECKPOINT).unlink(missing_ok=True)
    print(
        f"done: best val loss {result.best_val_loss:.4e} at epoch {result.best_epoch}; "
        f"pt width {metrics.get('ae.pt.width', float('nan')):.3e}",
        file=sys.stderr,
    )
    return EXIT_OK


def run_job(job_dir: str | Path, force: bool = False) -> int:
    """Run the job in ``job_dir``; returns the exit code (see module docstring)."""
    from hepae_core.config import load

    job_dir = Path(job_dir).resolve()
    if not (job_dir / jobdir.CONFIG).is_file():
        print(
            f"error: {job_dir}: no {jobdir.CONFIG} here; a job directory needs one "
            "(gridsearch plan writes them)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    previous = jobdir.read_state(job_dir) or {}
    if previous.get("state") == jobdir.DONE and not force:
        print(f"{job_dir.name}: already done; nothing to do (--force reruns it)", file=sys.stderr)
        return EXIT_OK
    if force:
        (job_dir / jobdir.CHECKPOINT).unlink(missing_ok=True)
    jobdir.start_attempt(job_dir)
    t0 = time.monotonic()
    try:
        cfg = load(job_dir / jobdir.CONFIG)
        return _train_and_evaluate(job_dir, cfg, fresh=force)
    except HepaeError as exc:
        _record_failure(job_dir, "bad_input", str(exc), exc.exit_code, t0)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        jobdir.write_state(job_dir, jobdir.INTERRUPTED, signal="SIGINT")
        print("interrupted (Ctrl-C): resume by running the job again", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        _record_failure(job_dir, "python_error", reason, EXIT_FAILED, t0)
        traceback.print_exc()
        print(f"error: job failed: {reason}", file=sys.stderr)
        return EXIT_FAILED


def _record_failure(job_dir: Path, kind: str, reason: str, code: int, t0: float) -> None:
    jobdir.write_state(
        job_dir,
        jobdir.FAILED,
        error_kind=kind,
        reason=reason,
        exit_code=code,
        finished=jobdir.now_iso(),
        seconds=round(time.monotonic() - t0, 1),
    )


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
