"""Campaign wall time three ways: one job per task, bundled and stacked, successive halving.

Plans the same grid into three fresh campaigns in a temporary directory and runs each to
the end, on this machine with ``--site local`` (the default) or on a cluster with
``--site SITE``, timing the gridsearch commands (wall seconds of the subprocesses,
planning excluded):

- one job per task: ``gridsearch submit DIR --site SITE``;
- bundled: ``gridsearch submit DIR --site SITE --bundle K`` (same-shape jobs trained as
  one stack, K per task);
- halving: every point trained for epochs/3 (the first rung), then
  ``gridsearch promote DIR --keep 1/3 --epochs x3 --site SITE``: the best third goes on,
  from the exact end of its training, to the same final epochs as the other two modes.

On a scheduler (Slurm, HTCondor) ``submit`` and ``promote`` return at once; each is
followed by ``gridsearch status DIR --watch --interval 2``, which returns when no job is
queued or running, and the wall time counts both (queue waits included).
``--slurm-test-cluster`` runs on the one-node Slurm cluster of the tests
(tests/slurm/cluster.py starts it when it is not running, and stops it at the end when this
run started it; one that ran before is left running) with a
profile ``test-slurm`` written into the temporary directory (this Python, this checkout on
PYTHONPATH, one core per task).

Prints one row per mode: the trainings run (halving: first rung + promoted), the epochs
trained in total (the jobs' ``epochs_run``, so early stops count as they ran), the wall
seconds, and the best ``best_val_loss`` over the jobs' metrics.json with its point.

The default grid is demo-sized (examples/demo.yaml's base, 12 points: latent {2,3} x lr
{1e-3,3e-3,1e-2} x weight decay {0,1e-5}, 50k jets, 30 epochs as in the demo: 2-4 minutes
on 2 cores); ``--thesis`` runs the 20-point grid of examples/thesis_4d.yaml (lr x weight
decay, AE_big, batch 2048, patience 15; 30 epochs on all jets unless told). Both use the
constant learning-rate schedule, since promote refuses one_cycle. Evaluation baselines and
plots are off so the times are about training. On a shared machine the times are noisy:
rerun, or compare modes within one run only.

    python benchmarks/campaign_modes.py [--thesis] [--epochs 30] [--max-jets 50000]
                                        [--bundle K] [--workers N] [--keep DIR]
                                        [--site SITE [--sites-dir DIR] | --slurm-test-cluster]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hepae_core.yamlio import load  # noqa: E402

DEMO_GRID = {
    "model.latent": [2, 3],
    "train.lr": [1e-3, 3e-3, 1e-2],
    "train.weight_decay": [0, 1e-5],
}
ETA = 3  # halving: keep 1/ETA of the points, for ETA times the first rung's epochs


def space(thesis: bool, epochs: int, max_jets: int | None, baselines: bool = False) -> dict:
    """The space file's content: an example's base with the benchmark's sizes."""
    example = ROOT / "examples" / ("thesis_4d.yaml" if thesis else "demo.yaml")
    data, _, _ = load(example)
    base = data["base"]
    base["data"]["source"] = "bundled:dijet_4d"
    if max_jets is None:
        base["data"].pop("max_jets", None)
    else:
        base["data"]["max_jets"] = max_jets
    base["train"].update(epochs=epochs, schedule="constant", device="cpu")
    base["evaluate"] = {"plots": False, "baselines": baselines}
    grid = data["grid"] if thesis else DEMO_GRID
    return {"name": "campaign_modes", "base": base, "grid": grid}


def gridsearch(log: Path, *args: str) -> float:
    """Run ``python -m gridsearch ARGS``, its output appended to ``log``; wall seconds."""
    start = time.perf_counter()
    with open(log, "a") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "gridsearch", *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"gridsearch {' '.join(args)}: exit {proc.returncode} (see {log})")
    return seconds


def run_to_end(log: Path, blocking: bool, campaign: str, *args: str) -> float:
    """``gridsearch ARGS`` (a submit or promote of ``campaign``), then, on a scheduler,
    ``status --watch`` until no job is queued or running; wall seconds of both."""
    seconds = gridsearch(log, *args)
    if not blocking:
        seconds += gridsearch(log, "status", campaign, "--watch", "--interval", "2")
    return seconds


def left_behind(log: Path, campaign: str, site_args: list[str]) -> tuple[float, int]:
    """Resubmit promoted jobs that ``promote`` left alone; (wall seconds, jobs resubmitted).

    On a scheduler a first-rung job can be done (its state.json) while its task is still
    ending (Slurm: the batch shell's last lines). ``promote`` then promotes it but leaves
    it unsubmitted, as a job the scheduler still holds, and status shows it
    ``interrupted``, to be resubmitted; a user does the same.
    """
    seconds, again = 0.0, 0
    for _ in range(3):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "gridsearch", "status", campaign, "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        seconds += time.perf_counter() - start
        waiting = json.loads(proc.stdout)["counts"].get("interrupted", 0)
        if not waiting:
            break
        again += waiting
        seconds += run_to_end(log, False, campaign, "resubmit", campaign, *site_args)
    return seconds, again


def site_blocks(site: str, sites_dir: Path | None) -> bool:
    """True when the site's backend runs the jobs before submit returns (local)."""
    from gridsearch.backends import get_backend
    from gridsearch.sites import load_profile

    profile = load_profile(site, [sites_dir] if sites_dir else None)
    return bool(get_backend(profile["kind"]).blocking)


def test_cluster_profile(directory: Path) -> Path:
    """Start the tests' one-node Slurm cluster unless it runs; write a profile for it."""
    sys.path.insert(0, str(ROOT / "tests"))
    from slurm import cluster

    reason = cluster.ensure()
    if reason:
        sys.exit(f"the Slurm test cluster cannot run here: {reason}")
    sites_dir = directory / "sites"
    sites_dir.mkdir()
    profile = {
        "extends": "slurm",
        "description": "the one-node Slurm cluster of the tests (benchmarks/campaign_modes.py)",
        "python": sys.executable,
        "env": {"variables": {"PYTHONPATH": str(ROOT)}},
        "request": {"time": "1:00:00", "cpus": 1},
    }
    (sites_dir / "test-slurm.yaml").write_text(json.dumps(profile, indent=1) + "\n")
    return sites_dir


def stop_test_cluster() -> None:
    """Stop the tests' Slurm cluster when this run started it (no daemons left behind)."""
    cluster = sys.modules.get("slurm.cluster")
    if cluster is not None and cluster.started_here():
        cluster.stop()


def results(campaign: Path) -> list[dict]:
    """metrics.json of every job of the campaign."""
    return [json.loads(p.read_text()) for p in sorted(campaign.glob("jobs/*/metrics.json"))]


def row(mode: str, trainings: str, campaign: Path, seconds: float) -> list[str]:
    metrics = results(campaign)
    best = min(metrics, key=lambda m: m["best_val_loss"])
    each = [float(m.get("baselines_s") or 0.0) for m in metrics]
    base = sum(each)
    # the whole evaluation (casts, baselines, quantised latents, timing; evaluate_s)
    evals = [float(m.get("evaluate_s") or m.get("baselines_s") or 0.0) for m in metrics]
    # a stack member's train_time_s is its stack's: counted once per stack
    train = sum(
        float(m.get("train_time_s") or 0.0) / max(1, int(m.get("stack_size") or 1)) for m in metrics
    )
    if each:
        print(
            f"  {mode}: baselines_s per job {', '.join(f'{b:.2f}' for b in each)}; "
            f"evaluate_s per job {', '.join(f'{b:.2f}' for b in evals)}"
        )
    return [
        mode,
        trainings,
        str(sum(m["epochs_run"] for m in metrics)),
        f"{seconds:.1f}",
        f"{train:.1f}",
        f"{base:.1f} ({100 * base / seconds:.1f} %)",
        f"{sum(evals):.1f} ({100 * sum(evals) / seconds:.1f} %)",
        f"{best['best_val_loss']:.4e}",
        best["name"],
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--thesis", action="store_true", help="the 20-point thesis 4D grid")
    ap.add_argument(
        "--baselines",
        action="store_true",
        help="keep the evaluation baselines on (shared per data split within a campaign): "
        "the baselines s column sums the jobs' baselines_s (quantised latent included)",
    )
    ap.add_argument(
        "--no-shared-baselines",
        action="store_true",
        help="with --baselines: every job computes its own (HEPAE_NO_SHARED_BASELINES=1)",
    )
    ap.add_argument(
        "--modes", default="per-job,bundled,halving", help="which modes to run (comma list)"
    )
    ap.add_argument(
        "--epochs", type=int, help="final epochs (default 30; with halving a multiple of 3)"
    )
    ap.add_argument("--max-jets", type=int, help="jets read (default 50000; thesis: all, 0: all)")
    ap.add_argument("--bundle", type=int, help="K jobs per task (default points / cores)")
    ap.add_argument("--workers", type=int, help="local: tasks at a time (default: cores)")
    ap.add_argument("--keep", type=Path, help="keep the campaigns in DIR (default: deleted)")
    ap.add_argument("--site", default="local", help="the site profile (default: local)")
    ap.add_argument("--sites-dir", type=Path, help="look for site profiles here first")
    ap.add_argument(
        "--slurm-test-cluster",
        action="store_true",
        help="run on the tests' one-node Slurm cluster (tests/slurm/cluster.py)",
    )
    args = ap.parse_args()

    epochs = args.epochs or 30
    modes = set(args.modes.split(","))
    if "halving" in modes and (epochs % ETA or epochs < ETA):
        ap.error(f"--epochs must be a multiple of {ETA} (halving)")
    rung = max(1, epochs // ETA)
    max_jets = args.max_jets if args.max_jets is not None else (None if args.thesis else 50000)
    spec = space(args.thesis, epochs, max_jets or None, args.baselines)
    if args.no_shared_baselines:
        os.environ["HEPAE_NO_SHARED_BASELINES"] = "1"  # inherited by the jobs
    points = math.prod(len(v) for v in spec["grid"].values())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    bundle = args.bundle or math.ceil(points / (args.workers or cores or 1))

    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    top = Path(tempfile.mkdtemp(prefix="campaign_modes-", dir=args.keep))
    try:
        sites_dir = args.sites_dir
        if args.slurm_test_cluster:
            args.site, sites_dir = "test-slurm", test_cluster_profile(top)
        local = ["--site", args.site] + (["--sites-dir", str(sites_dir)] if sites_dir else [])
        blocking = site_blocks(args.site, sites_dir)
        if args.workers:
            if not blocking:
                ap.error("--workers is for --site local")
            local += ["--workers", str(args.workers)]
        plans = {}
        for mode, first in (("per-job", epochs), ("bundled", epochs), ("halving", rung)):
            spec["base"]["train"]["epochs"] = first
            path = top / f"{mode}.yaml"
            path.write_text(json.dumps(spec, indent=1) + "\n")  # JSON is YAML
            gridsearch(top / f"{mode}.log", "plan", str(path), "-o", str(top / mode))
            plans[mode] = top / mode

        print(
            f"{spec['name']}: {points} points, {epochs} epochs, "
            f"{max_jets or 'all'} jets, {cores} cores, site {args.site}; campaigns in {top}"
            + ("" if args.keep else " (deleted at the end)"),
            flush=True,
        )
        rows = []
        if "per-job" in modes:
            c = str(plans["per-job"])
            s = run_to_end(top / "per-job.log", blocking, c, "submit", c, *local)
            rows.append(row("per-job", str(points), plans["per-job"], s))
            print(f"  per-job done ({rows[-1][3]} s)", flush=True)

        if "bundled" in modes:
            c = str(plans["bundled"])
            s = run_to_end(
                top / "bundled.log", blocking, c, "submit", c, *local, "--bundle", str(bundle)
            )
            rows.append(row(f"bundled K={bundle}", str(points), plans["bundled"], s))
            print(f"  bundled done ({rows[-1][3]} s)", flush=True)

        if "halving" in modes:
            c = str(plans["halving"])
            s = run_to_end(top / "halving.log", blocking, c, "submit", c, *local)
            s += run_to_end(
                top / "halving.log", blocking, c,
                "promote", c, "--keep", f"1/{ETA}", "--epochs", f"x{ETA}", *local,
            )  # fmt: skip
            again = 0
            if not blocking:
                more, again = left_behind(top / "halving.log", c, local)
                s += more
            promoted = sum(1 for _ in plans["halving"].glob("jobs/*/promotion.json"))
            rows.append(
                row(f"halving {rung}->{epochs}", f"{points}+{promoted}", plans["halving"], s)
            )
            print(
                f"  halving done ({rows[-1][3]} s"
                + (
                    f"; {again} promoted job(s) resubmitted, their first task still ending"
                    if again
                    else ""
                )
                + ")",
                flush=True,
            )

        head = [
            "mode", "jobs trained", "epochs total", "wall s", "train s", "baselines s (share)",
            "evaluation s (share)",
            "best val loss", "best point",
        ]  # fmt: skip
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        print()
        for r in [head, ["-" * w for w in widths], *rows]:
            print(" | ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    finally:
        stop_test_cluster()
        if args.keep is None:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
