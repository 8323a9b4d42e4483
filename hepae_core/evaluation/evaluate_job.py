"""Re-evaluate a finished job from its saved model: ``python -m hepae_core.evaluation.evaluate_job
DIR``.

Writes DIR/evaluation.npz again (test jets in and out, physical units) from config.yaml and
model.pt, without training. The summarizer calls it for the best runs of a campaign whose
evaluation files are missing. Uses the normalisation saved with the model, so the result
does not depend on refitting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hepae_core import jobdir
from hepae_core.errors import EXIT_BAD_INPUT, EXIT_OK, HepaeError


def reevaluate(job_dir: Path) -> Path:
    """Recompute evaluation.npz of ``job_dir``; returns its path."""
    import numpy as np
    import torch

    from hepae_core.config import load, residual_kinds
    from hepae_core.data.jets import load_jets, split
    from hepae_core.evaluation.evaluate import reconstruct, threads_for
    from hepae_core.run.job import EVAL_SAMPLE, load_model, write_evaluation

    if not (job_dir / jobdir.MODEL).is_file():
        raise HepaeError(
            source=str(job_dir), key=None, message=f"has no {jobdir.MODEL}: run the job first"
        )
    cfg = load(job_dir / jobdir.CONFIG)
    model, norm, _ = load_model(job_dir / jobdir.MODEL)
    jets = load_jets(cfg, job_dir)
    parts = split(
        len(jets.values), cfg["data"]["test_fraction"], cfg["train"]["val_fraction"], cfg["seed"]
    )
    x_test = jets.values[parts.test]
    x_test = x_test[np.isfinite(norm.forward(x_test)).all(axis=1)][:EVAL_SAMPLE]
    with threads_for(model, len(x_test)):  # a small model: one thread is faster
        out = reconstruct(model, norm, x_test, torch.device("cpu"))
    kinds = residual_kinds(cfg)
    write_evaluation(job_dir, x_test, out, norm.variables, [kinds[v] for v in norm.variables])
    return job_dir / jobdir.EVAL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hepae_core.evaluation.evaluate_job", description=__doc__
    )
    parser.add_argument("job_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        path = reevaluate(args.job_dir.resolve())
    except HepaeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
