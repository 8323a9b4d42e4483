"""The ``gridsearch`` command line: one subcommand per module, registered from a list.

Each module named in :data:`COMMAND_MODULES` exposes ``register(subparsers)``, which adds
its subparser and sets ``func`` (taking the parsed arguments, returning an exit code) as a
default. Errors a user can act on are printed as one ``error: ...`` line, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

import gridsearch
from gridsearch.text import safe
from hepae_core.errors import UserError


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``error:`` line like every other
    error (not argparse's usage block), with control characters shown as escapes.

    Subparsers made by :meth:`add_subparsers` are of this class too.
    """

    def error(self, message: str) -> NoReturn:
        from gridsearch.text import safe

        if message.endswith("expected one argument"):
            message += " (a value starting with '-' is read as an option: write --opt=VALUE)"
        self.exit(2, f"error: {safe(self.prog)}: {safe(message)} (see {self.prog} --help)\n")


# Add a module here to add a subcommand; each must define register(subparsers). This list
# is gridsearch's one plugin point: `results.cmd_summarize` is imported by its name here,
# so gridsearch never imports results otherwise (docs/architecture.md, tests/test_layering.py).
COMMAND_MODULES: list[str] = [
    "gridsearch.cli.plan",
    "gridsearch.cli.submit",
    "gridsearch.cli.adopt",
    "gridsearch.cli.resubmit",
    "gridsearch.cli.promote",
    "gridsearch.cli.status",
    "gridsearch.cli.show",
    "gridsearch.cli.clean",
    "gridsearch.cli.sites",
    "results.cmd_summarize",
]


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    """The argument parser with every command module registered."""
    parser = OneLineParser(
        prog="gridsearch",
        description="Plan, submit, follow and rerun hyperparameter scans of jet autoencoders.",
    )
    parser.add_argument("--version", action="version", version=gridsearch.__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        # a hostile key, file name or option value must not drive the terminal
        print(f"error: {safe(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `gridsearch status | head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # permissions, a full disk...: say which file, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {safe(where)}{safe(exc.strerror or exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
