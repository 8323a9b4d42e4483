"""Benchmark of `gridsearch summarize` on a large synthetic campaign.

    python benchmarks/summarize.py [--jobs 10000] [--codecs 14] [--dir DIR] [--formats png]
                                   [--baseline REV] [--keep] [--reuse]

Makes a campaign of synthetic job dirs (metrics.json, state.json and history.csv shaped like
real ones; evaluation.npz for the best job of each latent size and 1 % of the others), with
the rate-distortion keys of ``--codecs`` codecs added to every metrics.json (bits per jet
and per-variable residual statistics: 14 codecs give about 700 keys per job, as the codec
registry writes), then times:

1. the table from cold (no summary/ yet): read every job, write summary.h5, summary.csv,
   the cache, report.txt and tables.tex (target: <= 3 s of CPU for 10,000 jobs);
2. the same again with nothing changed (incremental: nothing re-read);
3. again after 1 % of the jobs changed (target: <= 1 s of CPU);
4. the best_runs plots (15 figures for 5 latent sizes; target <= 3 s), in ``--formats``;
5. every plot, on the cached table, with the time of each.

``--baseline REV`` runs steps 1 to 4 first with the ``results`` package of git revision REV
(the rest of the tree as it is), then with this tree's, on the same campaign, and prints the
two side by side: on a shared machine only figures taken in one run compare.

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
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


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


def _steps(root: Path, formats: list[str]) -> list[tuple[str, float, float, str]]:
    """Steps 1 to 4 with the ``results`` package on sys.path: (label, wall, cpu, note)."""
    import results.plots as plots
    from results.summary import summarize

    out = []

    def timed(label: str, **kw: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        report = summarize(root, **kw)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        tb = report.table
        note = f"read {tb.n_read}, cached {tb.n_cached}, load {os.getloadavg()[0]:.1f}"
        out.append((label, dt, dc, note))
        return report

    shutil.rmtree(root / "summary", ignore_errors=True)
    timed("table, cold", plots=False)
    timed("table, nothing changed", plots=False)
    _touch_some(root, 0.01)
    timed("table, 1 % of jobs changed", plots=False)
    _touch_some(root, 0.01, undo=True)
    timed("table, the same jobs back", plots=False)
    import matplotlib.pyplot  # noqa: F401  (its start-up is not the plots' time)

    spent: dict[str, float] = {}
    draw = plots.PLOTS["best_runs"]

    def best_runs(ctx: Any) -> Any:
        c = time.process_time()
        try:
            return draw(ctx)
        finally:
            spent["cpu"] = time.process_time() - c

    plots.PLOTS["best_runs"] = best_runs
    report = summarize(root, only=["best_runs"], formats=formats)
    n = len(report.figures)
    label = f"best_runs, {n} figures ({','.join(formats)})"
    note = f"load {os.getloadavg()[0]:.1f}"
    out.append((label, report.plot_seconds["best_runs"], spent["cpu"], note))
    return out


def _child(code: str, root: Path, formats: list[str]) -> None:
    """Run the steps with the ``results`` package under ``code``; print them as JSON."""
    sys.path.insert(0, code)
    print(json.dumps(_steps(root, formats)))


# Modules of hepae_core renamed when it was split into rooms (the others kept their names
# and are found in their room by name).
RENAMED = {"data_cli": "cli.data", "compress_cli": "cli.compress", "data": "data.jets",
           "codecs": "codecs.registry"}  # fmt: skip


def _to_rooms(code: Path, repo: Path) -> None:
    """Point the ``hepae_core.<module>`` names of an older ``results`` package (before
    hepae_core was split into rooms) at their modules in this tree, so that it runs."""
    core = repo / "hepae_core"

    def where(m: re.Match) -> str:
        name = m.group(1)
        if (core / f"{name}.py").exists() or (core / name).is_dir():
            return m.group(0)  # still there
        if name in RENAMED:
            return f"hepae_core.{RENAMED[name]}"
        found = sorted(core.glob(f"*/{name}.py"))
        return f"hepae_core.{found[0].parent.name}.{name}" if len(found) == 1 else m.group(0)

    for path in code.rglob("*.py"):
        text = path.read_text()
        new = re.sub(r"hepae_core\.([a-z_]+)\b", where, text)
        if new != text:
            path.write_text(new)


def _baseline(rev: str, root: Path, formats: list[str]) -> list | str:
    """The steps with the ``results`` package of git revision ``rev``, in a subprocess."""
    repo = Path(__file__).resolve().parents[1]
    code = Path(tempfile.mkdtemp(prefix="hepae-bench-code-"))
    try:
        tar = subprocess.run(["git", "-C", str(repo), "archive", rev, "results"],
                             capture_output=True, check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(code)], input=tar, check=True)
        _to_rooms(code, repo)
        res = subprocess.run(
            [sys.executable, __file__, "--child", str(code), "--dir", str(root.parent),
             "--jobs", str(root.name), "--formats", ",".join(formats)],
            capture_output=True, text=True,
        )  # fmt: skip
        if res.returncode != 0:
            return (res.stderr.strip().splitlines() or ["failed"])[-1]
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(code, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", default="10000", help="number of jobs")
    ap.add_argument("--dir", type=Path, default=None, help="where to make the campaign")
    ap.add_argument("--formats", default="png", help="figure formats (default: png)")
    ap.add_argument(
        "--codecs", type=int, default=14, help="rate-distortion codecs added per job (0: none)"
    )
    ap.add_argument("--baseline", metavar="REV", help="also time the results package of REV")
    ap.add_argument("--keep", action="store_true", help="keep the campaign afterwards")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the campaign of an earlier --keep run in --dir (its summary/ removed)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)  # code dir: run the steps there
    args = ap.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    if args.child:
        _child(args.child, args.dir / args.jobs, formats)
        return 0
    from results.synthetic import make_campaign

    jobs = int(args.jobs)
    base = args.dir or Path(tempfile.mkdtemp(prefix="hepae-bench-"))
    root = base / f"campaign_{jobs}_{args.codecs}"
    t0 = time.perf_counter()
    if args.reuse and (root / "manifest.json").exists():
        shutil.rmtree(root / "summary", ignore_errors=True)
    else:
        if root.exists():
            shutil.rmtree(root)
        make_campaign(root, jobs, eval_fraction=0.01, n_failed=jobs // 200,
                      n_running=jobs // 500)  # fmt: skip
        if args.codecs:
            _add_codec_keys(root, args.codecs)
    made = time.perf_counter() - t0
    # Flush the new files to disk first: a real campaign was written long before it is
    # summarized, and the summary's own fsyncs should not wait for this writeback.
    os.sync()
    print(f"campaign: {jobs} job dirs in {root} (made in {made:.1f} s)")
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")

    try:
        before = _baseline(args.baseline, root, formats) if args.baseline else None
        after = _steps(root, formats)
        if isinstance(before, str):
            print(f"baseline {args.baseline}: could not run: {before}")
            before = None
        if before:
            print(f"{'step':<34} {'baseline ' + args.baseline[:12]:>24}   {'this tree':>24}")
            print(f"{'':<34} {'cpu s':>11} {'wall s':>12}   {'cpu s':>11} {'wall s':>12}")
            for (label, w0, c0, n0), (_, w1, c1, n1) in zip(before, after):
                print(f"{label:<34} {c0:>11.2f} {w0:>12.2f}   {c1:>11.2f} {w1:>12.2f}"
                      f"   (baseline: {n0}; this tree: {n1})")  # fmt: skip
        else:
            for label, dt, dc, note in after:
                print(f"{label:<34} {dt:6.2f} s wall {dc:6.2f} s cpu  ({note})")
        from results.summary import summarize

        report = summarize(root, formats=formats)
        print(f"all plots ({','.join(formats)}), time per plot:")
        for name, sec in report.plot_seconds.items():
            n = sum(1 for f in report.figures if f.plot == name)
            print(f"  {name:<12} {sec:6.2f} s wall  ({n} figure(s))")
        for name, why, _ in report.plots_skipped:
            print(f"  {name:<12} skipped: {why}")
        h5 = root / "summary" / "summary.h5"
        print(f"summary.h5: {h5.stat().st_size / 1e6:.1f} MB, "
              f"{len(report.table.columns)} columns x {report.table.n_jobs} rows")  # fmt: skip
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
