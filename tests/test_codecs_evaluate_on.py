"""`summarize --evaluate-on`: the verdict from bytes on the other sample, same objects."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from test_ratedist import VARS, _byte_row

from results.evaluate_on import evaluate_best


def test_evaluate_on_reports_the_byte_verdict_of_the_sample(tmp_path: Path) -> None:
    """A cached evaluation (newer than model and sample) is read, not recomputed."""
    job = tmp_path / "jobs" / "j1"
    job.mkdir(parents=True)
    (job / "model.pt").write_bytes(b"x")
    sample = tmp_path / "other.root"
    sample.write_bytes(b"x")
    out = tmp_path / "summary"
    cache = out / "evaluate_on" / "other"
    cache.mkdir(parents=True)
    m = _byte_row(model_bytes=50_000_000)  # on this sample the model is never paid for
    m.update({"sample_jets": 10_000, "norm_domain_errors": 0, "own.rate.jets": 1000})
    result = cache / "j1.json"
    result.write_text(json.dumps(m))
    later = sample.stat().st_mtime + 10
    os.utime(result, (later, later))
    used = pd.DataFrame([{"job_id": "j1", "variables": ",".join(VARS),
                          **{f"ae.{v}.width": 1e-3 for v in VARS}}])  # fmt: skip
    pick = SimpleNamespace(label="best", job_id="j1", job_dir="jobs/j1", name="run-1")
    groups = [SimpleNamespace(picks=[pick], value=None)]
    lines, problems, path = evaluate_best(tmp_path, out, used, groups, None, sample)
    assert not problems
    text = "\n".join(lines)
    assert "from the bytes written, at a file of 1,000,000 jets" in text
    assert "pt: the autoencoder loses to the scalar quantiser at every ratio" in text
    assert path is not None and "on.aeq12.model_bytes" in path.read_text().splitlines()[0]


def test_a_result_of_before_the_predictive_codec_is_evaluated_again(tmp_path: Path) -> None:
    """A cached result without the predictive codec's keys (own.rate.jets) is stale: the
    job is evaluated again (here it fails, the model being fake, and says so)."""
    job = tmp_path / "jobs" / "j1"
    job.mkdir(parents=True)
    (job / "model.pt").write_bytes(b"x")
    sample = tmp_path / "other.root"
    sample.write_bytes(b"x")
    out = tmp_path / "summary"
    cache = out / "evaluate_on" / "other"
    cache.mkdir(parents=True)
    result = cache / "j1.json"
    result.write_text(json.dumps({**_byte_row(), "sample_jets": 10, "norm_domain_errors": 0}))
    later = sample.stat().st_mtime + 10
    os.utime(result, (later, later))
    used = pd.DataFrame([{"job_id": "j1", "variables": ",".join(VARS)}])
    pick = SimpleNamespace(label="best", job_id="j1", job_dir="jobs/j1", name="run-1")
    groups = [SimpleNamespace(picks=[pick], value=None)]
    _, problems, path = evaluate_best(tmp_path, out, used, groups, None, sample)
    assert (
        path is None and len(problems) == 1 and problems[0].startswith("--evaluate-on: jobs/j1: ")
    )
