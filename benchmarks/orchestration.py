"""Orchestration speed: plan, re-plan unchanged and status over 100, 1,000 and 10,000 points.

    python benchmarks/orchestration.py [--sizes 100 1000 10000] [--keep DIR]

Each size gets a space file of 27-variable points (latent x lr x wd x batch size x seeds),
planned into a fresh campaign in a temporary directory (on the file system of --tmp).
Half of the job dirs are then given a ``done`` state.json (and a tenth a ``running`` one),
and ``gridsearch status`` runs over all of them. Times are wall seconds of the commands as
run by ``gridsearch.cli.main`` in this process (imports excluded), output to /dev/null,
each beside the CPU time of this process: on a machine busy with other work the wall time
grows while the CPU time stays put. Targets on a 2-core machine: plan 10,000 points
<= 1.5 s, status over 10,000 dirs <= 0.5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gridsearch.cli import main
from hepae_core.jobdir import now_iso

AXES = {  # size -> (latents, lrs, wds, batch sizes, seeds)
    100: (5, 4, 5, 1, 1),
    1000: (10, 4, 5, 5, 1),
    10000: (25, 4, 5, 4, 5),
}


def space_text(size: int) -> str:
    nz, nlr, nwd, nbs, nseed = AXES[size]
    lrs = [1e-2, 1e-3, 1e-4, 1e-5][:nlr]
    wds = [0, 1e-5, 1e-4, 1e-3, 1e-2][:nwd]
    bss = [256, 512, 1024, 2048, 4096][:nbs]
    return (
        f"name: bench{size}\n"
        "base:\n"
        "  data: {source: data/jets_27d.h5, variables: 27d}\n"
        "  normalisation: {kind: standard}\n"
        "  model: {preset: AE_bn_LeakyReLU}\n"
        "  train: {epochs: 10}\n"
        "grid:\n"
        f"  model.latent: {list(range(1, nz + 1))}\n"
        f"  train.lr: {lrs}\n"
        f"  train.weight_decay: {wds}\n"
        f"  train.batch_size: {bss}\n"
        f"repeat: {nseed}\n"
    )


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one gridsearch command."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        t, c = time.perf_counter(), time.process_time()
        code = main(argv)
        dt, dc = time.perf_counter() - t, time.process_time() - c
    if code != 0:
        raise SystemExit(f"gridsearch {' '.join(argv)} exited {code}")
    return dt, dc


def fake_states(campaign: Path) -> None:
    """Half the jobs done, a tenth running, the rest never started."""
    jobs = json.loads((campaign / "manifest.json").read_text())["jobs"]
    stamp = now_iso()
    for i, job in enumerate(jobs):
        state = "done" if i % 2 == 0 else ("running" if i % 10 == 1 else None)
        if state is None:
            continue
        record = {"state": state, "attempt": 1, "host": "bench", "pid": 1, "started": stamp,
                  "updated": stamp, "epoch": 10 if state == "done" else 3, "epochs": 10,
                  "train_loss": 1e-4, "val_loss": 1.1e-4}  # fmt: skip
        (campaign / job["dir"] / "state.json").write_text(json.dumps(record))


def run(sizes: list[int], tmp: str | None) -> None:
    print(
        f"{'points':>7}  {'plan wall/cpu s':>15}  {'re-plan wall/cpu s':>18}  "
        f"{'status wall/cpu s':>17}  load"
    )
    for size in sizes:
        work = Path(tempfile.mkdtemp(prefix="gs-bench-", dir=tmp))
        try:
            space = work / "space.yaml"
            space.write_text(space_text(size))
            (work / "data").mkdir()
            (work / "data" / "jets_27d.h5").touch()  # planning only checks that it exists
            camp = work / "campaign"
            t_plan = timed(["plan", str(space), "-o", str(camp), "--yes"])
            t_replan = timed(["plan", str(space), "-o", str(camp), "--yes"])
            fake_states(camp)
            t_status = timed(["status", str(camp)])
            cells = [f"{w:.2f} / {c:.2f}" for w, c in (t_plan, t_replan, t_status)]
            print(
                f"{size:>7}  {cells[0]:>15}  {cells[1]:>18}  {cells[2]:>17}  "
                f"{os.getloadavg()[0]:.1f}",
                flush=True,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=sorted(AXES), choices=sorted(AXES))
    ap.add_argument("--tmp", help="where to make the campaigns (default: the system temp dir)")
    args = ap.parse_args()
    run(args.sizes, args.tmp)
