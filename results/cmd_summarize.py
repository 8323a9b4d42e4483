"""The ``summarize`` subcommand: ``gridsearch summarize [DIR] [options]``.

:func:`register` adds it to an argparse subparsers object; the parsed arguments carry
``func=run``, and ``run(args)`` returns the exit code: 0 when every job and plot was used,
1 when something was skipped (the report lists what and why), 2 on bad input (not a
campaign directory, an unknown column or plot name). Errors are one line, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from hepae_core.errors import UserError
from results.errors import SummaryError
from results.names import PLOT_NAMES

BEST_NAME = "best.json"  # summary/best.json: the run `hepae-data compress --model best` uses
HELP = "collect the jobs' metrics into summary.h5 and draw the comparison plots"
EPILOG = """\
exit codes: 0 everything used; 1 something skipped (failed, unfinished or unreadable jobs,
values that are not numbers, plots without their inputs; see summary/report.txt);
2 bad input (not a campaign directory, unknown column or plot).
Load the table in Python with: results.load("DIR")  (docs/results.md)."""


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``summarize`` (shared by gridsearch's CLI and ``python -m results``)."""
    p.add_argument("dir", nargs="?", default=".", help="campaign directory (default: .)")
    p.add_argument(
        "--group-by",
        default="latent",
        metavar="COL",
        help="column to rank within: latent (default), lr, wd, bs, encoder, any param.* "
        "or metric column, or 'none'",
    )
    p.add_argument(
        "--metric",
        default="best_val_loss",
        metavar="COL",
        help="column to rank by, lower is better (default: best_val_loss)",
    )
    p.add_argument("--top", type=int, default=5, metavar="K", help="runs in the curves plot")
    p.add_argument(
        "--only",
        type=_csv,
        default=None,
        metavar="PLOT[,PLOT]",
        help="draw only these plots: " + ", ".join(PLOT_NAMES) + " (or 'none')",
    )
    p.add_argument(
        "--format",
        type=_csv,
        default=["png"],
        metavar="FMT[,FMT]",
        help="figure formats (default: png; pdf and svg also work)",
    )
    p.add_argument(
        "--heatmap",
        type=_csv,
        default=None,
        metavar="A,B",
        help="the two parameters of the heat map (default: lr,wd when both vary)",
    )
    p.add_argument(
        "--variable", default=None, help="variable of the Pareto and collective plots (default: pt)"
    )
    p.add_argument(
        "--evaluate-on",
        default=None,
        metavar="SAMPLE",
        help="also evaluate the best run of each group on this sample file (default: the "
        "space file's evaluate_on: sample, if it names one; 'none' skips it)",
    )
    p.add_argument(
        "--style",
        default="house",
        choices=("house", "atlas", "cms", "root"),
        help="plot style: house (default) or an mplhep style (needs mplhep)",
    )
    p.add_argument("--no-plots", action="store_true", help="write the table and report only")
    p.add_argument("--no-cache", action="store_true", help="re-read every job")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the result line")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``summarize`` to ``subparsers``; the parsed args carry ``func=run``."""
    p = subparsers.add_parser(
        "summarize",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def default_sample(campaign: str | Path, given: str | None) -> str | None:
    """The sample to evaluate the best runs on: ``--evaluate-on`` when given (``none``:
    no sample), else the space file's ``evaluate_on:`` (results.space_sample), else None."""
    if given is not None:
        return None if given.strip().lower() == "none" else given
    from results.space_sample import campaign_sample

    found = campaign_sample(Path(campaign), SummaryError)
    return str(found) if found is not None else None


def best_run(report: Any) -> dict[str, Any] | None:
    """The run the summary names best: the lowest ranking metric (``--metric``, default
    best_val_loss) among the runs used, i.e. the best of the groups' best runs; None when
    no run was used."""
    picks = [p for g in report.groups for p in g.picks if p.label == "best"]
    if not picks:
        return None
    best = min(picks, key=lambda p: p.value)  # stable: the first group wins a tie
    return {
        "job_id": best.job_id,
        "job_dir": best.job_dir,
        "name": best.name,
        "metric": report.metric,
        "value": best.value,
        "runs": report.n_used,
        "rule": f"the lowest {report.metric} of the {report.n_used} finished runs",
    }


def write_best(report: Any) -> Path:
    """``summary/best.json``: the best run (:func:`best_run`), for ``hepae-data compress
    --model best --campaign DIR``; removed when no run was used (never a stale choice)."""
    from hepae_core.jobdir import atomic_write_json
    from results.table import SUMMARY_DIR

    path = Path(report.campaign) / SUMMARY_DIR / BEST_NAME
    best = best_run(report)
    if best is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(exist_ok=True)
        atomic_write_json(path, best)
        report.files["best"] = path
    return path


def run(args: argparse.Namespace) -> int:
    """Run the summary for parsed ``args``; print the report; return the exit code."""
    from results.summary import summarize

    try:
        evaluate_on = default_sample(args.dir, args.evaluate_on)
        only = args.only
        plots = not args.no_plots
        if only and "none" in only:
            only, plots = None, False
        if args.heatmap is not None and len(args.heatmap) != 2:
            raise SummaryError(
                message=f"--heatmap needs two parameters separated by a comma, got {args.heatmap!r}"
            )
        group_by = None if str(args.group_by).lower() == "none" else args.group_by
        report = summarize(
            args.dir,
            group_by=group_by,
            metric=args.metric,
            top=args.top,
            only=only,
            formats=args.format,
            heatmap=tuple(args.heatmap) if args.heatmap else None,
            variable=args.variable,
            plots=plots,
            use_cache=not args.no_cache,
            style=args.style,
            evaluate_on=evaluate_on,
        )
        write_best(report)
    except UserError as exc:
        print(f"gridsearch summarize: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gridsearch summarize: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback for the user; HEPAE_DEBUG=1 shows it
        if os.environ.get("HEPAE_DEBUG"):
            raise
        print(
            f"gridsearch summarize: error: {type(exc).__name__}: {exc} "
            "(set HEPAE_DEBUG=1 to see where; please report it)",
            file=sys.stderr,
        )
        return 2
    if args.quiet:
        print(report.text().rstrip().splitlines()[-1])
    else:
        print(report.text(limit=20), end="")
    return report.exit_code
