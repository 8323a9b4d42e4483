"""Peak memory of reading a >= 1 GB ROOT file through ``load_jets``, against the jets kept.

Writes an ATLAS-style file (tree CollectionTree, 27 jagged branches in MeV, jet kinematics
replicated from the bundled Pythia sample, the other variables synthesised; see
hepae_core.data.readers.synthetic) into a temporary directory, then reads it in fresh
subprocesses with different selections and prints, for each, the peak resident memory
(``VmHWM``) next to the size of the array that was kept.

    PYTHONPATH=. python benchmarks/read_memory.py [--size-gb 1.0] [--chunk-size 200000]

Not part of the test suite; a few minutes on two cores.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCENARIOS = {
    "27d, thesis_27d + pt > 150 GeV": {"variables": "27d", "cuts": ["pt > 150"], "preset": True},
    "27d, thesis_27d (keeps ~97 %)": {"variables": "27d", "cuts": [], "preset": True},
    "4d, leading 2, pt > 100 GeV": {"variables": "4d_m", "cuts": ["pt > 100"], "leading": 2},
}


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    """Peak resident memory of this process image. VmHWM, not ru_maxrss: Linux carries the
    parent's peak across fork + exec into a child's ru_maxrss."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write(path: Path, size_gb: float, block: int) -> dict:
    """Append blocks of synthetic jets until the file reaches ``size_gb``."""
    import awkward as ak
    import numpy as np
    import uproot

    from hepae_core.data.readers.synthetic import (
        ATLAS_CONTAINER,
        ATLAS_TREE,
        atlas_columns,
        events_of,
        to_file_units,
    )
    from hepae_core.variables import VARIABLES_27D

    rng = np.random.default_rng(2024)
    target = size_gb * 1e9
    n_jets = n_events = 0
    t0 = time.monotonic()
    with uproot.recreate(path, compression=None) as f:
        t = f.mktree(
            ATLAS_TREE,
            {ATLAS_CONTAINER + v: "var * float32" for v in VARIABLES_27D},
            counter_name=lambda name: "n_" + name.replace(".", "_"),
        )
        while path.stat().st_size < target:
            cols = to_file_units(atlas_columns(block, rng), "MeV")
            counts = events_of(block, rng)
            t.extend({ATLAS_CONTAINER + v: ak.unflatten(c, counts) for v, c in cols.items()})
            n_jets += block
            n_events += len(counts)
    return {
        "file_gb": path.stat().st_size / 1e9,
        "jets": n_jets,
        "events": n_events,
        "write_s": round(time.monotonic() - t0, 1),
    }


def read(path: Path, scenario: str, chunk_size: int) -> dict:
    """Run one selection through load_jets in this (fresh) process and measure it."""
    import numpy as np

    from hepae_core.config import resolve
    from hepae_core.data.jets import load_jets
    from hepae_core.data.readers.synthetic import ATLAS_CONTAINER, ATLAS_TREE

    spec = SCENARIOS[scenario]
    from hepae_core.data.cuts import PRESETS

    cuts = (list(PRESETS["thesis_27d"]) if spec.get("preset") else []) + list(spec["cuts"])
    data = {
        "source": str(path),
        "tree": ATLAS_TREE,
        "container": ATLAS_CONTAINER,
        "units": "MeV",
        "variables": spec["variables"],
        "cuts": cuts,
        "chunk_size": chunk_size,
    }
    if spec.get("leading"):
        data["leading"] = spec["leading"]
    cfg = resolve({"data": data, "model": {"latent": 2}})
    import awkward  # noqa: F401  (imported before the baseline, as load_jets would)
    import uproot  # noqa: F401

    import hepae_core.data.readers.root  # noqa: F401

    np.zeros(1)
    base = rss_mb()
    t0 = time.monotonic()
    jets = load_jets(cfg, None)
    seconds = time.monotonic() - t0
    return {
        "scenario": scenario,
        "jets_read": jets.counts["jets_read"],
        "jets_kept": int(jets.values.shape[0]),
        "kept_mb": jets.values.nbytes / 2**20,
        "baseline_rss_mb": base,
        "peak_rss_mb": peak_mb(),
        "seconds": seconds,
    }


def read_all_at_once(path: Path) -> dict:
    """For comparison: the whole tree into memory with one uproot call, no chunks."""
    import awkward  # noqa: F401
    import numpy  # noqa: F401
    import uproot

    from hepae_core.data.readers.synthetic import ATLAS_CONTAINER, ATLAS_TREE

    base = rss_mb()
    t0 = time.monotonic()
    with uproot.open(path) as f:
        arrays = f[ATLAS_TREE].arrays(filter_name=ATLAS_CONTAINER + "*", library="ak")
        n = len(arrays)
    return {
        "scenario": "uproot .arrays() of the whole tree (no chunks, no cuts)",
        "events": n,
        "baseline_rss_mb": base,
        "peak_rss_mb": peak_mb(),
        "seconds": time.monotonic() - t0,
    }


def child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        sys.exit(f"benchmark step failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-gb", type=float, default=1.0)
    p.add_argument("--chunk-size", type=int, default=100_000, help="events per chunk")
    p.add_argument("--block", type=int, default=100_000, help="jets written per block")
    p.add_argument("--dir", default=None, help="where to write the file (default: a temp dir)")
    p.add_argument("--no-naive", action="store_true", help="skip the read-all-at-once line")
    p.add_argument("--_write", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--_read", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--_naive", nargs=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._write:
        print(json.dumps(write(Path(args._write[0]), float(args._write[1]), args.block)))
        return 0
    if args._read:
        print(json.dumps(read(Path(args._read[0]), args._read[1], int(args._read[2]))))
        return 0
    if args._naive:
        print(json.dumps(read_all_at_once(Path(args._naive[0]))))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="hepae-bench-", dir=args.dir))
    try:
        path = tmp / "atlas_big.root"
        w = child("--_write", str(path), str(args.size_gb), "--block", str(args.block))
        print(
            f"file: {w['file_gb']:.2f} GB uncompressed ROOT, {w['jets']:,} jets in "
            f"{w['events']:,} events, 27 jagged float32 branches in MeV (written in "
            f"{w['write_s']} s)"
        )
        print(f"chunk size: {args.chunk_size:,} events; peak = VmHWM of a fresh process")
        print(
            f"{'selection':<50} {'read':>11} {'kept':>11} {'kept MB':>9} "
            f"{'base MB':>8} {'peak MB':>8} {'peak-base':>9} {'s':>6}"
        )
        runs = [(sc, args.chunk_size) for sc in SCENARIOS]
        first = next(iter(SCENARIOS))
        runs.append((first, max(1, args.chunk_size // 5)))  # the chunk-size trade-off
        for scenario, chunk in runs:
            r = child("--_read", str(path), scenario, str(chunk))
            label = scenario if chunk == args.chunk_size else f"{scenario}, chunk {chunk:,}"
            print(
                f"{label:<50} {r['jets_read']:>11,} {r['jets_kept']:>11,} "
                f"{r['kept_mb']:>9.1f} {r['baseline_rss_mb']:>8.0f} {r['peak_rss_mb']:>8.0f} "
                f"{r['peak_rss_mb'] - r['baseline_rss_mb']:>9.0f} {r['seconds']:>6.1f}"
            )
        if not args.no_naive:
            r = child("--_naive", str(path))
            print(
                f"{'whole tree at once (uproot, reference)':<50} {'':>11} {'':>11} {'':>9} "
                f"{r['baseline_rss_mb']:>8.0f} {r['peak_rss_mb']:>8.0f} "
                f"{r['peak_rss_mb'] - r['baseline_rss_mb']:>9.0f} {r['seconds']:>6.1f}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
