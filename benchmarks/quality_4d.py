"""Reconstruction quality of AE_3D_200 on the 4D Pythia jets, against plain float casts.

Trains one job on the bundled sample (all 176,867 jets: ~127k train, ~14k validation,
~35k test) and prints the robust relative widths of pt and E for the autoencoder, the
autoencoder with a float16 latent, and plain float16/bfloat16 casts of the inputs.

    python benchmarks/quality_4d.py [--epochs 30] [--batch-size 256] [--lr 3e-3]
                                    [--schedule one_cycle] [--threads 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

from hepae_core.run.job import run_job


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", default="one_cycle")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="job dir to keep (default: temp)")
    args = p.parse_args()
    cfg = {
        "name": "quality_4d",
        "data": {"source": "bundled:dijet_4d", "test_fraction": 0.2},
        "normalisation": {"kind": "custom_4d"},
        "model": {"preset": "AE_3D_200"},
        "train": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "schedule": args.schedule,
            "threads": args.threads,
            "val_fraction": 0.1,
        },
        "evaluate": {"plots": True},
    }
    out = args.out or Path(tempfile.mkdtemp(prefix="quality_4d_"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    code = run_job(out, force=True)
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"job failed with exit code {code}; see {out}")
    m = json.loads((out / "metrics.json").read_text())
    print(
        f"\nAE_3D_200, {m['train_jets']} train jets, {args.epochs} epochs, bs {args.batch_size}, "
        f"lr {args.lr}, {args.schedule}, {args.threads} thread(s): wall {wall:.0f} s, "
        f"train {m['train_time_s']:.0f} s, {m['train_jets_per_s']:.0f} jets/s"
    )
    print(
        f"best val loss {m['best_val_loss']:.3e} at epoch {m['best_epoch']}; "
        f"test loss {m['test_loss']:.3e}"
    )
    rows = [
        ("autoencoder, float32 latent", "ae", m["compression_ratio"]),
        ("autoencoder, float16 latent", "ae_f16latent", m["compression_ratio_f16"]),
        ("float16 cast", "float16", 2.0),
        ("bfloat16 cast", "bfloat16", 2.0),
    ]
    # the codecs' ratios from the bytes their writers store (model and side information
    # counted, at a file of rate.file_jets jets): the registry's numbers, as in metrics.json
    codecs = (
        ("autoencoder, 12-bit latent", "aeq12"),
        ("scalar quantiser, 12 bits", "sq12"),
        ("SZ3, 12-bit bound", "sz3_12"),
        ("ZFP, 12-bit bound", "zfp12"),
    )
    for label, key in codecs:
        if f"{key}.ratio_file" in m:
            rows.append((f"{label} (file)", key, m[f"{key}.ratio_file"]))
    print(
        f"{'':30} {'ratio':>6} {'pt width':>10} {'E width':>10} {'eta width':>10} {'phi width':>10}"
    )
    for label, key, ratio in rows:
        print(
            f"{label:30} {ratio:>6.2f} {m[key + '.pt.width']:>10.2e} "
            f"{m[key + '.E.width']:>10.2e} {m[key + '.eta.width']:>10.2e} "
            f"{m[key + '.phi.width']:>10.2e}"
        )
    print(f"job dir: {out}")


if __name__ == "__main__":
    main()
