"""Per-session JSON cache files (``<session-id>.json``), written atomically; stdlib only.

The daemon writes one file per session id (current and alias) so that the CLI can resolve
session prefixes and show sessions without the daemon (the seed's "fast session metadata
access"). Writes go to a temp file in the same dir, then ``os.replace``: a reader never sees a
half-written file. A file that does not parse is moved aside (``.corrupt``), never fatal.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from .oserrors import as_disk_full
from .paths import FILE_MODE, Paths
from .safeio import FileTooLarge, NotRegularFile, UnsafePathError, read_bounded

log = logging.getLogger(__name__)

_NOT_SESSIONS = frozenset({"daemon"})

# A cache file is one session's record; anything larger is not one of ours.
MAX_CACHE_FILE_BYTES = 16 * 1024 * 1024


def write_session_cache(paths: Paths, session_id: str, record: dict[str, Any]) -> None:
    """Atomically write ``record`` to ``<session_id>.json`` with mode 0600.

    The temp name is fixed (``.<id>.tmp``): the daemon is the only writer (it holds the pid
    lock), and ``mkstemp`` plus the pure-Python ``json.dump`` cost 4x more under a heartbeat storm.
    """
    target = paths.session_cache(session_id)
    tmp = target.with_name(f".{session_id}.tmp")
    data = json.dumps(record, separators=(",", ":"), default=str).encode()
    # O_NONBLOCK: a FIFO planted on the temp name fails at once (ENXIO) instead of blocking the
    # file worker; O_NOFOLLOW: a planted symlink is never written through.
    fd = os.open(
        tmp,
        os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
        FILE_MODE,
    )
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(tmp, "is not a regular file; remove it")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        os.close(fd)
        _unlink_quietly(tmp)
        raise as_disk_full(exc, tmp) from None
    else:
        os.close(fd)
    try:
        if os.path.isdir(target) and not os.path.islink(target):
            raise NotRegularFile(target, "is a directory, not a cache file; remove it")
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def read_session_cache(path: Path) -> dict[str, Any] | None:
    """One cache file, or None if it is missing; a corrupt one is moved aside with a warning.

    Read without following a symlink, without blocking (a FIFO), and bounded (``/dev/zero``):
    anything but a regular file of sane size counts as corrupt.
    """
    try:
        raw = read_bounded(path, MAX_CACHE_FILE_BYTES, nofollow=True)
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except FileNotFoundError:
        return None
    except (NotRegularFile, FileTooLarge) as exc:
        log.warning("session cache %s; moved it aside", exc)
        try:
            os.replace(path, path.with_name(path.name + ".corrupt"))
        except OSError:
            pass
        return None
    except UnsafePathError as exc:
        log.warning("session cache %s", exc)
        return None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        log.warning("session cache %s is corrupt (%s); moved it aside", path, exc)
        try:
            os.replace(path, path.with_name(path.name + ".corrupt"))
        except OSError:
            pass
        return None


def session_cache_ids(paths: Paths) -> list[str]:
    """Every session id that has a cache file (cheap: a directory listing, no parsing)."""
    try:
        names = os.listdir(paths.cache_dir)
    except OSError:
        return []
    return [
        n[:-5]
        for n in names
        if n.endswith(".json") and not n.startswith(".") and n[:-5] not in _NOT_SESSIONS
    ]


def read_all_session_caches(paths: Paths) -> list[dict[str, Any]]:
    out = []
    for sid in session_cache_ids(paths):
        rec = read_session_cache(paths.cache_dir / f"{sid}.json")
        if rec is not None:
            rec.setdefault("session_id", sid)
            out.append(rec)
    return out
