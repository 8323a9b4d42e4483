"""Synthetic campaigns: job directories shaped like real ones, for tests and benchmarks.

:func:`make_campaign` writes ``manifest.json`` and ``jobs/<id>/`` with ``config.yaml``,
``state.json``, ``metrics.json`` (keys as in docs/metrics.md), ``history.csv`` and, for some
jobs, ``evaluation.npz``. The numbers are physics-like, not physics: the validation loss has
a minimum near lr = 1e-3 and grows as the latent space shrinks, residual widths grow with
the loss, the float16/bfloat16 casts have their real widths. It can also plant the bad
inputs the summarizer must survive (failed, running, truncated, old-schema, non-numeric).

Files are written plainly (no fsync): this is test data, and 10,000 jobs must be quick.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hepae_core.variables import default_residual_kind

LATENTS = (2, 3, 4, 5, 6)
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
WDS = (0.0, 1e-6, 1e-4)
BATCH_SIZES = (128, 256, 1024)
ENCODERS = ("200-100-50", "400-200-100", "100-50")
SOURCES = ("ae", "ae_f16latent", "float16", "bfloat16")
# Robust widths of a plain cast: about 2**-12 (float16) and 2**-9 (bfloat16) relative.
CAST_WIDTH = {"float16": 2.4e-4, "bfloat16": 1.9e-3}
EPOCHS = 30  # every done job's


def _job_id(params: dict[str, Any], seed: int) -> str:
    text = json.dumps({"params": params, "seed": seed}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _name(p: dict[str, Any]) -> str:
    return (
        f"z{p['model.latent']}_lr{p['train.lr']:.0e}_wd{p['train.weight_decay']:.0e}"
        f"_bs{p['train.batch_size']}_{p['model.encoder']}"
    )


def _points(n_jobs: int) -> list[tuple[dict[str, Any], int]]:
    grid = list(itertools.product(LATENTS, LRS, WDS, BATCH_SIZES, ENCODERS))
    if n_jobs < len(grid):  # a spread-out subset, so small campaigns cover every latent size
        pick = np.random.default_rng(12345).permutation(len(grid))[:n_jobs]
        grid = [grid[i] for i in sorted(pick, key=lambda i: (grid[i][0], i))]
    points = []
    for i in range(n_jobs):
        z, lr, wd, bs, enc = grid[i % len(grid)]
        seed = i // len(grid)
        params = {
            "model.latent": z,
            "train.lr": lr,
            "train.weight_decay": wd,
            "train.batch_size": bs,
            "model.encoder": enc,
        }
        if n_jobs > len(grid):
            params["seed"] = seed
        points.append((params, seed))
    return points


def _loss(p: dict[str, Any], rng: np.random.Generator) -> float:
    z = p["model.latent"]
    base = 2e-5 * 3.0 ** (4 - min(z, 4)) * (1.0 if z <= 4 else 0.8 ** (z - 4))
    lr_term = 1.0 + 0.9 * math.log10(p["train.lr"] / 1e-3) ** 2
    wd_term = 1.0 + 30.0 * p["train.weight_decay"] ** 0.5
    bs_term = 1.0 + 0.15 * math.log2(p["train.batch_size"] / 128)
    enc_term = {"200-100-50": 1.0, "400-200-100": 0.9, "100-50": 1.3}.get(p["model.encoder"], 1.0)
    return float(base * lr_term * wd_term * bs_term * enc_term * rng.lognormal(0.0, 0.08))


def _metrics(
    p: dict[str, Any], variables: Sequence[str], rng: np.random.Generator
) -> tuple[dict[str, Any], list[tuple[int, float, float]]]:
    best = _loss(p, rng)
    best_epoch, history = _history(best, EPOCHS, rng)
    m = _run_keys(p, variables, best, best_epoch, history, rng)
    for key, value in p.items():
        m["param." + key] = value
    m.update(_width_keys(variables, best, rng))
    return m, history


def _history(
    best: float, epochs: int, rng: np.random.Generator
) -> tuple[int, list[tuple[int, float, float]]]:
    """The best epoch and (epoch, train loss, validation loss) per epoch: a decay down to
    ``best`` at the best epoch, never below it after."""
    best_epoch = int(rng.integers(18, epochs + 1))
    history = []
    for e in range(1, epochs + 1):
        decay = 1.0 + 40.0 * math.exp(-e / 4.0)
        val = best * decay * (1.0 + 0.02 * rng.standard_normal() ** 2)
        if e == best_epoch:
            val = best
        elif e > best_epoch:
            val = max(val, best * 1.001)
        history.append((e, val * 0.97, val))
    return best_epoch, history


def _run_keys(
    p: dict[str, Any],
    variables: Sequence[str],
    best: float,
    best_epoch: int,
    history: list[tuple[int, float, float]],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The keys of a run besides the residuals (one flat table, as a job writes them)."""
    z = p["model.latent"]
    n_in = len(variables)
    return {
        "schema_version": 1,
        "status": "done",
        "name": _name(p),
        "param.data.source": "bundled:dijet_4d",
        "param.data.variables": ",".join(variables),
        "param.data.test_fraction": 0.2,
        "param.normalisation.kind": "custom_4d",
        "param.model.activation": "tanh",
        "param.model.batch_norm": False,
        "param.model.dropout": 0.0,
        "param.model.decoder": None,
        "param.train.optimizer": "adam",
        "param.train.epochs": EPOCHS,
        "param.train.schedule": "constant",
        "param.train.patience": None,
        "param.seed": p.get("seed", 0),
        "n_inputs": n_in,
        "latent": z,
        "n_params": 2 * sum(int(w) for w in p["model.encoder"].split("-")) * 10 + z,
        "variables": ",".join(variables),
        "jets_read": 100_000,
        "jets_nonfinite_dropped": 0,
        "jets_after_cuts": 98_500,
        "cut.0.expr": "pt > 20",
        "cut.0.removed": 1500,
        "train_jets": 70_920,
        "val_jets": 7_880,
        "test_jets": 19_700,
        "norm_domain_errors": 0,
        "epochs_run": EPOCHS,
        "best_epoch": best_epoch,
        "best_val_loss": best,
        "final_train_loss": history[-1][1],
        "final_val_loss": history[-1][2],
        "test_loss": best * float(rng.lognormal(0.0, 0.03)),
        "early_stopped": False,
        "train_time_s": float(EPOCHS * 70_920 / 2e5 * (256 / p["train.batch_size"]) ** 0.5),
        "train_jets_per_s": float(2e5 * (p["train.batch_size"] / 256) ** 0.5),
        "device": "cpu",
        "threads": 2,
        "torch_version": "2.13.0",
        "attempts": 1,
        "input_bytes_per_jet": 4 * n_in,
        "compression_ratio": n_in / z,
        "compression_ratio_f16": 2 * n_in / z,
        "encode_s_per_jet": 2e-7,
        "decode_s_per_jet": 2.5e-7,
    }


def _width_keys(variables: Sequence[str], best: float, rng: np.random.Generator) -> dict[str, Any]:
    """``residual.<v>`` and the residual statistics of every source: the autoencoder's
    widths grow with the loss, the casts' are their real ones."""
    m: dict[str, Any] = {}
    scale = math.sqrt(best / 2e-5)
    for i, v in enumerate(variables):
        kind = default_residual_kind(v)
        m[f"residual.{v}"] = kind
        w_ae = 0.012 * scale * (1.0 + 0.3 * i) * float(rng.lognormal(0.0, 0.05))
        widths = {
            "ae": w_ae,
            "ae_f16latent": w_ae * 1.02,
            "float16": CAST_WIDTH["float16"] * (1.0 + 0.1 * i),
            "bfloat16": CAST_WIDTH["bfloat16"] * (1.0 + 0.1 * i),
        }
        for s, w in widths.items():
            mean = 0.0 if s in CAST_WIDTH else 0.15 * w * float(rng.standard_normal())
            m[f"{s}.{v}.mean"] = mean
            m[f"{s}.{v}.std"] = w * 1.3
            m[f"{s}.{v}.rms"] = math.hypot(mean, w * 1.3)
            m[f"{s}.{v}.width"] = w
            m[f"{s}.{v}.frac_1pct"] = float(math.erfc(0.01 / w / math.sqrt(2)))
            m[f"{s}.{v}.frac_5pct"] = float(math.erfc(0.05 / w / math.sqrt(2)))
    return m


def _jets(n: int, variables: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    cols = []
    pt = 20.0 + rng.exponential(60.0, n)
    eta = rng.uniform(-2.8, 2.8, n)
    for v in variables:
        if v == "pt":
            cols.append(pt)
        elif v == "eta":
            cols.append(eta)
        elif default_residual_kind(v) == "angle":
            cols.append(rng.uniform(-math.pi, math.pi, n))
        elif v == "E":
            cols.append(pt * np.cosh(eta) * (1.0 + rng.exponential(0.02, n)))
        elif v == "m":
            cols.append(rng.gamma(3.0, 3.0, n))
        else:
            cols.append(rng.gamma(2.0, 1.0, n))
    return np.stack(cols, axis=1).astype(np.float32)


def write_evaluation(
    job_dir: Path, metrics: dict[str, Any], variables: Sequence[str], n_jets: int, seed: int
) -> None:
    """Write an ``evaluation.npz`` whose residuals match the job's ``ae.<v>`` widths."""
    rng = np.random.default_rng(seed)
    inputs = _jets(n_jets, variables, rng)
    outputs = np.empty_like(inputs)
    kinds = [default_residual_kind(v) for v in variables]
    # Correlated residuals: a shared component, as an autoencoder with a small latent has.
    shared = rng.standard_normal(n_jets)
    for i, (v, kind) in enumerate(zip(variables, kinds)):
        w = metrics[f"ae.{v}.width"]
        noise = 0.6 * shared * (-1) ** i + 0.8 * rng.standard_normal(n_jets)
        r = metrics[f"ae.{v}.mean"] + w * noise
        x = inputs[:, i]
        if kind == "relative":
            outputs[:, i] = x * (1.0 + r)
        elif kind == "angle":
            outputs[:, i] = (x + r + math.pi) % (2 * math.pi) - math.pi
        else:
            outputs[:, i] = x + r
    np.savez(
        job_dir / "evaluation.npz",
        inputs=inputs,
        outputs=outputs,
        variables=np.array(list(variables)),
        residual_kinds=np.array(kinds),
    )


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n")


def make_campaign(
    root: str | Path,
    n_jobs: int = 30,
    *,
    seed: int = 0,
    variables: Sequence[str] = ("pt", "eta", "phi", "E"),
    eval_fraction: float = 0.1,
    eval_best: bool = True,
    eval_jets: int = 2000,
    history: bool = True,
    n_failed: int = 0,
    n_running: int = 0,
    n_planned: int = 0,
    n_truncated: int = 0,
    n_old_schema: int = 0,
    n_bad_params: int = 0,
) -> Path:
    """Create a campaign of ``n_jobs`` job dirs under ``root``; returns ``root``.

    The first ``n_failed`` jobs after the good ones are failed, then running, planned
    (no state.json), truncated metrics.json, old-schema metrics.json and jobs whose
    ``param.train.lr`` is not a number; the rest are done. ``eval_best`` writes
    ``evaluation.npz`` for the best job of each latent size, ``eval_fraction`` for a random
    share of the others.
    """
    root = Path(root)
    jobs_dir = root / "jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    points = _points(n_jobs)
    bad = {
        "failed": n_failed,
        "running": n_running,
        "planned": n_planned,
        "truncated": n_truncated,
        "old_schema": n_old_schema,
        "bad_params": n_bad_params,
    }
    kinds = [kind for kind, n in bad.items() for _ in range(n)]
    kinds = ["done"] * (n_jobs - len(kinds)) + kinds
    if len(kinds) != n_jobs:
        raise ValueError("more bad jobs requested than jobs")
    manifest_jobs = []
    best: dict[int, tuple[float, Path, dict[str, Any]]] = {}
    for index, ((params, pseed), kind) in enumerate(zip(points, kinds)):
        jid = _job_id(params, pseed)
        jdir = jobs_dir / jid
        jdir.mkdir(exist_ok=True)
        manifest_jobs.append(
            {
                "index": index,
                "id": jid,
                "name": _name(params),
                "params": params,
                "dir": f"jobs/{jid}",
                "in_space": True,
            }
        )
        (jdir / "config.yaml").write_text(f"name: {_name(params)}\nseed: {pseed}\n")
        if kind == "planned":
            continue
        metrics = _write_job(jdir, index, params, kind, variables, rng, history)
        if kind == "done":
            z = params["model.latent"]
            if z not in best or metrics["best_val_loss"] < best[z][0]:
                best[z] = (metrics["best_val_loss"], jdir, metrics)
            if eval_fraction > 0 and rng.random() < eval_fraction:
                write_evaluation(jdir, metrics, variables, eval_jets, seed + index)
    if eval_best:
        for i, (_, jdir, metrics) in enumerate(best.values()):
            if not (jdir / "evaluation.npz").exists():
                write_evaluation(jdir, metrics, variables, eval_jets, seed + 10_000 + i)
    _write_json(root / "manifest.json", {"name": root.name, "jobs": manifest_jobs})
    _write_json(
        root / "campaign.json",
        {"name": root.name, "created": "2026-11-24T00:00:00+00:00", "tool_version": "0.1.0"},
    )
    return root


def _write_job(
    jdir: Path,
    index: int,
    params: dict[str, Any],
    kind: str,
    variables: Sequence[str],
    rng: np.random.Generator,
    history: bool,
) -> dict[str, Any]:
    """A job's state.json, history.csv and metrics.json as a job of ``kind`` leaves them
    (:func:`make_campaign`); returns its metrics."""
    metrics, hist = _metrics(params, variables, rng)
    state = {
        "state": "done",
        "attempt": 1,
        "host": "n01",
        "pid": 1000 + index,
        "started": "2026-11-24T01:00:00+00:00",
        "updated": "2026-11-24T02:00:00+00:00",
        "scheduler_job_id": f"4711_{index}",
        "epoch": 30,
        "epochs": 30,
    }
    if kind == "failed":
        state.update(
            state="failed",
            reason="RuntimeError: CUDA out of memory",
            error_kind="python_error",
            exit_code=1,
        )
        _write_json(jdir / "state.json", state)
        return metrics
    if kind == "running":
        state.update(state="running", epoch=12)
        hist = hist[:12]
    _write_json(jdir / "state.json", state)
    if history:
        lines = ["epoch,train_loss,val_loss,lr,seconds,jets_per_s"]
        for e, tl, vl in hist:
            lines.append(f"{e},{tl:.6g},{vl:.6g},{params['train.lr']:g},2.5,28000")
        (jdir / "history.csv").write_text("\n".join(lines) + "\n")
    if kind != "running":
        _write_metrics(jdir / "metrics.json", kind, metrics)
    return metrics


def _write_metrics(path: Path, kind: str, metrics: dict[str, Any]) -> None:
    """metrics.json as a ``done`` job writes it, or damaged as ``kind`` says (half of it,
    the old schema, a non-numeric learning rate)."""
    if kind == "truncated":
        text = json.dumps(metrics, indent=1, sort_keys=True)
        path.write_text(text[: len(text) // 2])
        return
    if kind == "old_schema":
        old = {
            "params": {k[6:]: v for k, v in metrics.items() if k.startswith("param.")},
            "losses": {"best_val": metrics["best_val_loss"], "epoch": metrics["best_epoch"]},
        }
        _write_json(path, old)
        return
    if kind == "bad_params":
        metrics["param.train.lr"] = "fast"
    _write_json(path, metrics)
