"""A full disk (or an exhausted quota), told apart from other failures by the file it hit.

Writers wrap each file they write in :func:`writing`; an ``ENOSPC``/``EDQUOT`` anywhere in
the exception (also behind a library's own error, which chains the ``OSError``) becomes
one :class:`DiskFull` that names the file. Callers print its message, record it, and
exit without a traceback. No torch, no numpy.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

from hepae_core.states import EXIT_FAILED

ERRNOS = (errno.ENOSPC, errno.EDQUOT)

RESUME_ADVICE = "free space and resubmit: the job resumes from its last checkpoint"


class DiskFull(Exception):
    """No space left on the device (or quota) while writing ``path``."""

    error_kind = "disk_full"
    exit_code = EXIT_FAILED

    def __init__(self, path: str | Path, advice: str = RESUME_ADVICE) -> None:
        self.path = Path(path)
        self.advice = advice
        super().__init__(f"no space left on device while writing {path}; {advice}")


def is_disk_full(exc: BaseException | None) -> bool:
    """True when ``exc`` or an exception it chains is an out-of-space ``OSError``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFull):
            return True
        if isinstance(exc, OSError) and exc.errno in ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def writing(path: str | Path, advice: str = RESUME_ADVICE) -> Iterator[None]:
    """Turn an out-of-space error raised inside the block into :class:`DiskFull` (``path``)."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFull(path, advice) from None
        raise


def free_bytes(path: str | Path) -> int:
    """Bytes free for this user on the file system holding ``path``."""
    return shutil.disk_usage(path).free
