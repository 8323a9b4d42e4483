"""``gridsearch sites [list | show NAME]``: the site profiles known here."""

from __future__ import annotations

import argparse
from pathlib import Path

from gridsearch import sites


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``sites`` command to the CLI's subparsers; returns its parser."""
    parser = subparsers.add_parser(
        "sites",
        help="list site profiles, or show one resolved",
        description="List the site profiles (packaged and your own), or print one with its "
        "`extends` chain resolved. Your own profiles are read from --sites-dir, "
        f"${sites.USER_SITES_ENV} and ~/.config/gridsearch/sites.",
    )
    parser.add_argument(
        "--sites-dir",
        action="append",
        type=Path,
        default=None,
        metavar="DIR",
        help="a directory of your own site profiles (may be repeated)",
    )
    sub = parser.add_subparsers(dest="sites_command")
    sub.add_parser("list", help="list profiles: name, scheduler, where it comes from")
    show = sub.add_parser("show", help="print one profile, resolved")
    show.add_argument("name", help="profile name, e.g. kebnekaise")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the list, or one resolved profile; GridsearchError for an unknown name."""
    extra = getattr(args, "sites_dir", None)
    if getattr(args, "sites_command", None) == "show":
        print(sites.show(sites.load_profile(args.name, extra)), end="")
        return 0
    rows = []
    for name, origin in sites.available(extra).items():
        try:
            profile = sites.load_profile(name, extra)
            kind, desc = profile.get("kind", "?"), str(profile.get("description", ""))
        except Exception as exc:  # a broken user profile is listed, not fatal
            kind, desc = "error", str(exc)
        rows.append((name, kind, origin, desc))
    width = max(len(r[0]) for r in rows) if rows else 4
    for name, kind, origin, desc in rows:
        where = "" if origin == "packaged" else f"  [{origin}]"
        print(f"{name:<{width}}  {kind:<6}  {desc}{where}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m gridsearch.cli.sites``) until the CLI registers it."""
    from gridsearch.errors import GridsearchError

    parser = argparse.ArgumentParser(prog="gridsearch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except GridsearchError as exc:
        print(f"error: {exc}")
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
