"""``hepae-data compress | decompress | evaluate``: a trained model applied to real files.

    hepae-data compress --model JOB_DIR IN.root -o OUT.h5 [--bits 12] [--keep event,rank]
    hepae-data decompress OUT.h5 -o RECO.root|RECO.h5
    hepae-data evaluate --model JOB_DIR SAMPLE.root [-o metrics.json]

The file format and the ratio definitions are in docs/compression.md. Outputs are written
to a temporary file and renamed: a failure leaves nothing behind.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from hepae_core.errors import EXIT_OK, HepaeError


def _bar(total: int | None, what: str, quiet: bool) -> Any:
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=" jets", unit_scale=True, desc=what, file=sys.stderr)


def _exists(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise HepaeError(source=str(out), message="exists: choose another -o or add --force")


def cmd_compress(args: argparse.Namespace) -> int:
    from hepae_core.codec import compress

    out = Path(args.output)
    _exists(out, args.force)
    bar = _bar(None, "compress", args.quiet)
    last = [0]

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n - last[0])
            last[0] = n

    try:
        s = compress(args.model, args.input, out, bits=args.bits, branches=args.branches,
                     keep=[k for k in (args.keep or "").split(",") if k], tree=args.tree,
                     key=args.key, fmt=args.format, units=args.units,
                     chunk_size=args.chunk_size, max_error=args.max_error,
                     container=args.container,
                     progress=progress)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    mb = s["raw_float32_bytes"] / 1e6
    print(
        f"{out}: {s['n_jets']} jets, {s['latent']} x {s['bits']} bits a jet "
        f"({s['n_exceptions']} stored raw: outside the model's domain)\n"
        f"  float32 of the compressed columns {mb:.2f} MB; codes {s['code_bytes'] / 1e6:.2f} MB: "
        f"ratio {s['ratio_codes']:.2f} (with ranges and raw jets {s['ratio_codes_and_side']:.2f})\n"
        f"  file {s['file_bytes'] / 1e6:.2f} MB, without the embedded model "
        f"{s['file_bytes_without_model'] / 1e6:.2f} MB; {s['seconds']:.1f} s "
        f"({s['n_jets'] / max(s['seconds'], 1e-9):.3g} jets/s)",
        file=sys.stderr,
    )
    if args.max_error:
        frac = s["jets_corrected"] / max(s["n_jets"], 1)
        print(f"  error bound {args.max_error}: {s['jets_corrected']} jets ({100 * frac:.2f} %) "
              f"corrected ({s['corrections']} values stored raw)", file=sys.stderr)  # fmt: skip
    return EXIT_OK


def cmd_decompress(args: argparse.Namespace) -> int:
    from hepae_core.codec import decompress, open_compressed

    src, out = Path(args.input), Path(args.output)
    _exists(out, args.force)
    with open_compressed(src) as f:
        total = int(f.attrs["n_jets"])
    bar = _bar(total, "decompress", args.quiet)
    last = [0]

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n - last[0])
            last[0] = n

    try:
        n = decompress(src, out, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(f"{out}: {n} jets", file=sys.stderr)
    return EXIT_OK


def evaluate_on(
    job_dir: Path, sample: Path, *, tree: str = "jets", key: str | None = None,
    branches: str | None = None, max_jets: int | None = None, fmt: str = "auto",
) -> dict[str, Any]:  # fmt: skip
    """Metrics of a job's model on another sample, with the same baselines as the job.

    Quantiser ranges and PCA axes come from the job's own training jets (read again from
    its config), so the baselines are the ones the job was compared with. Jets outside the
    normalisation's domain are counted (``norm_domain_errors``) and left out.
    """
    import numpy as np
    import torch

    from hepae_core import jobdir
    from hepae_core.codec import load_codec, parse_map
    from hepae_core.config import load, residual_kinds
    from hepae_core.data import load_jets, split
    from hepae_core.evaluate import evaluate
    from hepae_core.readers import ReadRequest, detect_format, iter_chunks
    from hepae_core.variables import ENERGY_VARIABLES

    codec = load_codec(job_dir)
    cfg = load(job_dir / jobdir.CONFIG)
    bmap = parse_map(branches, "--branches")
    names = {v: bmap.get(v, v) for v in codec.variables}
    fmt = detect_format(sample, fmt)
    req = ReadRequest(branches=names, tree=tree, key=key, max_jets=max_jets)
    parts = []
    for chunk in iter_chunks(sample, fmt, req):
        x = np.stack([np.asarray(chunk[v], np.float64) for v in codec.variables], axis=1)
        if codec.units == "MeV":
            for j, v in enumerate(codec.variables):
                if v in ENERGY_VARIABLES:
                    x[:, j] /= 1000.0
        parts.append(x)
    x = np.concatenate(parts) if parts else np.empty((0, len(names)))
    if max_jets:
        x = x[:max_jets]
    ok = np.isfinite(codec.norm.forward(x)).all(axis=1)
    jets = load_jets(cfg, job_dir)
    sp = split(len(jets.values), cfg["data"]["test_fraction"], cfg["train"]["val_fraction"],
               cfg["seed"])  # fmt: skip
    ecfg = cfg["evaluate"]
    metrics, _ = evaluate(
        codec.model, codec.norm, x[ok], residual_kinds(cfg), codec.latent, torch.device("cpu"),
        min(ecfg["timing_jets"], int(ok.sum()) or 1), x_train=jets.values[sp.train],
        bits=tuple(ecfg["bits"]), pca_components=ecfg["pca_components"],
    )  # fmt: skip
    metrics.update(sample=str(sample), sample_jets=len(x), norm_domain_errors=int((~ok).sum()),
                   model_job_id=job_dir.name)  # fmt: skip
    return metrics


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hepae_core.jobdir import atomic_write_json

    m = evaluate_on(Path(args.model), Path(args.sample), tree=args.tree, key=args.key,
                    branches=args.branches, max_jets=args.max_jets, fmt=args.format)  # fmt: skip
    if args.output:
        atomic_write_json(Path(args.output), m)
    variables = [k.split(".")[1] for k in m if k.startswith("ae.") and k.endswith(".width")]
    print(f"{args.sample}: {m['sample_jets']} jets, {m['norm_domain_errors']} outside the "
          "normalisation's domain (left out)")  # fmt: skip
    print(f"{'variable':<12} {'ae':>9} {'f16 latent':>10} {'float16':>9} "
          f"{'sq at same bits':>15}")  # fmt: skip
    bits = m.get("ae_f16latent.bits_per_jet")
    from results.ratedist import curve, width_at

    for v in variables:
        sq = width_at(*curve(m, "sq", v), float(bits)) if bits else math.nan
        print(f"{v:<12} {m[f'ae.{v}.width']:>9.2e} {m[f'ae_f16latent.{v}.width']:>10.2e} "
              f"{m[f'float16.{v}.width']:>9.2e} {sq:>15.2e}")  # fmt: skip
    if args.output:
        print(f"metrics: {args.output}", file=sys.stderr)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add the compress, decompress and evaluate subcommands to ``hepae-data``."""
    c = sub.add_parser("compress", help="compress jets with a trained model (HDF5 out)")
    c.add_argument("input", help="ROOT (flat or jagged TTree), HDF5 or PhenoML CSV file")
    c.add_argument("-o", "--output", required=True, help="the compressed .h5 file")
    c.add_argument("--model", required=True, help="a finished job directory")
    c.add_argument("--bits", type=int, default=12, help="bits per latent value (default 12)")
    c.add_argument("--branches", default=None, help="VARIABLE=BRANCH,... when names differ")
    c.add_argument("--keep", default=None, help="branches stored as they are, e.g. event,rank")
    c.add_argument("--tree", default="jets")
    c.add_argument("--container", default=None,
                   help="jagged per-event tree: the jet branch prefix, e.g. jet_ (with --tree "
                   "events)")  # fmt: skip
    c.add_argument("--key", default=None, help="HDF5 group or table")
    c.add_argument("--format", default="auto", choices=("auto", "root", "hdf5", "csv"))
    c.add_argument("--units", default=None, choices=("GeV", "MeV"),
                   help="the file's energy units (default: the model's training data)")  # fmt: skip
    c.add_argument("--chunk-size", type=int, default=100_000)
    c.add_argument("--max-error", default=None,
                   help="error bound per variable, e.g. pt=1e-3,eta=1e-3: values that miss "
                   "it are stored raw")  # fmt: skip
    c.add_argument("--force", action="store_true", help="overwrite the output")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_compress, paths=("input", "output", "model"))

    d = sub.add_parser("decompress", help="decompress a file written by compress")
    d.add_argument("input")
    d.add_argument("-o", "--output", required=True, help=".root (TTree) or .h5/.hdf5")
    d.add_argument("--force", action="store_true")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_decompress, paths=("input", "output"))

    e = sub.add_parser("evaluate", help="metrics of a trained model on another sample")
    e.add_argument("sample")
    e.add_argument("--model", required=True, help="a finished job directory")
    e.add_argument("-o", "--output", default=None, help="write all metrics as JSON here")
    e.add_argument("--tree", default="jets")
    e.add_argument("--key", default=None)
    e.add_argument("--branches", default=None, help="VARIABLE=BRANCH,...")
    e.add_argument("--max-jets", type=int, default=None)
    e.add_argument("--format", default="auto", choices=("auto", "root", "hdf5"))
    e.set_defaults(func=cmd_evaluate, paths=("sample", "model"))
