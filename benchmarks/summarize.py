"""Benchmark of `gridsearch summarize` on a large synthetic campaign.

    python benchmarks/summarize.py [--jobs 10000] [--codecs 14] [--dir DIR] [--formats png,pdf]
                                   [--keep] [--reuse]

Makes a campaign of synthetic job dirs (metrics.json, state.json and history.csv shaped like
real ones; evaluation.npz for the best job of each latent size and 1 % of the others), with
the rate-distortion keys of ``--codecs`` codecs added to every metrics.json (bits per jet
and per-variable residual statistics: 14 codecs give about 700 keys per job, as the codec
registry writes), then times:

1. the table from cold (no summary/ yet): read every job, write summary.h5, summary.csv,
   the cache, report.txt and tables.tex (target: <= 5 s for 10,000 jobs);
2. the same again with nothing changed (incremental: nothing re-read);
3. again after 1 % of the jobs changed;
4. every plot, on the cached table, with the time of each.

The job files were just written (and synced to disk before timing), so they are in the
page cache: "cold" means no summary cache, not a cold disk. Each line gives the wall time,
the CPU time of this (single threaded) process, and the load average: on a machine busy
with other work the wall time grows while the CPU time stays put.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results.summary import summarize
from results.synthetic import make_campaign


def _touch_some(root: Path, share: float, undo: bool = False) -> int:
    """Change the best loss of a share of the jobs (``undo``: change it back)."""
    jobs = sorted((root / "jobs").iterdir())
    step = max(1, round(1 / share))
    n = 0
    for job in jobs[::step]:
        path = job / "metrics.json"
        if not path.exists():
            continue
        m = json.loads(path.read_text())
        m["best_val_loss"] = m["best_val_loss"] / 0.99 if undo else m["best_val_loss"] * 0.99
        path.write_text(json.dumps(m, indent=1, sort_keys=True))
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
        n += 1
    return n


RD_STATS = ("mean", "std", "rms", "width", "frac_1pct", "frac_5pct", "p01", "p99", "max_abs")


def _add_codec_keys(root: Path, n_codecs: int) -> int:
    """Add rate-distortion keys of ``n_codecs`` codecs to every metrics.json; the key count."""
    rng = random.Random(0)
    names = [f"rd{i:02d}" for i in range(n_codecs)]
    n_keys = 0
    for job in sorted((root / "jobs").iterdir()):
        path = job / "metrics.json"
        if not path.exists():
            continue
        m = json.loads(path.read_text())
        variables = str(m.get("variables", "pt,eta,phi,m")).split(",")
        for c in names:
            m[f"{c}.bits_per_jet"] = rng.choice((8, 16, 24, 32, 48)) * len(variables)
            m[f"{c}.ratio"] = rng.uniform(1.0, 12.0)
            m[f"{c}.encode_s_per_jet"] = rng.uniform(1e-8, 1e-6)
            for v in variables:
                for stat in RD_STATS:
                    m[f"{c}.{v}.{stat}"] = rng.uniform(-1e-2, 1e-2)
        path.write_text(json.dumps(m, indent=1, sort_keys=True))
        n_keys = max(n_keys, len(m))
    return n_keys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--dir", type=Path, default=None, help="where to make the campaign")
    ap.add_argument("--formats", default="png,pdf")
    ap.add_argument(
        "--codecs", type=int, default=14, help="rate-distortion codecs added per job (0: none)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the campaign afterwards")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the campaign of an earlier --keep run in --dir (its summary/ removed)",
    )
    args = ap.parse_args(argv)
    base = args.dir or Path(tempfile.mkdtemp(prefix="hepae-bench-"))
    root = base / f"campaign_{args.jobs}_{args.codecs}"
    t0 = time.perf_counter()
    if args.reuse and (root / "manifest.json").exists():
        shutil.rmtree(root / "summary", ignore_errors=True)
        _touch_some(root, 0.01, undo=True)
    else:
        if root.exists():
            shutil.rmtree(root)
        make_campaign(root, args.jobs, eval_fraction=0.01, n_failed=args.jobs // 200,
                      n_running=args.jobs // 500)  # fmt: skip
        if args.codecs:
            _add_codec_keys(root, args.codecs)
    made = time.perf_counter() - t0
    # Flush the new files to disk first: a real campaign was written long before it is
    # summarized, and the summary's own fsyncs should not wait for this writeback.
    os.sync()
    print(f"campaign: {args.jobs} job dirs in {root} (made in {made:.1f} s)")
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")

    def timed(label: str, **kw: object) -> object:
        t, c = time.perf_counter(), time.process_time()
        report = summarize(root, **kw)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        tb = report.table
        state = "written" if tb.written else "unchanged"
        load = os.getloadavg()[0]
        print(
            f"{label:<30} {dt:6.2f} s wall {dc:6.2f} s cpu  (read {tb.n_read}, cached "
            f"{tb.n_cached}, table {state}, exit {report.exit_code}, load {load:.1f})"
        )
        return report

    try:
        cold = timed("table, cold", plots=False)
        timed("table, nothing changed", plots=False)
        changed = _touch_some(root, 0.01)
        timed(f"table, {changed} jobs changed", plots=False)
        formats = [f for f in args.formats.split(",") if f]
        report = timed(f"table + all plots ({','.join(formats)})", formats=formats)
        print("time per plot:")
        for name, sec in report.plot_seconds.items():
            n = sum(1 for f in report.figures if f.plot == name)
            print(f"  {name:<12} {sec:6.2f} s  ({n} figure(s))")
        for name, why, _ in report.plots_skipped:
            print(f"  {name:<12} skipped: {why}")
        h5 = root / "summary" / "summary.h5"
        print(f"summary.h5: {h5.stat().st_size / 1e6:.1f} MB, "
              f"{len(cold.table.columns)} columns x {cold.table.n_jobs} rows")  # fmt: skip
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
