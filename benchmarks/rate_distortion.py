"""Rate-distortion benchmark: autoencoders against the quantiser, PCA, SZ3 and ZFP, in bytes.

For each sample, trains small autoencoders (minutes on a CPU), then measures every codec of
the registry (hepae_core.codecs.registry) at k = 4..16 bits per value on held-out jets, each ratio
from the bytes its writer stores (payload + side information + the model, on the test jets
and at a file of ``--file-jets`` jets):

* ``sq``: scalar quantisation of each variable in its natural space,
* ``sqe``: the same quantiser with its codes entropy-coded (ANS, per-file histograms),
* ``sz3``, ``zfp``: SZ3 and ZFP on the natural-space values at the absolute bound of the
  k-bit quantiser's half step (the same worst-case error),
* ``pca``: PCA transform coding with z components (z = each autoencoder's latent size),
* ``ae``: each autoencoder with its latent quantised to k bits (model.pt's weights counted),
* the float16 / bfloat16 casts and lossless (shuffle + deflate).

First come the goals of issue 17 (``--goals on``, the default; ``only`` stops after them,
``off`` skips them): benchmarks/error_bounded.py on the Pythia dijet sample, every
error-bounded codec at the bounds (``--max-error``, default 1e-3 on each of the 14
variables: relative on pt, E, m, sum_pt_trk500, lead_pt, absolute on the rest), each ratio
from the bytes written at ``--file-jets`` jets with SZ3 side by side, the floor (entropies
of the quantised jets at the bounds and the ratio they allow) and the goal table (4D and 14
variables against SZ3, the second sample, the speed; met or not met). Then the plane of the
quantiser, SZ3 and ZFP side by side (``--no-ae`` stops there: seconds, no training).

Samples: the bundled 4D jets (pt, eta, phi, E) and, when ../shared/data (relative to the
repository) holds the Pythia dijet sample, 14 continuous per-jet variables of it (four-vector,
mass, widths, energy fractions, track sum, leading constituent, ptD). Besides the per-variable
robust widths, each method gets one figure of merit over all variables: the mean squared
error of the natural-space standardised variables (``mse``).

    python benchmarks/rate_distortion.py [--epochs 30] [--jets 120000] [--threads 1]
                                         [--only 4d|14d] [--no-ae] [--file-jets 1000000]
                                         [--goals on|only|off] [--goal-jets 200000]
                                         [--max-error pt=1e-3,...] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hepae_core.codecs import registry as codecs
from hepae_core.codecs.quantise import from_space, natural_space, to_space
from hepae_core.evaluation.evaluate import latent_codecs, latent_metrics, model_weight_bytes
from hepae_core.evaluation.metric_curves import FILE_JETS
from hepae_core.evaluation.residuals import residual_stats, residuals
from hepae_core.training.models import build_model
from hepae_core.variables import default_residual_kind

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "dijet_13TeV_pthat25.root"
VARS_4D = ["pt", "eta", "phi", "E"]
VARS_14D = ["pt", "eta", "phi", "E", "m", "width", "width_eta", "width_phi", "em_frac",
            "charged_frac", "neutral_hadron_frac", "sum_pt_trk500", "lead_pt", "ptD"]  # fmt: skip
BITS = tuple(range(4, 17))
SQ_BITS = tuple(range(2, 17))  # down to 2 bits a value, so its curve reaches the AE's rates


class NaturalNormaliser:
    """Natural space (log for scale variables), then standardised on the training jets."""

    def __init__(self, variables: list[str], train: np.ndarray, kinds: list[str]) -> None:
        self.variables = variables
        sp = [natural_space(v, train[:, j], kinds[j]) for j, v in enumerate(variables)]
        self.spaces = ["linear" if s in ("periodic", "integer") else s for s in sp]
        t = self._to(train)
        self.mean, self.std = t.mean(axis=0), t.std(axis=0)

    def _to(self, x: np.ndarray) -> np.ndarray:
        return np.stack([to_space(x[:, j], s) for j, s in enumerate(self.spaces)], axis=1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return ((self._to(x) - self.mean) / self.std).astype(np.float32)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        t = np.asarray(y, dtype=np.float64) * self.std + self.mean
        return np.stack([from_space(t[:, j], s) for j, s in enumerate(self.spaces)], axis=1)


def load(sample: str, n: int) -> tuple[list[str], np.ndarray]:
    import uproot

    if sample == "4d":
        from hepae_core.data.jets import bundled_path

        path, variables = bundled_path("dijet_4d"), VARS_4D
    else:
        if not SHARED.is_file():
            raise SystemExit(
                f"the 14-variable sample needs {SHARED.name} in ../shared/data next to the "
                "repository (the Pythia dijet sample, see docs/data.md); run with --only 4d"
            )
        path, variables = SHARED, VARS_14D
    with uproot.open(path) as f:
        t = f["jets"]
        x = np.stack([t[v].array(library="np") for v in variables], axis=1).astype(np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    x = x[np.random.default_rng(0).permutation(len(x))][:n]
    return variables, x


def train_ae(x: np.ndarray, latent: int, epochs: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = {"encoder": [128, 64], "decoder": None, "latent": latent, "activation": "silu",
           "batch_norm": False, "dropout": 0.0, "latent_activation": False}  # fmt: skip
    model = build_model(cfg, x.shape[1])
    xt = torch.from_numpy(x)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = epochs * math.ceil(len(xt) / 512)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 512):
            xb = xt[perm[i : i + 512]]
            loss = torch.nn.functional.mse_loss(model(xb), xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def finetune_with_noise(
    model: torch.nn.Module, x: np.ndarray, q: Any, bits: int, epochs: int, seed: int = 0
) -> torch.nn.Module:
    """Quantisation-aware fine-tuning: uniform noise of one ``bits``-bit step on the latent.

    The decoder learns to tolerate the rounding the codec will apply; the noise step is
    taken from the latent ranges before fine-tuning.
    """
    import copy

    model = copy.deepcopy(model).train()
    step = torch.tensor((np.asarray(q.hi) - np.asarray(q.lo)) / 2**bits, dtype=torch.float32)
    xt = torch.from_numpy(x)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 512):
            xb = xt[perm[i : i + 512]]
            z = model.encode(xb)
            z = z + (torch.rand(z.shape, generator=g) - 0.5) * step
            loss = torch.nn.functional.mse_loss(model.decode(z), xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def widths(x: np.ndarray, y: np.ndarray, variables: list[str], kinds: list[str]) -> list[float]:
    r = residuals(x, y, kinds)
    return [residual_stats(r[:, j])["width"] for j in range(len(variables))]


def mse(norm: NaturalNormaliser, x: np.ndarray, y: np.ndarray) -> float:
    a, b = norm.forward(x).astype(np.float64), norm.forward(y).astype(np.float64)
    d = b - a
    return float(np.nanmean(d * d))


def run_sample(sample: str, args: argparse.Namespace) -> list[dict]:
    variables, x = load(sample, args.jets)
    kinds = [default_residual_kind(v) for v in variables]
    n_test = len(x) // 5
    test, train = x[:n_test], x[n_test:]
    d = len(variables)
    norm = NaturalNormaliser(variables, train, kinds)
    rows: list[dict] = []

    def add(method: str, k: float, codec: Any, enc: codecs.Encoded, y: np.ndarray) -> None:
        """One codec's point: widths, mse and its bytes as its writer stores them."""
        w = widths(test, y, variables, kinds)
        nominal = getattr(codec, "nominal_bits_per_jet", None)
        bits_jet = nominal() if nominal else 8 * enc.payload_bytes / len(test)
        rows.append({"sample": sample, "method": method, "bits_per_value": k, "jets": enc.n,
                     "bits_per_jet": bits_jet, "payload_bytes": enc.payload_bytes,
                     "side_bytes": enc.side_bytes, "model_bytes": codec.model_bytes,
                     "ratio": codecs.ratio(enc, d, codec.model_bytes),
                     "ratio_file": codecs.ratio(enc, d, codec.model_bytes, args.file_jets),
                     "mse": mse(norm, test, y), "widths": dict(zip(variables, w))})  # fmt: skip

    def run(method: str, k: float, codec: Any, fit: bool = True) -> None:
        if fit:
            codec.fit(train)
        enc = codec.encode(test)
        add(method, k, codec, enc, codec.decode(enc))

    for k in SQ_BITS:
        run("sq", k, codecs.build("sq", variables, kinds, bits=k))
    for family in ("sqe", "sz3", "zfp"):
        for k in BITS:
            run(family, k, codecs.build(family, variables, kinds, bits=k))
    for c in ("float16", "bfloat16"):
        run(c, 16, codecs.build(c, variables, kinds))
    run("lossless", 32, codecs.build("lossless", variables, kinds))
    rows[-1]["widths"] = dict.fromkeys(variables, 0.0)
    print(f"\n## {sample}: the plane of the quantiser, SZ3 and ZFP ({len(test)} test jets, "
          f"ratios from bytes at {args.file_jets:,} jets)\n")  # fmt: skip
    print(plane(rows, variables))
    if args.no_ae:
        return rows
    latents = [3] if sample == "4d" else [4, 6, 9]
    for z in latents:
        pca = codecs.PCACodec(variables, kinds, None, z)
        pca.fit(train)
        print(f"[{sample}] PCA z={z}: {pca.explained:.3f} of the variance", file=sys.stderr)
        for k in BITS:
            c = codecs.PCACodec(variables, kinds, k, z)
            c.adopt(pca)
            run(f"pca{z}", k, c, fit=False)
        t0 = time.perf_counter()
        model = train_ae(norm.forward(train), z, args.epochs)
        print(f"[{sample}] AE z={z}: trained in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        mb = model_weight_bytes(model)
        m = latent_metrics(model, norm, test, train, kinds, torch.device("cpu"), BITS, mb)
        cods = latent_codecs(model, norm, torch.device("cpu"), BITS, mb, kinds)
        cods[0].fit(train)
        for c in cods:
            c.quantiser = cods[0].quantiser
            run(f"ae{z}", c.bits, c, fit=False)
            # the same numbers as a job's metrics (aeq<k>): a cross-check of this script
            assert math.isclose(
                rows[-1]["widths"][variables[0]],
                m[f"aeq{c.bits}.{variables[0]}.width"],
                rel_tol=1e-6,
            )
        # quantisation-aware fine-tuning at a low bit depth, where the latent's rounding
        # matters; the codec stores the ranges of the model it ships: refit them
        k = args.qat_bits
        q = cods[0].quantiser
        tuned = finetune_with_noise(model, norm.forward(train), q, k, max(1, args.epochs // 4))
        (tc,) = latent_codecs(tuned, norm, torch.device("cpu"), (k,), mb, kinds)
        run(f"ae{z}+noise", k, tc)
    return rows


def plane(rows: list[dict], variables: list[str]) -> str:
    """The quantiser, SZ3 and ZFP side by side at each k: ratio from bytes and widths."""
    by = {(r["method"], r["bits_per_value"]): r for r in rows}
    show = variables if len(variables) <= 4 else variables[:4]
    head = ["k", "sq ratio", "sq+ANS ratio", "SZ3 ratio", "ZFP ratio", "sq mse", "SZ3 mse",
            "ZFP mse"]  # fmt: skip
    head += [f"{v} sq / SZ3 / ZFP" for v in show]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in BITS:
        trio = [by.get((m, k)) for m in ("sq", "sz3", "zfp")]
        if any(r is None for r in trio):
            continue
        sqe = by.get(("sqe", k))
        cells = [str(k), f"{trio[0]['ratio_file']:.2f}"]
        cells += [f"{sqe['ratio_file']:.2f}" if sqe else "-"]
        cells += [f"{r['ratio_file']:.2f}" for r in trio[1:]]
        cells += [f"{r['mse']:.1e}" for r in trio]
        cells += [" / ".join(f"{r['widths'][v]:.1e}" for r in trio) for v in show]
        lines.append("| " + " | ".join(cells) + " |")
    lossless = next((r for r in rows if r["method"] == "lossless"), None)
    if lossless:
        lines.append(f"\nlossless (shuffle + deflate): ratio {lossless['ratio_file']:.2f}")
    return "\n".join(lines)


def verdict(rows: list[dict], file_jets: int) -> list[str]:
    """For each autoencoder point: the peers' mse at the same ratio from bytes (model counted).

    The ratio is each codec's at a file of ``file_jets`` jets (payload scaled, side
    information and model once); the peers' mse is interpolated log-log along their curves.
    """
    out = []
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)

    def at(method: str, ratio: float) -> float:
        pts = sorted((r["ratio_file"], r["mse"]) for r in by.get(method, []))
        xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
        if not len(xs) or ratio < xs[0] or ratio > xs[-1]:
            return math.nan
        logy = np.interp(math.log(ratio), np.log(xs), np.log(np.maximum(ys, 1e-30)))
        return float(np.exp(logy))

    for method in sorted(m for m in by if m.startswith("ae")):
        z = method[2:].split("+")[0]
        for r in sorted(by[method], key=lambda r: r["bits_per_jet"]):
            x = r["ratio_file"]
            peers = (("sq", "sq"), ("sq+ANS", "sqe"), ("SZ3", "sz3"), ("pca", f"pca{z}"))
            vals = [(name, at(m, x)) for name, m in peers]
            win = [n for n, v in vals if math.isfinite(v) and r["mse"] < v]
            said = ", ".join(f"{n} {v:.2e}" for n, v in vals)
            out.append(f"  {method} k={r['bits_per_value']:>2} ratio {x:5.2f} at {file_jets:,} "
                       f"jets ({r['ratio']:5.2f} on the test jets): mse {r['mse']:.2e}; {said} "
                       f"-> {'beats ' + ', '.join(win) if win else 'beats none'}")  # fmt: skip
    return out


def metrics_row(rows: list[dict], z: int, n_test: int, file_jets: int) -> dict[str, Any]:
    """The benchmark's points as a job's metrics (docs/metrics.md), for one latent size ``z``.

    So the summary's own verdict (:func:`results.ratedist.byte_verdict_lines`) can be
    written from them: the same objects as a campaign's report.
    """
    prefix = {"sq": "sq", "sqe": "sqe", "sz3": "sz3_", "zfp": "zfp", f"pca{z}": "pca",
              f"ae{z}": "aeq"}  # fmt: skip
    variables = list(rows[0]["widths"])
    row: dict[str, Any] = {"rate.jets": n_test, "rate.file_jets": file_jets,
                           "n_inputs": len(variables),
                           "variables": ",".join(variables)}  # fmt: skip
    for r in rows:
        p = prefix.get(r["method"])
        k = r["bits_per_value"]
        if p is None or k == 32:
            continue
        s = f"{p}{int(k)}"
        for key in ("bits_per_jet", "payload_bytes", "side_bytes", "model_bytes"):
            row[f"{s}.{key}"] = r[key]
        row[f"{s}.ratio"] = r["ratio"]
        for v, w in r["widths"].items():
            row[f"{s}.{v}.width"] = w
    return row


def table(rows: list[dict]) -> str:
    variables = list(rows[0]["widths"])
    show = variables if len(variables) <= 6 else [*variables[:4], "m", "ptD"]
    head = ("| method | bits/value | bits/jet | ratio (test jets) | ratio (file) | mse | "
            + " | ".join(show) + " |")  # fmt: skip
    lines = [head, "|" + "---|" * (6 + len(show))]
    for r in rows:
        if r["method"] not in ("sq", "sqe", "sz3", "zfp", "lossless", "float16", "bfloat16") and r[
            "bits_per_value"
        ] not in (4, 6, 8, 10, 12, 16, 32):
            continue
        if r["method"] in ("sq", "sqe", "sz3", "zfp") and (
            r["bits_per_value"] % 2 or r["bits_per_value"] < 4
        ):
            continue
        w = " | ".join(f"{r['widths'][v]:.1e}" for v in show)
        lines.append(f"| {r['method']} | {r['bits_per_value']:.3g} | {r['bits_per_jet']:.0f} | "
                     f"{r['ratio']:.2f} | {r['ratio_file']:.2f} | {r['mse']:.1e} | "
                     f"{w} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--jets", type=int, default=120_000, help="jets per sample (1/5 for test)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", choices=["4d", "14d"], default=None)
    p.add_argument("--qat-bits", type=int, default=6, help="bits of the noise fine-tuning")
    p.add_argument("--no-ae", action="store_true", help="only the quantiser, SZ3, ZFP plane")
    p.add_argument("--file-jets", type=int, default=FILE_JETS,
                   help="jets over which side and model bytes are spread")  # fmt: skip
    p.add_argument("--json", type=Path, default=None, help="write all rows here")
    p.add_argument("--goals", choices=("on", "only", "off"), default="on",
                   help="issue 17's goal table and floor first (only: nothing else)")  # fmt: skip
    p.add_argument("--goal-jets", type=int, default=200_000,
                   help="jets read per sample for the goals (half fit, half measured)")  # fmt: skip
    p.add_argument("--max-error", default=None, help="bounds of the goals (error_bounded.py)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.goals != "off":
        import error_bounded

        print("## issue 17's goals: error-bounded codecs at the bounds, SZ3 side by side")
        argv = ["--jets", str(args.goal_jets), "--file-jets", str(args.file_jets)]
        argv += ["--only", args.only] if args.only else []
        argv += ["--max-error", args.max_error] if args.max_error else []
        rc = error_bounded.main(argv)
        if args.goals == "only":
            raise SystemExit(rc)
    samples = [args.only] if args.only else ["4d", "14d"]
    every = []
    for s in samples:
        rows = run_sample(s, args)
        every += rows
        print(f"\n## {s}: {len(rows[0]['widths'])} variables\n")
        print(table(rows))
        if not args.no_ae:
            print("\nautoencoder points against the peers at the same ratio from bytes, the "
                  "model counted (mse):")  # fmt: skip
            print("\n".join(verdict(rows, args.file_jets)))
            from results.ratedist import byte_verdict_lines

            variables = list(rows[0]["widths"])
            n_test = rows[0]["jets"]
            for z in sorted({int(r["method"][2:]) for r in rows if r["method"][2:].isdigit()}):
                print(f"\nthe summary's verdict for the {z}-latent autoencoder:")
                row = metrics_row(rows, z, n_test, args.file_jets)
                print("\n".join(byte_verdict_lines(row, variables, worst=len(variables))))
    if args.json:
        args.json.write_text(json.dumps(every, indent=1))


if __name__ == "__main__":
    main()
