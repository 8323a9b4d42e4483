"""``gridsearch summarize --evaluate-on SAMPLE``: the best runs measured on another sample.

For the best run of each group, runs ``hepae-data evaluate --model JOB SAMPLE`` in a
subprocess (the summarizer never imports torch), keeps each result as
``summary/evaluate_on/<sample>/<job_id>.json`` (reused while newer than the job's model and
the sample), writes ``summary/evaluate_on_<sample>.csv`` (one row per best run: its group,
job, jets, jets outside the normalisation's domain, then every metric prefixed ``on.``) and
returns the report's lines: per variable, the width on the sample against the width on the
job's own test jets and the scalar quantiser's on the sample at the same bits, then the
verdict from the bytes written on the sample (the autoencoder's quantised latent against
the scalar quantiser and SZ3 at equal ratio, model counted: :func:`byte_verdict_lines`,
the same objects as the rate-distortion plane of the summary).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from results.ratedist import byte_verdict_lines, compare, variables_of
from results.report import fmt, short

EVALUATE_CMD = ("-m", "hepae_core.cli.data", "evaluate")


def _slug(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", path.stem)


#: A key every current `hepae-data evaluate` result holds: one without it was written before
#: the predictive codec was measured there, and is evaluated again.
CURRENT_KEY = "own.rate.jets"


def _fresh(result: Path, *inputs: Path) -> bool:
    if not result.is_file():
        return False
    t = result.stat().st_mtime
    if not all(not p.exists() or p.stat().st_mtime <= t for p in inputs):
        return False
    try:
        return CURRENT_KEY in json.loads(result.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def evaluate_best(
    root: Path, out_dir: Path, used: Any, groups: list[Any], group_by: str | None, sample: Path
) -> tuple[list[str], list[str], Path | None]:
    """Evaluate each group's best run on ``sample``; returns (report lines, problems, csv)."""
    sample = sample.resolve()
    if not sample.is_file():
        return [], [f"--evaluate-on {sample}: no such file"], None
    cache = out_dir / "evaluate_on" / _slug(sample)
    cache.mkdir(parents=True, exist_ok=True)
    rows = {r["job_id"]: r for r in used.to_dict("records")}
    variables = variables_of(used)
    lines = [f"On another sample: {sample} (best run of each group; `hepae-data evaluate`)"]
    problems: list[str] = []
    table: list[dict[str, Any]] = []
    env = dict(os.environ)
    for g in groups:
        best = next(p for p in g.picks if p.label == "best")
        job_dir = (root / best.job_dir).resolve()
        result = cache / f"{best.job_id}.json"
        if not _fresh(result, job_dir / "model.pt", sample):
            r = subprocess.run([sys.executable, *EVALUATE_CMD, "--model", str(job_dir),
                                str(sample), "-o", str(result), "--force"],
                               capture_output=True, text=True, env=env)  # fmt: skip
            if r.returncode != 0:
                last = (r.stderr.strip().splitlines() or ["no message"])[-1]
                problems.append(f"--evaluate-on: {best.job_dir}: {last}")
                continue
        m = json.loads(result.read_text(encoding="utf-8"))
        head = f"{short(group_by)} = {fmt(g.value)}" if group_by else "all runs"
        n_out = m.get("norm_domain_errors")
        ks = [int(k[2:].split(".")[0]) for k in m if re.match(r"^sq\d+\.clipped$", k)]
        clipped = m.get(f"sq{max(ks)}.clipped") if ks else None
        lines.append(f"  {head}: {best.name}: {m.get('sample_jets')} jets, {n_out} outside "
                     f"the normalisation's domain, {clipped} values outside the quantiser's "
                     "training ranges (clipped)")  # fmt: skip
        own = rows.get(best.job_id, {})
        for c in compare(m, variables):
            mine = own.get(f"ae_f16latent.{c.var}.width", math.nan)
            lines.append(
                f"    {c.var}: width {_g(c.ae)} on the sample, {_g(mine)} on the job's test "
                f"jets; scalar quantiser on the sample at the same bits {_g(c.sq)}"
            )
        lines += ["  " + line for line in byte_verdict_lines(m, variables)]
        table.append({"group": g.value, "job_id": best.job_id, "name": best.name,
                      **{f"on.{k}": v for k, v in m.items()}})  # fmt: skip
    path = None
    if table:
        path = out_dir / f"evaluate_on_{_slug(sample)}.csv"
        keys = list(dict.fromkeys(k for row in table for k in row))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        w.writerows(table)
        from hepae_core.jobdir import atomic_write_text

        atomic_write_text(path, buf.getvalue())
        lines.append(f"  table: {path}")
    return lines, problems, path


def _g(v: Any) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "n/a"
    return f"{v:.2g}" if math.isfinite(v) else "n/a"
