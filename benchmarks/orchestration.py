"""Orchestration speed: plan, re-plan unchanged and status over 100, 1,000 and 10,000 points.

    python benchmarks/orchestration.py [--sizes 100 1000 10000] [--tmp DIR]
        [--before DIR [--rounds N]] [--floor]

Each size gets a space file of 27-variable points (latent x lr x wd x batch size x seeds),
planned into a fresh campaign in a temporary directory (on the file system of --tmp).
Half of the job dirs are then given a ``done`` state.json (and a tenth a ``running`` one),
and ``gridsearch status`` runs over all of them. Times are wall seconds of the commands as
run by ``gridsearch.cli.main`` in this process (imports excluded), output to /dev/null,
each beside the CPU time of this process: on a machine busy with other work the wall time
grows while the CPU time stays put. Targets on a 2-core machine: plan 10,000 points
<= 1.5 s, status over 10,000 dirs <= 0.5 s.

The CPU time is split into user (Python: validating, formatting) and sys (the kernel:
creating 10,000 directories and files, 4 system calls each, which no code change can make
fewer; it grows most on a busy machine). ``--before DIR`` (another checkout of the
project, e.g. ``git worktree add /tmp/before HEAD~3``) runs the same measurements with that
code in child processes, alternating with this checkout ``--rounds`` times, and prints the
best of each side by side, so a loaded machine measures both alike. ``--tmp /dev/shm``
(a tmpfs) leaves out the disk's file system: on a shared VM's ext4, creating 10,000 job
dirs took 3-6 s of kernel time under other helpers' load, on tmpfs 0.2 s. ``--floor``
adds a row timing a plain Python loop of the same file operations alone (mkdir and one
config.yaml per job; one state.json read per job): what no change to gridsearch can go
below on that file system. Figures and what keeps them low: docs/orchestration_speed.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return r.ru_utime, r.ru_stime


def timed(argv: list[str]) -> tuple[float, float, float, float]:
    """(wall, CPU, user CPU, sys CPU) seconds of one gridsearch command in this process."""
    from gridsearch.cli import main

    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        t, (u, s) = time.perf_counter(), _cpu()
        code = main(argv)
        dt, (u2, s2) = time.perf_counter() - t, _cpu()
    if code != 0:
        raise SystemExit(f"gridsearch {' '.join(argv)} exited {code}")
    return dt, (u2 - u) + (s2 - s), u2 - u, s2 - s


def _timed_call(fn: Callable[[], None]) -> tuple[float, float, float, float]:
    """(wall, CPU, user CPU, sys CPU) seconds of ``fn()``."""
    t, (u, s) = time.perf_counter(), _cpu()
    fn()
    dt, (u2, s2) = time.perf_counter() - t, _cpu()
    return dt, (u2 - u) + (s2 - s), u2 - u, s2 - s


def floor(size: int, tmp: str | None) -> dict[str, list[float]]:
    """What the file operations alone cost, in a plain loop: ``size`` job dirs made with
    one config.yaml each of a planned job's size (plan's mkdir, open, write, close; nothing
    validated), then each job's state.json read as status reads it (open, read, parse,
    close; the states :func:`fake_states` leaves: 6 jobs in 10 have one)."""
    work = tempfile.mkdtemp(prefix="gs-floor-", dir=tmp)
    try:
        jobs = os.path.join(work, "jobs")
        os.mkdir(jobs)
        text = ("x" * 63 + "\n").encode() * 24  # a planned config.yaml: about 1.5 kB
        dirs = [os.path.join(jobs, f"{i:012x}") for i in range(size)]

        def create() -> None:
            for d in dirs:
                os.mkdir(d)
                fd = os.open(d + "/config.yaml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.write(fd, text)
                os.close(fd)

        out = {"plan": list(_timed_call(create))}
        record = json.dumps({"state": "done", "attempt": 1, "epoch": 10, "epochs": 10})
        for i, d in enumerate(dirs):
            if i % 2 == 0 or i % 10 == 1:
                with open(d + "/state.json", "w") as fh:
                    fh.write(record)

        def read() -> None:
            for d in dirs:
                try:
                    fd = os.open(d + "/state.json", os.O_RDONLY)
                except FileNotFoundError:
                    continue
                json.loads(os.read(fd, 1 << 16))
                os.close(fd)

        out["status"] = list(_timed_call(read))
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fake_states(campaign: Path) -> None:
    """Half the jobs done, a tenth running, the rest never started."""
    jobs = json.loads((campaign / "manifest.json").read_text())["jobs"]
    from hepae_core.jobdir import now_iso

    stamp = now_iso()
    for i, job in enumerate(jobs):
        state = "done" if i % 2 == 0 else ("running" if i % 10 == 1 else None)
        if state is None:
            continue
        record = {"state": state, "attempt": 1, "host": "bench", "pid": 1, "started": stamp,
                  "updated": stamp, "epoch": 10 if state == "done" else 3, "epochs": 10,
                  "train_loss": 1e-4, "val_loss": 1.1e-4}  # fmt: skip
        (campaign / job["dir"] / "state.json").write_text(json.dumps(record))


def measure(size: int, tmp: str | None) -> dict[str, list[float]]:
    """plan, re-plan and status of one size in a fresh temporary campaign."""
    from gridsearch.cli import build_parser

    build_parser()  # the command modules imported once, outside the timings
    work = Path(tempfile.mkdtemp(prefix="gs-bench-", dir=tmp))
    try:
        space = work / "space.yaml"
        space.write_text(space_text(size))
        (work / "data").mkdir()
        (work / "data" / "jets_27d.h5").touch()  # planning only checks that it exists
        camp = work / "campaign"
        out = {"plan": list(timed(["plan", str(space), "-o", str(camp), "--yes"]))}
        out["replan"] = list(timed(["plan", str(space), "-o", str(camp), "--yes"]))
        fake_states(camp)
        out["status"] = list(timed(["status", str(camp)]))
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _child(code: str, size: int, tmp: str | None) -> dict[str, list[float]]:
    """:func:`measure` with the project code of the checkout ``code``, in a new process."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", code, "--sizes", str(size)]
    if tmp:
        cmd += ["--tmp", tmp]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def _cells(t: dict[str, list[float]]) -> list[str]:
    return [f"{w:.2f} / {c:.2f} ({u:.2f}+{s:.2f})" for w, c, u, s in t.values()]


def run(
    sizes: list[int], tmp: str | None, before: str | None, rounds: int, with_floor: bool = False
) -> None:
    head = "wall / cpu (user+sys) s"
    print(
        f"{'points':>7}  {'code':>6}  {'plan ' + head:>31}  {'re-plan':>23}  {'status':>23}  load"
    )
    here = str(Path(__file__).resolve().parents[1])
    for size in sizes:
        sides = [("before", before), ("after", here)] if before else [("this", here)]
        best: dict[str, dict[str, list[float]]] = {}
        for _ in range(rounds if before else 1):
            for name, code in sides:
                got = _child(code, size, tmp)
                for what, t in got.items():  # the best of the rounds, by CPU time
                    kept = best.setdefault(name, {}).get(what)
                    if kept is None or t[1] < kept[1]:
                        best[name][what] = t
        for name, _ in sides:
            cells = _cells(best[name])
            print(
                f"{size:>7}  {name:>6}  {cells[0]:>31}  {cells[1]:>23}  {cells[2]:>23}  "
                f"{os.getloadavg()[0]:.1f}",
                flush=True,
            )
        if with_floor:  # the plain loop of the same file operations, best of the rounds
            got = [floor(size, tmp) for _ in range(rounds if before else 1)]
            low = {k: min((g[k] for g in got), key=lambda t: t[1]) for k in ("plan", "status")}
            cells = _cells(low)
            print(
                f"{size:>7}  {'floor':>6}  {cells[0]:>31}  {'-':>23}  {cells[1]:>23}  "
                f"{os.getloadavg()[0]:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=sorted(AXES), choices=sorted(AXES))
    ap.add_argument("--tmp", help="where to make the campaigns (default: the system temp dir)")
    ap.add_argument("--before", help="another checkout of the project to compare with")
    ap.add_argument("--rounds", type=int, default=3, help="--before: rounds, best kept")
    ap.add_argument(
        "--floor",
        action="store_true",
        help="also time a plain loop of the same file operations (the kernel's share)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)  # internal: measure with this code
    args = ap.parse_args()
    if args.child:
        sys.path.insert(0, args.child)
        for size in args.sizes:
            print(json.dumps(measure(size, args.tmp)), flush=True)
    else:
        run(args.sizes, args.tmp, args.before, args.rounds, args.floor)
