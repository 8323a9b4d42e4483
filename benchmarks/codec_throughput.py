"""Throughput and peak memory of compress / decompress, side by side with SZ3 on the same jets.

Writes a flat ROOT file of ``--jets`` jets (the bundled jets repeated, each copy rotated in
phi so no two are equal, plus an int64 event number), trains a small 4D job (4-64-32-3)
unless ``--model`` names one, then, in this process on ONE thread:

* ``hepae-data compress`` (``codec.compress``, file to file, ``--bits``, ``--keep event``)
  and ``decompress`` (to HDF5 and to ROOT): jets/s;
* SZ3 (``pysz``, ``hepae_core.codecs.registry`` registry: natural-space values at the absolute bound
  of the ``--bits`` scalar quantiser's half step) and that quantiser, on the same jets in
  memory, chunk by chunk as compress reads them: jets/s and ratio;

and, with ``--memory-jets N``, the peak resident memory (``VmHWM``) of compress and of
decompress, each in a fresh process, at the default chunk size on files of N and 2N jets:
flat in the file size means the two rows agree.

    python benchmarks/codec_throughput.py [--jets 1000000] [--bits 12] [--model JOB_DIR]
        [--memory-jets 3500000] [--dir D]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VARS = ["pt", "eta", "phi", "E"]


def make_file(path: Path, n_jets: int) -> int:
    import uproot

    from hepae_core.data.jets import bundled_path

    with uproot.open(bundled_path("dijet_4d")) as f:
        base = {v: f["jets"][v].array(library="np").astype(np.float32) for v in VARS}
    n0 = len(base["pt"])
    written = 0
    with uproot.recreate(path) as f:
        f.mktree("jets", {**dict.fromkeys(VARS, np.float32), "event": np.int64})
        i = 0
        while written < n_jets:
            m = min(n0, n_jets - written)
            phi = (base["phi"][:m] + 0.1 * i + np.pi) % (2 * np.pi) - np.pi
            cols = {v: base[v][:m] for v in VARS}
            cols["phi"] = phi.astype(np.float32)
            cols["event"] = np.arange(m, dtype=np.int64) + written
            f["jets"].extend(cols)
            written += m
            i += 1
    return written


def train_job(d: Path) -> Path:
    import yaml

    from hepae_core.run.job import run_job

    d.mkdir(parents=True, exist_ok=True)
    cfg = {"data": {"source": "bundled:dijet_4d", "max_jets": 50_000},
           "model": {"encoder": [64, 32], "latent": 3},
           "train": {"epochs": 3, "batch_size": 512, "threads": 1},
           "evaluate": {"plots": False, "bits": [12]}}  # fmt: skip
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    if run_job(d) != 0:
        raise SystemExit("training the benchmark job failed")
    return d


def _vm_hwm_mb() -> float:
    """Peak resident memory of this process image (VmHWM). Not ru_maxrss: Linux carries the
    parent's peak across fork + exec into it, and the parent here has imported torch."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(mode: str, job: str, src: str, out: str, bits: int) -> None:
    """One compress or decompress in this fresh process; prints its peak memory as JSON.

    Per-jet models run on numpy (OMP_NUM_THREADS=1 above): torch is not imported."""
    from hepae_core.codecs.codec import compress, decompress

    t0 = time.perf_counter()
    if mode == "compress":
        n = compress(job, src, out, bits=bits, keep=["event"])["n_jets"]
    else:
        n = decompress(src, out)
    dt = time.perf_counter() - t0
    peak = _vm_hwm_mb()
    print(json.dumps({"jets": n, "seconds": dt, "peak_mb": peak, "torch": "torch" in sys.modules}))


def run_child(*args: str) -> dict:
    r = subprocess.run([sys.executable, __file__, "--_child", *args], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def peers(src: Path, bits: int, chunk: int) -> list[tuple[str, float, float, float]]:
    """(name, compress jets/s, decompress jets/s, ratio) of SZ3 and the scalar quantiser on
    the jets of ``src``, chunk by chunk, fitted on the first chunk."""
    import uproot

    from hepae_core.codecs import registry as codecs
    from hepae_core.variables import default_residual_kind

    with uproot.open(src) as f:
        x = np.stack([f["jets"][v].array(library="np") for v in VARS], axis=1).astype(np.float64)
    kinds = [default_residual_kind(v) for v in VARS]
    rows = []
    for family in ("sz3", "sq"):
        codec = codecs.build(family, VARS, kinds, bits=bits)
        codec.fit(x[:chunk])
        t0 = time.perf_counter()
        encs = [codec.encode(x[i : i + chunk]) for i in range(0, len(x), chunk)]
        t1 = time.perf_counter()
        for e in encs:
            codec.decode(e)
        t2 = time.perf_counter()
        stored = sum(e.payload_bytes + e.side_bytes for e in encs)
        rows.append((codec.name, len(x) / (t1 - t0), len(x) / (t2 - t1), 16 * len(x) / stored))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jets", type=int, default=1_000_000)
    p.add_argument("--bits", type=int, default=12)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--memory-jets", type=int, default=0,
                   help="also measure peak memory on files of N and 2N jets")  # fmt: skip
    p.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    p.add_argument("--_child", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        mode, job, src, out, bits = args._child
        _child(mode, job, src, out, int(bits))
        return
    import torch

    torch.set_num_threads(1)
    from hepae_core.codecs.codec import CHUNK, compress, decompress

    work = args.dir or Path(tempfile.mkdtemp(prefix="hepae-codec-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        job = args.model or train_job(work / "job")
        src = work / "in.root"
        t0 = time.perf_counter()
        n = make_file(src, args.jets)
        print(f"input: {n} jets, {src.stat().st_size / 1e6:.0f} MB ROOT, written in "
              f"{time.perf_counter() - t0:.0f} s; one thread; load average "
              f"{os.getloadavg()[0]:.1f}")  # fmt: skip
        out = work / "c.h5"
        t0 = time.perf_counter()
        s = compress(job, src, out, bits=args.bits, keep=["event"])
        dt_c = time.perf_counter() - t0
        times = {}
        for suffix in (".h5", ".root"):
            reco = work / f"reco{suffix}"
            t0 = time.perf_counter()
            decompress(out, reco)
            times[suffix] = time.perf_counter() - t0
            reco.unlink()
        print(f"{'codec':<22} {'compress jets/s':>16} {'decompress jets/s':>18} {'ratio':>7}")
        print(f"{'autoencoder aeq' + str(args.bits):<22} {n / dt_c:>16.3g} "
              f"{n / times['.h5']:>18.3g} {s['ratio']:>7.3f}   file to file (.h5 out); "
              f"ratio with the model {s['ratio_with_model']:.3f}")  # fmt: skip
        print(f"{'  (decompress to ROOT)':<22} {'':>16} {n / times['.root']:>18.3g}")
        for name, c, d, r in peers(src, args.bits, CHUNK):
            print(f"{name:<22} {c:>16.3g} {d:>18.3g} {r:>7.3f}   in memory, same jets")
        if args.memory_jets:
            print(f"peak memory, fresh process each, default chunk ({CHUNK:,} jets):")
            for m in (args.memory_jets, 2 * args.memory_jets):
                big = work / f"big{m}.root"
                make_file(big, m)
                cz, rz = work / "big.h5", work / "big_reco.h5"
                c = run_child("compress", str(job), str(big), str(cz), str(args.bits))
                d = run_child("decompress", str(job), str(cz), str(rz), str(args.bits))
                print(f"  {m:>10,} jets: compress {c['peak_mb']:.0f} MB ({m / c['seconds']:.3g}"
                      f" jets/s), decompress {d['peak_mb']:.0f} MB "
                      f"({m / d['seconds']:.3g} jets/s); torch imported: "
                      f"{c['torch'] or d['torch']}")  # fmt: skip
                for f in (big, cz, rz):
                    f.unlink(missing_ok=True)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
