"""End to end: a 27-variable job on an ATLAS-style jagged file in MeV with the thesis cuts."""

from __future__ import annotations

import json

import numpy as np
from conftest import run_job_process, write_job

from hepae_core.data.readers.synthetic import (
    ATLAS_CONTAINER,
    ATLAS_TREE,
    atlas_columns,
    events_of,
    write_atlas_root,
)


def test_27d_job_records_cut_counts(tmp_path):
    rng = np.random.default_rng(21)
    job = tmp_path / "job"
    job.mkdir()
    write_atlas_root(job / "atlas.root", atlas_columns(2500, rng), events_of(2500, rng))
    config = {
        "name": "atlas_27d_tiny",
        "seed": 1,
        "data": {
            "source": "atlas.root",
            "tree": ATLAS_TREE,
            "container": ATLAS_CONTAINER,
            "units": "MeV",
            "variables": "27d",
            "cuts": "thesis_27d",
            "max_jets": 2000,
            "chunk_size": 300,
        },
        "normalisation": {"kind": "custom_27d"},
        "model": {"preset": "AE_bn_LeakyReLU", "latent": 18},
        "train": {"epochs": 1, "batch_size": 256, "device": "cpu", "threads": 1},
        "evaluate": {"plots": False, "timing_jets": 500, "round": ["N90Constituents"]},
    }
    write_job(job, config)
    proc = run_job_process(job)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["status"] == "done"
    assert metrics["n_inputs"] == 27 and metrics["latent"] == 18
    assert metrics["jets_read"] == 2000
    removed = [metrics[f"cut.{i}.removed"] for i in range(12)]
    assert metrics["cut.0.expr"] == "abs(EMFrac) < 5"
    assert metrics["cut.11.expr"] == "abs(HECQuality) < 2.5"
    assert sum(removed) > 0
    assert metrics["jets_after_cuts"] == 2000 - sum(removed) - metrics["jets_nonfinite_dropped"]
    assert metrics["norm_domain_errors"] == 0
    assert "ae.LeadingClusterPt.width" in metrics and "ae.N90Constituents.width" in metrics
    assert (
        metrics["train_jets"] + metrics["val_jets"] + metrics["test_jets"]
        == metrics["jets_after_cuts"]
    )


def test_bad_cut_fails_the_job_with_one_message(tmp_path):
    job = write_job(tmp_path / "job", {"data": {"cuts": ["abs(etaa) < 2"]}})
    proc = run_job_process(job, timeout=120)
    assert proc.returncode == 2
    assert "'data.cuts[0]'" in proc.stderr and "did you mean 'eta'" in proc.stderr
    assert not (job / "metrics.json").exists()
