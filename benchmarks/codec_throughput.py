"""Throughput and peak memory of ``hepae-data compress`` / ``decompress`` on a large file.

Writes a flat ROOT file of ``--gb`` gigabytes (the bundled jets repeated, each copy rotated
in phi so no two are equal, plus an int64 event number), trains a small job on the bundled
sample unless ``--model`` names one, then runs compress and decompress each in its own
process under ``/usr/bin/time -v`` (when present) and prints jets/s, MB/s and peak RSS.

    python benchmarks/codec_throughput.py [--gb 1.0] [--bits 12] [--model JOB_DIR] [--dir D]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VARS = ["pt", "eta", "phi", "E"]


def make_file(path: Path, gb: float) -> int:
    import uproot

    from hepae_core.data import bundled_path

    with uproot.open(bundled_path("dijet_4d")) as f:
        base = {v: f["jets"][v].array(library="np").astype(np.float32) for v in VARS}
    n0 = len(base["pt"])
    per_jet = 4 * 4 + 8
    n_copies = max(1, int(gb * 1e9 / per_jet / n0))
    with uproot.recreate(path) as f:
        f.mktree("jets", {**dict.fromkeys(VARS, np.float32), "event": np.int64})
        for i in range(n_copies):
            phi = (base["phi"] + 0.1 * i + np.pi) % (2 * np.pi) - np.pi
            event = np.arange(n0, dtype=np.int64) + i * n0
            f["jets"].extend({**base, "phi": phi.astype(np.float32), "event": event})
    return n_copies * n0


def train_job(d: Path) -> Path:
    import yaml

    from hepae_core.job import run_job

    d.mkdir(parents=True, exist_ok=True)
    cfg = {"data": {"source": "bundled:dijet_4d", "max_jets": 50_000},
           "model": {"encoder": [64, 32], "latent": 3},
           "train": {"epochs": 3, "batch_size": 512, "threads": 2},
           "evaluate": {"plots": False, "bits": [12]}}  # fmt: skip
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    if run_job(d) != 0:
        raise SystemExit("training the benchmark job failed")
    return d


def timed(cmd: list[str]) -> tuple[float, float | None, str]:
    """Wall seconds, peak RSS in MB (None without GNU time), stderr."""
    gnu = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    full = [gnu, "-v", *cmd] if gnu else cmd
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    r = subprocess.run(full, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    return dt, (int(m.group(1)) / 1024 if m else None), r.stderr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=1.0)
    p.add_argument("--bits", type=int, default=12)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    args = p.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="hepae-codec-"))
    work.mkdir(parents=True, exist_ok=True)
    job = args.model or train_job(work / "job")
    src = work / "big.root"
    t0 = time.perf_counter()
    n = make_file(src, args.gb)
    size = src.stat().st_size
    print(f"input: {n} jets, {size / 1e6:.0f} MB, written in {time.perf_counter() - t0:.0f} s")
    py = sys.executable
    out, reco = work / "big.h5", work / "reco.root"
    for f in (out, reco):
        f.unlink(missing_ok=True)
    dt, rss, err = timed([py, "-m", "hepae_core.data_cli", "compress", "--model", str(job),
                          str(src), "-o", str(out), "--bits", str(args.bits), "--keep", "event",
                          "--quiet"])  # fmt: skip
    print(err.split("Command being timed")[0].strip())
    mem = "n/a" if rss is None else f"{rss:.0f} MB"
    print(f"compress: {dt:.0f} s, {n / dt:.3g} jets/s, {size / 1e6 / dt:.1f} MB/s of input, "
          f"peak RSS {mem}; output {out.stat().st_size / 1e6:.0f} MB")  # fmt: skip
    dt, rss, _ = timed([py, "-m", "hepae_core.data_cli", "decompress", str(out), "-o", str(reco),
                        "--quiet"])  # fmt: skip
    mem = "n/a" if rss is None else f"{rss:.0f} MB"
    print(f"decompress: {dt:.0f} s, {n / dt:.3g} jets/s, {reco.stat().st_size / 1e6 / dt:.1f} MB/s"
          f" of output, peak RSS {mem}")  # fmt: skip
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
