"""``hepae-data compress | decompress | evaluate``: a trained model applied to real files.

    hepae-data compress --model JOB_DIR IN.root -o OUT.h5 [--bits 12] [--keep event,rank]
    hepae-data compress --model best --campaign DIR IN.root -o OUT.h5 --max-error pt=1e-3,...
    hepae-data compress --codec pred IN.root -o OUT.h5 --max-error pt=1e-3,eta=1e-3,...
    hepae-data decompress OUT.h5 -o RECO.root|RECO.h5
    hepae-data evaluate --model JOB_DIR SAMPLE.root [-o metrics.json]

The file format and the ratio definitions are in docs/compression.md. Before anything is
written, the outputs are checked (never an input, an existing one only with --force, the
right suffix: hepae_core.cli.data_guard). Outputs are written to a temporary file and renamed:
a failure, Ctrl-C or SIGTERM leaves nothing behind. Results go to stdout; a progress bar
goes to stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

from hepae_core.cli.data_guard import (
    atomic_output,
    check_max_error,
    check_output,
    check_terminated,
    positive_int,
    printable,
)
from hepae_core.diskfull import writing
from hepae_core.errors import EXIT_OK, DataError, HepaeError


def _bar(total: int | None, what: str, quiet: bool) -> Any:
    """A progress bar on stderr, only when stderr is a terminal (never in logs or pipes).

    It shows jets done and the time, not a speed: the result line gives the one speed.
    """
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    fmt = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} jets [{elapsed}]" if total else (
        "{desc}: {n_fmt} jets [{elapsed}]")  # fmt: skip
    return tqdm(total=total, unit=" jets", unit_scale=True, desc=what, file=sys.stderr,
                bar_format=fmt, leave=False)  # fmt: skip


def _progress(bar: Any) -> Any:
    last = [0]

    def progress(n: int) -> None:
        check_terminated()
        if bar is not None:
            bar.update(n - last[0])
            last[0] = n

    return progress


def _model_files(model: Path) -> list[Path]:
    """The files of a job directory that --model reads: never an output."""
    return [model / name for name in ("model.pt", "metrics.json", "config.yaml")]


WRITE_ADVICE = "free space (or choose another output) and run again; nothing was written"

#: The run ``gridsearch summarize`` names best, written by it (results/cmd_summarize.py):
#: ``<campaign>/summary/best.json`` with ``job_id``, ``job_dir``, ``metric``, ``value``.
BEST_FILE = ("summary", "best.json")
BEST = "best"


def resolve_model(model: str | None, campaign: str | None) -> tuple[Path, str | None]:
    """The job directory ``--model`` names, and a line saying which job was chosen.

    Without ``--campaign``: ``--model`` is a job directory. With ``--campaign DIR``:
    ``best`` is the run the campaign's summary names best (``DIR/summary/best.json``: the
    lowest ranking metric, default best_val_loss, of the finished runs, as the summary's
    bottom line says), a job id is ``DIR/jobs/<id>``, and a path is a job directory. The
    job must be done (state.json) with its model.pt. Every refusal is one line.
    """
    from hepae_core import jobdir
    from hepae_core.errors import did_you_mean

    if model is None:
        raise HepaeError(source="--model", message="give a finished job directory, or --model "
                         "best --campaign DIR (or --codec pred, which needs none)")  # fmt: skip
    if campaign is None:
        if model == BEST:
            raise HepaeError(source="--model", message="'best' needs the campaign: "
                             "--model best --campaign DIR")  # fmt: skip
        return Path(model), None
    root = Path(campaign)
    if not (root / "campaign.json").is_file():
        what = "no such directory" if not root.exists() else "not a campaign directory (no "
        what += "" if not root.exists() else "campaign.json)"
        raise HepaeError(source=f"--campaign {campaign}", message=f"{what}; give the "
                         "directory `gridsearch plan` made")  # fmt: skip
    note = None
    if model == BEST:
        best_file = root.joinpath(*BEST_FILE)
        best = jobdir.read_json(best_file)
        if best is None:
            if (root / "summary" / "report.txt").is_file():
                why = ("its summary names no best run (no finished job with a finite metric): "
                       f"run the jobs, then `gridsearch summarize {campaign}`")  # fmt: skip
            else:
                why = f"no summary yet: run `gridsearch summarize {campaign}` first"
            raise HepaeError(source=f"--campaign {campaign}", message=f"--model best: {why}")
        job = root / str(best.get("job_dir") or Path("jobs") / str(best.get("job_id")))
        note = (f"model: {job} (the summary's best run {best.get('name', best.get('job_id'))}:"
                f" the lowest {best.get('metric')} of {best.get('runs')} finished runs, "
                f"{best_file})")  # fmt: skip
    elif (root / "jobs" / model).is_dir():
        job = root / "jobs" / model
    elif Path(model).is_dir():
        job = Path(model)
    else:
        ids = sorted(p.name for p in (root / "jobs").iterdir()) if (root / "jobs").is_dir() else []
        raise HepaeError(source="--model", message=f"no job {model!r} in {root / 'jobs'}"
                         f"{did_you_mean(model, ids)} (give a job id, a job directory or "
                         "'best')")  # fmt: skip
    state = (jobdir.read_state(job) or {}).get("state")
    if state != jobdir.DONE or not (job / "model.pt").is_file():
        why = f"is {state}" if state and state != jobdir.DONE else (
            "never ran" if not state else "has no model.pt")  # fmt: skip
        hint = " (the summary is older than the job: run `gridsearch summarize` again)" if (
            model == BEST) else ""  # fmt: skip
        raise HepaeError(source="--model", message=f"job {job} {why}, not done: compress "
                         f"with a finished job{hint}")  # fmt: skip
    return job, note


def cmd_compress(args: argparse.Namespace) -> int:
    from hepae_core.codecs.codec import compress

    if args.codec == "pred":
        return cmd_compress_pred(args)
    if args.variables is not None:
        raise HepaeError(source="--variables", message="the model names its variables; "
                         "--variables is for --codec pred")  # fmt: skip
    model, chosen = resolve_model(args.model, args.campaign)
    pred: dict[str, Any] | None = None
    verdict: str | None = None
    src, out = Path(args.input), Path(args.output)
    check_output(out, inputs=[src, *_model_files(model)], force=args.force,
                 suffixes=(".h5", ".hdf5"), writes="an HDF5 file")  # fmt: skip
    check_max_error(args.max_error)
    bits: Any = (args.bits or "12").strip()
    if bits.isdigit():
        bits = int(bits)
    extra = {"entropy": args.entropy} if args.entropy != "none" else {}
    bar = _bar(None, "compress", args.quiet)
    try:
        # A temporary file of our own: a file of no jets is refused before it replaces
        # anything, and every failure (a full disk, SIGTERM) leaves the output as it was.
        with writing(out, WRITE_ADVICE), atomic_output(out) as tmp:
            s = compress(model, src, tmp, bits=bits, branches=args.branches,
                         keep=[k for k in (args.keep or "").split(",") if k], tree=args.tree,
                         key=args.key, fmt=args.format, units=args.units,
                         chunk_size=args.chunk_size, max_error=args.max_error,
                         container=args.container, progress=_progress(bar), **extra)  # fmt: skip
            if not s["n_jets"]:
                raise DataError(source=str(src), message="holds no jets to compress (0 rows "
                                "read): nothing written")  # fmt: skip
            if args.model == BEST and args.max_error:
                pred, verdict = best_at_bound(args, src, tmp, model, s)
    finally:
        if bar is not None:
            bar.close()
    lines = pred_summary_lines(out, pred) if pred else summary_lines(out, s, args.max_error)
    for line in [*lines, *([chosen] if chosen else []), *([verdict] if verdict else [])]:
        print(printable(line))
    return EXIT_OK


def best_at_bound(
    args: argparse.Namespace, src: Path, tmp: Path, model: Path, s: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """``--model best --max-error``: the smaller file at the bound, the campaign's best
    autoencoder (its values that miss the bound stored raw, ``tmp``) or the error-bounded
    predictive codec fitted on this file (``--codec pred``). Both files are written whole
    and their bytes compared, model included; the predictive one replaces ``tmp`` when it
    is smaller. Returns (its summary or None, the line that says which and why).
    """
    import os
    import tempfile

    from hepae_core import jobdir
    from hepae_core.codecs.pred_file import compress_pred

    if args.keep or args.container:
        return None, ("codec: the campaign's best autoencoder (the predictive codec was not "
                      "tried: it keeps no other branches and reads no jagged trees)")  # fmt: skip
    listed = (jobdir.read_json(model / jobdir.METRICS) or {}).get("variables")
    variables = str(listed).split(",") if listed else None
    fd, name = tempfile.mkstemp(dir=tmp.parent, prefix=f".{tmp.name}.pred.", suffix=".h5")
    os.close(fd)
    try:
        try:
            p = compress_pred(src, Path(name), max_error=args.max_error, variables=variables,
                              branches=args.branches, tree=args.tree, key=args.key,
                              fmt=args.format, units=args.units,
                              chunk_size=args.chunk_size)  # fmt: skip
        except HepaeError as exc:  # e.g. a variable without a bound: the autoencoder only
            return None, (f"codec: the campaign's best autoencoder (the predictive codec "
                          f"could not run: {exc})")  # fmt: skip
        ae, pr = int(s["file_bytes"]), int(p["file_bytes"])
        both = (f"predictive codec fitted on this file {pr:,} B (ratio {p['ratio_with_model']:.2f}"
                f" with its model), the campaign's best autoencoder with its corrections "
                f"{ae:,} B ({s.get('ratio_with_model', math.nan):.2f})")  # fmt: skip
        if pr < ae:
            os.replace(name, tmp)
            return p, f"codec: the predictive codec, the smaller file at this bound: {both}"
        return (
            None,
            f"codec: the campaign's best autoencoder, the smaller file at this bound: {both}",
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def cmd_compress_pred(args: argparse.Namespace) -> int:
    """``--codec pred``: the error-bounded predictive codec, fitted on the file itself."""
    from hepae_core.codecs.pred_file import compress_pred

    src, out = Path(args.input), Path(args.output)
    not_here = [(args.model is not None, "--model"), (args.campaign is not None, "--campaign"),
                (args.bits is not None, "--bits"),
                (args.entropy != "none", "--entropy"), (bool(args.keep), "--keep"),
                (bool(args.container), "--container")]  # fmt: skip
    for given, option in not_here:
        if given:
            raise HepaeError(source=option, message="not used by --codec pred (it fits its "
                             "predictor on the file; drop the option)")  # fmt: skip
    if not args.max_error:
        raise HepaeError(source="--max-error", message="--codec pred needs a bound for every "
                         "variable, e.g. pt=1e-3,eta=1e-3,phi=1e-3,E=1e-3")  # fmt: skip
    check_output(out, inputs=[src], force=args.force, suffixes=(".h5", ".hdf5"),
                 writes="an HDF5 file")  # fmt: skip
    check_max_error(args.max_error)
    variables = [v.strip() for v in (args.variables or "").split(",") if v.strip()] or None
    bar = _bar(None, "compress", args.quiet)
    try:
        with writing(out, WRITE_ADVICE), atomic_output(out) as tmp:
            s = compress_pred(src, tmp, max_error=args.max_error, variables=variables,
                              branches=args.branches, tree=args.tree, key=args.key,
                              fmt=args.format, units=args.units, chunk_size=args.chunk_size,
                              progress=_progress(bar))  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    for line in pred_summary_lines(out, s):
        print(printable(line))
    return EXIT_OK


def pred_summary_lines(out: Path, s: dict[str, Any]) -> list[str]:
    """What compress --codec pred says: counts, bytes, the ratios and one speed."""
    n = int(s["n_jets"])
    speed = n / max(float(s["seconds"]), 1e-9)
    return [
        f"{out}: {n} jets, {s['bits_per_jet']:.1f} bits a jet (predictive, error-bounded: "
        f"{', '.join(f'{v}={b:g}' for v, b in json.loads(s['max_error']).items())}); "
        f"{s['n_raw_values']} values stored raw",
        f"  float32 {s['raw_float32_bytes'] / 1e6:.2f} MB; payload {s['payload_bytes']} B, "
        f"side {s['side_bytes']} B, model {s['model_bytes']} B, file {s['file_bytes']} B: "
        f"ratio {s['ratio']:.2f} (with the model {s['ratio_with_model']:.2f})",
        f"  {s['seconds']:.1f} s, {speed:.3g} jets/s",
    ]


def summary_lines(out: Path, s: dict[str, Any], max_error: str | None = None) -> list[str]:
    """What compress says about the file it wrote: counts, bytes, ratios and one speed."""
    n = int(s["n_jets"])
    latent, bits = s.get("latent"), s.get("bits")
    per_jet = s.get("bits_per_jet")
    if per_jet is None:
        shape = f"{latent} x {bits} bits a jet"
    else:
        coded = ", entropy-coded" if s.get("entropy", "none") != "none" else ""
        shape = f"{per_jet:.1f} bits a jet ({bits} per latent value{coded})"
    why = [(s.get("n_latent_outliers"), "latent far beyond the training range"),
           (s.get("n_decoded_off"), "decoded far off")]  # fmt: skip
    parts = [f"{k} {w}" for k, w in why if k]
    raw = f"{s['n_exceptions']} stored raw (outside the model's domain"
    raw += f"; of them {', '.join(parts)})" if parts else ")"
    lines = [f"{out}: {n} jets, {shape}; {raw}"]
    outside = s.get("n_outside_training")
    saturated = s.get("n_saturated")
    if outside is not None or saturated is not None:
        lines.append(f"  outside the training domain: {outside or 0} jets beyond the model's "
                     f"training ranges, {saturated or 0} on a saturated latent code")  # fmt: skip
    mb = s["raw_float32_bytes"] / 1e6
    code = s.get("payload_bytes", s.get("code_bytes", 0))
    ratio = s.get("ratio", s.get("ratio_codes_and_side", math.nan))
    extra = f"with ranges and raw jets {ratio:.2f}"
    if s.get("ratio_with_model") is not None:
        extra += f"; with the model {s['ratio_with_model']:.2f}"
    if s.get("break_even_jets"):
        extra += f", paid for from {int(s['break_even_jets']):,} jets"
    lines.append(f"  float32 of the compressed columns {mb:.2f} MB; codes {code / 1e6:.2f} MB: "
                 f"ratio {s['ratio_codes']:.2f} ({extra})")  # fmt: skip
    model = s.get("model_bytes", s["file_bytes"] - s["file_bytes_without_model"])
    speed = n / max(float(s["seconds"]), 1e-9)
    lines.append(f"  file {s['file_bytes'] / 1e6:.2f} MB, of which the embedded model "
                 f"{model / 1e6:.2f} MB; {s['seconds']:.1f} s, {speed:.3g} jets/s")  # fmt: skip
    if max_error:
        frac = s["jets_corrected"] / max(n, 1)
        corr = s["corrections"]
        if isinstance(corr, str):
            corr = json.loads(corr)
        total = sum(corr.values()) if isinstance(corr, dict) else corr
        lines.append(f"  error bound {max_error}: {s['jets_corrected']} jets ({100 * frac:.2f} %) "
                     f"corrected ({total} values stored raw)")  # fmt: skip
    return lines


def cmd_decompress(args: argparse.Namespace) -> int:
    from hepae_core.codecs.codec import decompress, open_compressed

    src, out = Path(args.input), Path(args.output)
    check_output(out, inputs=[src], force=args.force, suffixes=(".root", ".h5", ".hdf5"),
                 writes="a ROOT tree or HDF5 datasets")  # fmt: skip
    with open_compressed(src) as f:
        total = int(f.attrs.get("n_jets", 0))
    if total == 0:
        raise DataError(source=str(src), message="holds no jets: nothing to decompress")
    bar = _bar(total, "decompress", args.quiet)
    try:
        with writing(out, WRITE_ADVICE), atomic_output(out) as tmp:
            n = decompress(src, tmp, progress=_progress(bar))
    finally:
        if bar is not None:
            bar.close()
    print(printable(f"{out}: {n} jets"))
    return EXIT_OK


def evaluate_on(
    job_dir: Path, sample: Path, *, tree: str = "jets", key: str | None = None,
    branches: str | None = None, max_jets: int | None = None, fmt: str = "auto",
    units: str | None = None, predictive: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Metrics of a job's model on another sample, with the same baselines as the job.

    Quantiser ranges and PCA axes come from the job's own training jets (read again from
    its config), so the baselines are the ones the job was compared with. Jets outside the
    normalisation's domain are counted (``norm_domain_errors``) and left out. Jets outside
    the training domain are counted too, and kept: ``outside_training`` (a variable beyond
    its range in the training jets; per variable ``outside_training.<v>``, with the
    sample's ``sample_max.<v>`` against ``train_max.<v>``) and ``latent_saturated`` (a
    latent value beyond the job's latent ranges: its code sits on the first or last step).
    ``units`` (GeV or MeV) is the sample's energy unit; by default the model's.
    ``predictive``: also the error-bounded predictive codec at each bit depth's bound,
    fitted on the job's training jets (``pred<k>.*`` on the sample, ``own.pred<k>.*`` on
    the job's test jets: :func:`hepae_core.codecs.pred_file.bounded_metrics`).
    """
    import numpy as np

    from hepae_core import jobdir
    from hepae_core.codecs.codec import load_codec
    from hepae_core.config import load

    codec = load_codec(job_dir)
    cfg = load(job_dir / jobdir.CONFIG)
    units = units or codec.units
    x = _read_sample(sample, list(codec.variables), tree=tree, key=key, branches=branches,
                     max_jets=max_jets, fmt=fmt, units=units)  # fmt: skip
    # Odd values (inf, NaN, 1e30) are counted below, not announced by numpy's warnings.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ok = np.isfinite(codec.norm.forward(x)).all(axis=1)
        if not ok.any():
            why = "it holds no jets" if len(x) == 0 else (
                f"all {len(x)} jets are outside the model's normalisation domain "
                f"(check --units: the model takes {codec.units})")  # fmt: skip
            raise DataError(source=str(sample), message=f"nothing to evaluate: {why}")
        metrics = _model_metrics(job_dir, cfg, codec, x[ok], predictive)
    metrics.update(sample=str(sample), sample_jets=len(x), norm_domain_errors=int((~ok).sum()),
                   model_job_id=job_dir.name, sample_units=units)  # fmt: skip
    return metrics


def _read_sample(
    sample: Path, variables: list[str], *, tree: str, key: str | None, branches: str | None,
    max_jets: int | None, fmt: str, units: str,
) -> Any:  # fmt: skip
    """The sample's jets (float64, GeV; the model's variables in its order)."""
    import numpy as np

    from hepae_core.codecs.codec import parse_map
    from hepae_core.data.readers import ReadRequest, detect_format, iter_chunks
    from hepae_core.variables import ENERGY_VARIABLES

    bmap = parse_map(branches, "--branches")
    names = {v: bmap.get(v, v) for v in variables}
    fmt = detect_format(sample, fmt)
    req = ReadRequest(branches=names, tree=tree, key=key, max_jets=max_jets)
    parts = []
    for chunk in iter_chunks(sample, fmt, req):
        x = np.stack([np.asarray(chunk[v], np.float64) for v in variables], axis=1)
        if units == "MeV":
            for j, v in enumerate(variables):
                if v in ENERGY_VARIABLES:
                    x[:, j] /= 1000.0
        parts.append(x)
    x = np.concatenate(parts) if parts else np.empty((0, len(names)))
    return x[:max_jets] if max_jets else x


def _model_metrics(
    job_dir: Path, cfg: dict[str, Any], codec: Any, x: Any, predictive: bool
) -> dict[str, Any]:
    """:func:`evaluate_on`'s metrics of the sample's jets ``x`` (all in the model's
    domain), against the job's own training jets."""
    import torch

    from hepae_core.config import residual_kinds
    from hepae_core.data.jets import load_jets, split
    from hepae_core.evaluation.evaluate import encode, evaluate

    jets = load_jets(cfg, job_dir)
    sp = split(len(jets.values), cfg["data"]["test_fraction"], cfg["train"]["val_fraction"],
               cfg["seed"])  # fmt: skip
    x_train = jets.values[sp.train]
    ecfg = cfg["evaluate"]
    mb = codec.model_bytes
    metrics, _ = evaluate(
        codec.model, codec.norm, x, residual_kinds(cfg), codec.latent,
        torch.device("cpu"), min(ecfg["timing_jets"], len(x)), x_train=x_train,
        bits=tuple(ecfg["bits"]), pca_components=ecfg["pca_components"],
        model_bytes=mb if isinstance(mb, int) else len(mb),  # model.pt as stored
    )  # fmt: skip
    metrics.update(domain_counts(codec, x, x_train, encode, job_dir))
    if predictive:
        # the error-bounded predictive codec at the quantiser's bounds, fitted on the
        # job's training jets: on this sample, and on the job's own test jets under
        # own.pred<k>.* (the job's metrics have no pred keys), so that the summary
        # quotes its ratio on both samples (docs/compression.md)
        from hepae_core.codecs.pred_file import bounded_metrics

        kinds = residual_kinds(cfg)
        pred = bounded_metrics(x_train, {"sample": x, "own": jets.values[sp.test]},
                               list(codec.variables), [kinds[v] for v in codec.variables],
                               tuple(ecfg["bits"]))  # fmt: skip
        metrics.update(pred["sample"])
        metrics.update({f"own.{k}": v for k, v in pred["own"].items()})
        metrics["own.rate.jets"] = len(sp.test)
    return metrics


def domain_counts(codec: Any, x: Any, x_train: Any, encode: Any, job_dir: Path) -> dict[str, Any]:
    """Jets of ``x`` outside the training domain of ``codec``'s model (see evaluate_on).

    The latent ranges are the job's (metrics.json ``latent.<i>.min/max``), the ranges a
    quantiser trained with the model would use.
    """
    import numpy as np
    import torch

    from hepae_core import jobdir

    lo, hi = x_train.min(axis=0), x_train.max(axis=0)
    beyond = (x < lo) | (x > hi)
    out: dict[str, Any] = {"outside_training": int(beyond.any(axis=1).sum())}
    for j, v in enumerate(codec.variables):
        out[f"outside_training.{v}"] = int(beyond[:, j].sum())
        out[f"sample_min.{v}"], out[f"sample_max.{v}"] = float(x[:, j].min()), float(x[:, j].max())
        out[f"train_min.{v}"], out[f"train_max.{v}"] = float(lo[j]), float(hi[j])
    z = encode(codec.model, codec.norm, x, torch.device("cpu"))
    job = jobdir.read_json(job_dir / jobdir.METRICS) or {}
    dims = range(z.shape[1])
    zlo = np.array([job.get(f"latent.{i}.min", -np.inf) for i in dims], np.float64)
    zhi = np.array([job.get(f"latent.{i}.max", np.inf) for i in dims], np.float64)
    out["latent_saturated"] = int(((z < zlo) | (z > zhi) | ~np.isfinite(z)).any(axis=1).sum())
    return out


def domain_line(m: dict[str, Any], variables: list[str]) -> str:
    """One line: how many jets lie outside the training domain, and the worst variable."""
    n = m.get("outside_training", 0)
    text = f"  outside the training domain: {n} jets beyond the training ranges"
    worst = [(m.get(f"outside_training.{v}", 0), v) for v in variables]
    count, v = max(worst) if worst else (0, "")
    if count:
        text += (f" (most in {v}: {count}; the sample's {v} spans {m[f'sample_min.{v}']:.4g} to "
                 f"{m[f'sample_max.{v}']:.4g}, the training jets' {m[f'train_min.{v}']:.4g} to "
                 f"{m[f'train_max.{v}']:.4g})")  # fmt: skip
    return text + f"; {m.get('latent_saturated', 0)} on a saturated latent code"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hepae_core.jobdir import atomic_write_json

    sample, model = Path(args.sample), Path(args.model)
    out = Path(args.output) if args.output else None
    if out is not None:
        check_output(out, inputs=[sample, *_model_files(model)], force=args.force,
                     suffixes=(".json",), writes="the metrics as JSON")  # fmt: skip
    m = evaluate_on(model, sample, tree=args.tree, key=args.key, branches=args.branches,
                    max_jets=args.max_jets, fmt=args.format, units=args.units)  # fmt: skip
    if out is not None:
        with writing(out, WRITE_ADVICE):
            atomic_write_json(out, m)
    variables = [k.split(".")[1] for k in m if k.startswith("ae.") and k.endswith(".width")]
    print(f"{printable(args.sample)}: {m['sample_jets']} jets, {m['norm_domain_errors']} "
          "outside the normalisation's domain (left out)")  # fmt: skip
    print(domain_line(m, variables))
    print(f"{'variable':<12} {'ae':>9} {'f16 latent':>10} {'float16':>9} "
          f"{'sq at same bits':>15}")  # fmt: skip
    bits = m.get("ae_f16latent.bits_per_jet")
    from hepae_core.evaluation.metric_curves import curve, width_at

    for v in variables:
        sq = width_at(*curve(m, "sq", v), float(bits)) if bits else math.nan
        print(f"{v:<12} {m[f'ae.{v}.width']:>9.2e} {m[f'ae_f16latent.{v}.width']:>10.2e} "
              f"{m[f'float16.{v}.width']:>9.2e} {sq:>15.2e}")  # fmt: skip
    line = predictive_line(m)
    if line:
        print(line)
    if out is not None:
        print(printable(f"metrics: {out}"))
    return EXIT_OK


def predictive_line(m: dict[str, Any]) -> str | None:
    """The predictive codec at the 12-bit quantiser's bound (or the finest measured): its
    ratio on the sample and on the job's own test jets, against the quantiser's."""
    import re

    ks = sorted(int(k[4:-11]) for k in m if re.match(r"^pred\d+\.ratio_file$", k))
    if not ks:
        return None
    k = 12 if 12 in ks else ks[-1]
    own = m.get(f"own.pred{k}.ratio_file")
    own_words = f", {own:.2f} on the job's test jets" if isinstance(own, float) else ""
    sq = m.get(f"sq{k}.ratio_file")
    sq_words = f"; scalar quantiser {sq:.2f}" if isinstance(sq, float) else ""
    return (f"error-bounded predictive codec at the {k}-bit quantiser's bound (every value "
            f"within it): ratio {m[f'pred{k}.ratio_file']:.2f} on the sample{own_words}"
            f"{sq_words} (at {int(m.get('rate.file_jets') or 1_000_000):,} jets)")  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    """Add the compress, decompress and evaluate subcommands to ``hepae-data``."""
    _add_compress(sub)
    _add_decompress(sub)
    _add_evaluate(sub)


def _add_compress(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "compress", help="compress jets with a trained model (HDF5 out)",
        description="Compress the jets of a ROOT, HDF5 or CSV file with a finished job's "
        "model: latent codes, the ranges and raw values they need, and the model itself, in "
        "one HDF5 file (docs/compression.md); or, with --codec pred and no model, "
        "error-bounded predictive coding fitted on the file itself. Prints the counts, the "
        "ratio and the speed on "
        "stdout. The output is never the input, and an existing output is replaced only with "
        "--force.",
    )  # fmt: skip
    c.add_argument("input", help="ROOT (flat or jagged TTree), HDF5 or PhenoML CSV file")
    c.add_argument("-o", "--output", required=True, help="the compressed file (.h5 or .hdf5)")
    c.add_argument("--model", default=None,
                   help="a finished job directory (--codec ae, the default); with --campaign "
                   "DIR: a job id, or 'best', the run DIR's summary names best (lowest "
                   "best_val_loss, or summarize --metric)")  # fmt: skip
    c.add_argument("--campaign", default=None, metavar="DIR",
                   help="the campaign --model best or a job id is taken from")  # fmt: skip
    c.add_argument("--codec", default="ae", choices=("ae", "pred"),
                   help="ae: the job's autoencoder (--model); pred: error-bounded predictive "
                   "coding fitted on this file, no model needed, a --max-error bound for "
                   "every variable")  # fmt: skip
    c.add_argument(
        "--variables",
        default=None,
        help="--codec pred: the variables to compress (default pt,eta,phi,E)",
    )
    c.add_argument("--bits", default=None,
                   help="bits per latent value, 1 to 16: one for all (default 12) or one per "
                   "latent, e.g. 12,10,8")  # fmt: skip
    c.add_argument("--entropy", default="none", choices=("none", "ans"),
                   help="entropy-code the packed codes (ans: smaller, slower)")  # fmt: skip
    c.add_argument("--branches", default=None, help="VARIABLE=BRANCH,... when names differ")
    c.add_argument("--keep", default=None, help="branches stored as they are, e.g. event,rank")
    c.add_argument("--tree", default="jets",
                   help="the ROOT tree to read (default jets; events for --container)")  # fmt: skip
    c.add_argument("--container", default=None,
                   help="jagged per-event tree: the jet branch prefix, e.g. jet_ (with --tree "
                   "events)")  # fmt: skip
    c.add_argument("--key", default=None, help="HDF5 group or table")
    c.add_argument("--format", default="auto", choices=("auto", "root", "hdf5", "csv"),
                   help="the input's format (default: from its content)")  # fmt: skip
    c.add_argument("--units", default=None, choices=("GeV", "MeV"),
                   help="the file's energy units (default: the model's training data)")  # fmt: skip
    c.add_argument("--chunk-size", type=positive_int, default=100_000,
                   help="jets read at a time (default 100000; memory grows with it)")  # fmt: skip
    c.add_argument("--max-error", default=None,
                   help="error bound per variable, e.g. pt=1e-3,eta=1e-3 (relative for pt, E, "
                   "m; absolute otherwise): values that miss it are stored raw")  # fmt: skip
    c.add_argument("--force", action="store_true", help="replace an existing output")
    c.add_argument("--quiet", action="store_true", help="no progress bar (there is none "
                   "when stderr is not a terminal)")  # fmt: skip
    c.set_defaults(func=cmd_compress, paths=("input", "output", "model"))


def _add_decompress(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "decompress", help="decompress a file written by compress",
        description="Decode a file written by `hepae-data compress` into a ROOT tree (.root) "
        "or HDF5 datasets (.h5, .hdf5) with the input's tree and branch names, in its units.",
    )  # fmt: skip
    d.add_argument("input", help="a file written by hepae-data compress")
    d.add_argument("-o", "--output", required=True, help=".root (TTree) or .h5/.hdf5")
    d.add_argument("--force", action="store_true", help="replace an existing output")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_decompress, paths=("input", "output"))


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser(
        "evaluate", help="metrics of a trained model on another sample",
        description="Measure a finished job's model on another sample with the job's own "
        "baselines: widths per variable on stdout, all metrics as JSON with -o. Counts the "
        "jets outside the normalisation's domain (left out) and outside the training domain "
        "(kept: beyond the training ranges, or on a saturated latent code).",
    )  # fmt: skip
    e.add_argument("sample", help="ROOT or HDF5 file of jets")
    e.add_argument("--model", required=True, help="a finished job directory")
    e.add_argument("-o", "--output", default=None, help="write all metrics as JSON here (.json)")
    e.add_argument("--force", action="store_true", help="replace an existing -o file")
    e.add_argument("--tree", default="jets", help="the ROOT tree to read (default jets)")
    e.add_argument("--key", default=None, help="HDF5 group or table")
    e.add_argument("--branches", default=None, help="VARIABLE=BRANCH,... when names differ")
    e.add_argument("--units", default=None, choices=("GeV", "MeV"),
                   help="the sample's energy units (default: the model's)")  # fmt: skip
    e.add_argument("--max-jets", type=positive_int, default=None,
                   help="read only the first N jets")  # fmt: skip
    e.add_argument("--format", default="auto", choices=("auto", "root", "hdf5"),
                   help="the sample's format (default: from its content)")  # fmt: skip
    e.set_defaults(func=cmd_evaluate, paths=("sample", "model"))
