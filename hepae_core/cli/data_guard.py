"""What ``hepae-data`` checks before it writes anything, and how it speaks when it cannot.

Every check here runs before a byte is written, so a refusal leaves the user's files as
they were:

* :func:`check_output`: the output is never one of the inputs (same path after resolving
  links, or the same file through a hard link: same device and inode), even with
  ``--force``; an existing output is replaced only with ``--force``; its directory exists;
  its name ends in a suffix the command writes.
* :func:`positive_int`: an ``argparse`` type for counts (``--chunk-size``, ``--max-jets``).
* :func:`check_max_error`: ``--max-error`` bounds are finite numbers > 0, one per variable.
* :class:`OneLineParser`: ``argparse`` errors as one line, like every other error.
* :func:`user_text`: a message as the user should see it: hidden temporary names
  (``.out.h5.k2x9a_0q.h5``) shown as the output they stand for, control characters escaped.
* :func:`signals_interrupt`: SIGTERM (what batch schedulers send) raises like Ctrl-C, so
  the writers' clean-up (temporary files removed) runs for both.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import signal
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from hepae_core.errors import DataError, HepaeError
from hepae_core.text import safe

# The temporary names of the atomic writers, for NAME.SUF: jobdir.atomic_path's
# ".NAME.SUF.<8 mkstemp chars>.SUF", jobdir.atomic_write_*'s ".NAME.SUF.<8>.tmp" (and
# generate's "NAME.SUF.<8>.tmp"). Each starts a path component: the string's start, a
# slash, a blank, a quote or a bracket.
_TEMP = (
    re.compile(r"(?<![^/\s'\"(])\.([^/\s]+?(\.[^./\s]+))\.[a-z0-9_]{8}\2(?![^/\s'\")\]:;,])"),
    re.compile(r"(?<![^/\s'\"(])\.?([^/\s]+?)\.[a-z0-9_]{8}\.tmp(?![^/\s'\")\]:;,])"),
)


def printable(text: Any) -> str:
    """``str(text)`` on one line, every control character shown as an escape (``\\x1b``)."""
    return safe(text)


def untemp(text: str) -> str:
    """Hidden temporary file names in ``text`` replaced by the files they become."""
    while True:
        new = text
        for pattern in _TEMP:
            new = pattern.sub(r"\1", new)
        if new == text:
            return new
        text = new


_CONFIG_KEY = re.compile(r"\bdata\.(branches|container|key|tree|format|leading|units)\b")


def option_words(text: str) -> str:
    """A reader's message in the command line's words: ``data.branches`` -> ``--branches``.

    The readers serve the job configs too and speak of config keys; ``data.source`` (the
    file, already named first) is dropped.
    """
    text = text.replace("'data.source': ", "").replace("; check data.source", "")
    return _CONFIG_KEY.sub(lambda m: "--" + m.group(1), text)


def user_text(text: Any) -> str:
    """A message ready for the terminal: temporary names untangled, controls escaped."""
    return printable(untemp(str(text)))


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: what is wrong, where to read more."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """``argparse`` type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= 1")
    return value


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name one file: same resolved path, or same device and inode."""
    try:
        if a.resolve() == b.resolve():
            return True
    except (OSError, RuntimeError):  # a link loop: compare the inodes below
        pass
    try:
        sa, sb = a.stat(), b.stat()
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_output(
    out: Path,
    *,
    inputs: Iterable[Path],
    force: bool,
    suffixes: tuple[str, ...] | None = None,
    writes: str = "",
    option: str = "-o",
) -> None:
    """Refuse an output that would lose something the user has, before anything is written.

    Parameters
    ----------
    out
        The output path as given.
    inputs
        Files the command reads: the output may never be one of them, ``--force`` or not.
    force
        Whether an existing output (not an input) may be replaced.
    suffixes
        The names the command writes (``.h5``, ``.root``); None: any.
    writes
        What the output holds, for the suffix message (``an HDF5 file``).
    """
    for src in inputs:
        if same_file(out, src):
            raise DataError(
                source=str(out),
                message=f"is the input {src}: give the output another name (an input is "
                "never overwritten)",
            )
    if suffixes is not None and out.suffix.lower() not in suffixes:
        names = ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}" if len(suffixes) > 1 else (
            suffixes[0])  # fmt: skip
        raise DataError(source=str(out), message=f"the output must end in {names} (the "
                        f"command writes {writes})")  # fmt: skip
    if out.is_dir():
        raise DataError(source=str(out), message="is a directory: give an output file name")
    if not out.parent.is_dir():
        raise DataError(source=str(out), message=f"its directory {out.parent} does not exist: "
                        "create it first")  # fmt: skip
    if (out.exists() or out.is_symlink()) and not force:
        raise DataError(source=str(out), message=f"exists already: choose another {option} or "
                        "add --force to replace it")  # fmt: skip


_BOUND = re.compile(r"^\s*([-+0-9.eE]+|[-+]?inf(?:inity)?|nan)\s*([A-Za-z%]*)\s*$", re.I)


def check_max_error(text: str | None, option: str = "--max-error") -> None:
    """Refuse ``--max-error`` items that are not ``VARIABLE=BOUND`` with a finite bound > 0,
    or that name one variable twice. A unit after the number (``0.5GeV``) is left to the
    codec."""
    seen: set[str] = set()
    for item in (text or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise HepaeError(source=option, message=f"{printable(item)!r}: write VARIABLE=BOUND, "
                             "e.g. pt=1e-3,eta=1e-3")  # fmt: skip
        name, value = (s.strip() for s in item.split("=", 1))
        if name in seen:
            raise HepaeError(source=option, key=printable(name), message="given twice: give "
                             "one bound per variable")  # fmt: skip
        seen.add(name)
        m = _BOUND.match(value)
        try:
            bound = float(m.group(1)) if m else math.nan
        except ValueError:
            bound = math.nan
        if not (math.isfinite(bound) and bound > 0):
            raise HepaeError(source=option, key=printable(name), message=f"{printable(value)!r}: "
                             "give a finite number > 0")  # fmt: skip


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) received: unwinds like Ctrl-C, so clean-up code runs."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


_pending: list[int] = []


def _raise_terminated(signum: int, _frame: Any) -> None:
    if _pending:  # a second signal while cleaning up: let the clean-up finish
        return
    _pending.append(signum)
    raise Terminated(signum)


def check_terminated() -> None:
    """Raise :class:`Terminated` if a signal came and its exception was lost.

    Python drops an exception raised where it cannot propagate (a weakref callback, a
    ``__del__``); writers call this between chunks and before renaming the output.
    """
    if _pending:
        raise Terminated(_pending[-1])


def _quiet_unraisable(hook: Any) -> Any:
    def unraisable(info: Any) -> None:
        if not isinstance(info.exc_value, Terminated):  # ours: check_terminated raises it
            hook(info)

    return unraisable


@contextlib.contextmanager
def signals_interrupt(signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Inside the block, ``signums`` raise :class:`Terminated` in the main thread.

    Outside the main thread (where Python cannot install handlers) nothing changes.
    """
    old: dict[int, Any] = {}
    _pending.clear()
    hook = sys.unraisablehook
    try:
        for s in signums:
            old[s] = signal.signal(s, _raise_terminated)
    except ValueError:  # not the main thread
        pass
    sys.unraisablehook = _quiet_unraisable(hook)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        sys.unraisablehook = hook
        _pending.clear()


@contextlib.contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """``jobdir.atomic_path``, and no rename after a signal whose exception was lost."""
    from hepae_core.jobdir import atomic_path

    with atomic_path(out) as tmp:
        yield tmp
        check_terminated()


def hard_exit(code: int) -> NoReturn:
    """Flush and end the process at once, skipping finalisers (HDF5's crash after a failed
    write); the temporary files are gone already."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(code)
