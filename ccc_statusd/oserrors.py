"""OSErrors said to a user: what happened and the next step. Stdlib only (the CLI uses it).

Owns :func:`describe_os_error` and :class:`DiskFull`. A full disk (``ENOSPC``, ``EDQUOT``) is
the one a user hits in practice and can fix; it must read "the disk is full", never
"internal error".
"""

from __future__ import annotations

import errno
import os

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFull(OSError):
    """A write failed because the disk (or the user's quota) is full; ``str()`` says so."""

    def __str__(self) -> str:
        return describe_os_error(self)


def is_disk_full(exc: BaseException) -> bool:
    """An OSError ENOSPC/EDQUOT, or SQLite's "database or disk is full"."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL_ERRNOS
    return getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL


def describe_os_error(exc: OSError) -> str:
    """An OSError as a sentence with the next step (a full disk says so)."""
    if exc.errno in DISK_FULL_ERRNOS:
        where = f" writing {os.fsdecode(exc.filename)}" if exc.filename else ""
        return (
            f"the disk is full{where}: nothing more can be written. "
            "Free some space (df -h shows which disk), then try again"
        )
    return OSError.__str__(exc)


def as_disk_full(exc: OSError, filename: object = None) -> OSError:
    """``exc`` as a :class:`DiskFull` if it is one (keeping errno and file name), else as is."""
    if exc.errno not in DISK_FULL_ERRNOS:
        return exc
    name = exc.filename if exc.filename is not None else filename
    return DiskFull(exc.errno, exc.strerror, os.fspath(name) if name is not None else None)  # type: ignore[arg-type]


# SQLite's result code for "database or disk is full" (sqlite3.SQLITE_FULL; not imported here:
# sqlite3 is off the CLI's fast path).
SQLITE_FULL = 13


def describe_error(exc: BaseException) -> str:
    """Any error from writing (OSError, sqlite3.Error) as a sentence; a full disk says so."""
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    if getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL:
        return describe_os_error(OSError(errno.ENOSPC, "database or disk is full"))
    return f"{type(exc).__name__}: {exc}"
