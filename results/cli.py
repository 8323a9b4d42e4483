"""Standalone entry point of the summarizer: ``python -m results [DIR] [options]``.

The same command as ``gridsearch summarize`` (see :mod:`results.cmd_summarize`).
"""

from __future__ import annotations

import argparse

from results.cmd_summarize import EPILOG, HELP, add_arguments, run


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]), summarize, return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m results",
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return 0 if exc.code == 0 else 2
    return run(args)
