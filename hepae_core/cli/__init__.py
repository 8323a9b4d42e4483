"""``hepae-train CONFIG --out DIR``: train one model from a config file, outside any campaign."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hepae_core import jobdir
from hepae_core.config import dump, load
from hepae_core.diskfull import DiskFull, writing
from hepae_core.errors import EXIT_BAD_INPUT, HepaeError
from hepae_core.text import safe


def _say(text: str) -> None:
    """One error line on stderr; control characters from file names or keys shown as
    escapes (``\\x1b``), never sent to the terminal."""
    print(safe(text), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hepae-train",
        description="Train and evaluate one jet autoencoder; results go to --out.",
    )
    parser.add_argument("config", type=Path, help="job config (YAML)")
    parser.add_argument("--out", type=Path, required=True, help="job directory to write")
    parser.add_argument("--force", action="store_true", help="retrain a finished job")
    args = parser.parse_args(argv)
    try:
        cfg = load(args.config)
    except HepaeError as exc:
        _say(f"error: {exc}")
        return EXIT_BAD_INPUT
    # Relative data paths are relative to the config file; the job dir may be elsewhere.
    source = cfg["data"]["source"]
    if not source.startswith("bundled:") and not Path(source).is_absolute():
        cfg["data"]["source"] = str((args.config.resolve().parent / source).resolve())
    out = args.out
    target = out / jobdir.CONFIG
    text = dump(cfg)
    if target.is_file():
        try:
            existing = dump(load(target))
        except HepaeError:
            existing = None
        if existing != text:
            _say(
                f"error: {target} exists with a different config; choose another --out "
                "(nothing was changed)"
            )
            return EXIT_BAD_INPUT
    else:
        if out.exists() and not out.is_dir():
            _say(f"error: {out}: is not a directory; choose another --out")
            return EXIT_BAD_INPUT
        # A directory with files but no config.yaml is not a job dir: training would
        # overwrite its metrics.json, model.pt, history.csv.
        if out.is_dir() and any(out.iterdir()):
            _say(
                f"error: {out}: is not empty and holds no {jobdir.CONFIG}, so it is not a job "
                "directory; choose a new or empty --out (nothing was changed)"
            )
            return EXIT_BAD_INPUT
        try:
            out.mkdir(parents=True, exist_ok=True)
            with writing(target, "free space and run hepae-train again; nothing was trained"):
                jobdir.atomic_write_text(target, text)
        except DiskFull as exc:
            _say(f"error: {exc}")
            return exc.exit_code
        except OSError as exc:
            _say(f"error: {exc.filename or out}: {exc.strerror or exc}")
            return EXIT_BAD_INPUT
    from hepae_core.run.job import run_job

    return run_job(out, force=args.force)
